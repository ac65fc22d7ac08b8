"""A pipeline config that does not parse, reported before TensorFlow starts: the line (and its
text), the field, and the valid field names of that message with `did you mean ...`, read from
the OD API's own protobuf descriptors (pipeline_pb2 and the messages it imports).

    from odrun.tasks.detect.config.errors import parse_error
    raise parse_error(exc, text, where)   # exc: google.protobuf.text_format.ParseError
"""
import difflib
import re

from odcore.errors import UserError

# text_format's messages: `172:3 : Message type "object_detection.protos.TrainConfig" has no
# field named "batch_sise".` / `Enum type "...Foo" has no value named BAR.`
FIELD_RE = re.compile(r'Message type "(?P<type>[\w.]+)" has no field named "?(?P<name>[\w.\[\]]+)"?')
ENUM_RE = re.compile(r'Enum type "(?P<type>[\w.]+)" has no value (named|with number) "?(?P<name>[\w-]+)"?')
POS_RE = re.compile(r"^(?P<line>\d+):(?P<col>\d+) : ")
MAX_LISTED = 40


def _pool():
    from google.protobuf import descriptor_pool

    return descriptor_pool.Default()


def valid_names(type_name, enum=False):
    """The field (or enum value) names of a message (enum) type, or [] when unknown."""
    try:
        pool = _pool()
        if enum:
            return [v.name for v in pool.FindEnumTypeByName(type_name).values]
        return [f.name for f in pool.FindMessageTypeByName(type_name).fields]
    except (KeyError, ImportError):
        return []


def _position(exc, message):
    line = col = None
    if hasattr(exc, "GetLine"):
        line, col = exc.GetLine(), exc.GetColumn()
    m = POS_RE.match(message)
    if m and not line:
        line, col = int(m.group("line")), int(m.group("col"))
    return line, col


def parse_error(exc, text, where="pipeline.config"):
    """-> a UserError naming file:line, the line's text, the field and the valid names."""
    message = str(exc)
    line, col = _position(exc, message)
    detail = POS_RE.sub("", message).strip()
    loc = "{}:{}".format(where, line) if line else where
    source = ""
    if line and text:
        lines = text.splitlines()
        if 0 < line <= len(lines):
            source = lines[line - 1].strip()
    fix = "compare with a template in odrun/data/templates/"
    m = FIELD_RE.search(message)
    enum = False
    if not m:
        m = ENUM_RE.search(message)
        enum = bool(m)
    if m:
        names = valid_names(m.group("type"), enum=enum)
        bad = m.group("name")
        what = "values" if enum else "fields"
        short = m.group("type").rsplit(".", 1)[-1]
        detail = "{} has no {} {!r}".format(short, "value" if enum else "field", bad)
        if names:
            close = difflib.get_close_matches(bad, names, n=3, cutoff=0.6)
            fix = ("did you mean {}? ".format(" or ".join(close)) if close else "") + \
                "valid {} of {}: {}".format(what, short, ", ".join(sorted(names)[:MAX_LISTED]))
    text_out = "not a valid pipeline config: " + detail
    if source:
        text_out += "\n  line {}: {}".format(line, source)
    return UserError(text_out, where=loc, fix=fix)
