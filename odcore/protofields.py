"""The proto-field resolver of explain: OD API pipeline errors `Message type "object_detection.protos.X" has no
field named "Y"` are answered from the OD API's own protos (odcore/data/od_protos.yaml, recorded by
scripts/record_od_protos.py): the fields X has, the closest names (difflib), and where Y really lives (another
message, or the top level), so the answer names the misplaced brace or the misspelling instead of a generic
"unknown field". Texts come from odcore/data/protofields.yaml. Python 3.6-safe; needs only PyYAML (on first use).
"""
import os
import re

from odcore import datafile

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PATH = os.path.join(DATA_DIR, "protofields.yaml")
TRIGGERS = ("has no field named", "protocol message")  # lower-case: a window without one is not parsed
RX = re.compile(r'(?:(\d+):(\d+) ?: ?)?(?:Message type )?"object_detection\.protos\.([\w.]+)" has no field named '
                r'"([^"\s]+)"')
# the same error from Python code setting a field (export_tflite_ssd_graph.py ...): no line, no package prefix
SETATTR = re.compile(r'()()Protocol message (\w+) has no (?:field "?(\w+)"?|"(\w+)" field)')
SHOWN = 12  # field names listed per message
_CACHE = {}


def load(path=None):
    """protofields.yaml with its table (od_protos.yaml) read in as data["table"]."""
    path = path or PATH
    data = _CACHE.get(path)
    if data is None:
        data = datafile.read_yaml(path)
        data["table"] = datafile.read_yaml(os.path.join(os.path.dirname(path), data["table"]))
        _CACHE[path] = data
    return data


def _blocks(messages, owner, top):
    """How `owner` is written in a config: the field names that hold it ("ssd { } in DetectionModel")."""
    if owner == top:
        return "the top level"
    refs = sorted("{} {{ }} in {}".format(name, parent) for parent, fields in messages.items()
                  for name, kind in fields.items() if kind == owner)
    return ", ".join(refs[:3]) or owner


def _nearness(messages, message, owner):
    """0: owner is a block inside `message`, 1: its parent or a sibling block, 2: elsewhere - the nearer owner is
    the likelier home of a field a brace moved; a far one holds a field of another model type."""
    if owner in messages[message].values():
        return 0
    parents = [p for p, fields in messages.items() if message in fields.values()]
    return 1 if owner in parents or any(owner in messages[p].values() for p in parents) else 2


def _kind(messages, message, field, top):
    """(answer kind, owners, close names) for `field` seen in `message`."""
    fields = messages[message]
    if field in fields:
        return "installed_older", [], []
    owners = sorted((name for name, f in messages.items() if field in f),
                    key=lambda o: (_nearness(messages, message, o), o))
    if top in owners:
        return "top_level", [top], []
    if owners:
        return ("elsewhere" if _nearness(messages, message, owners[0]) < 2 else "far"), owners, []
    import difflib  # here, not at import: explain's import stays cheap (doctor --no-tf < 0.3 s)

    close = difflib.get_close_matches(field, list(fields), n=3, cutoff=0.75)
    return ("close" if close else "unknown"), [], close


def resolve(text, low=None, path=None):
    """The answer dict for the first OD API unknown-field message in `text`, or None."""
    low = text.lower() if low is None else low
    if not any(t in low for t in TRIGGERS):
        return None
    m = RX.search(text) or SETATTR.search(text)
    if not m:
        return None
    data = load(path)
    table = data["table"]
    messages, top = table["messages"], table["top_level"]
    message, field = m.group(3), m.group(4) or (m.group(5) if m.re is SETATTR else None)
    if message not in messages:
        return None
    kind, owners, close = _kind(messages, message, field, top)
    names = sorted(messages[message])
    values = dict(message=message, field=field, close=", ".join(close),
                  at=" (line {}, column {})".format(m.group(1), m.group(2)) if m.group(1) else "",
                  owners=", ".join(owners[:4]), blocks="; ".join(_blocks(messages, o, top) for o in owners[:3]),
                  fields=", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else ""),
                  version=table["recorded_from"].split(" ")[1])
    texts = data["answers"][kind]
    return {"group": kind, "family": "od-api", "replacement": (owners or close or [None])[0],
            "title": texts["title"].format(**values), "cause": " ".join(texts["cause"].format(**values).split()),
            "fix": " ".join(texts["fix"].format(**values).split()), "sources": list(data["source"]),
            "replaces": list(data.get("replaces") or []), "attach": kind not in ("far", "unknown"), "matched": m.group(0), "start": m.start(),
            "resolved_from": "od_protos.yaml ({})".format(kind)}
