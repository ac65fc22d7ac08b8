"""label_map.pbtxt: read a user's map, build one from the classes seen, write it.

Ids start at 1 (0 is the OD API's background class). Names are written as protobuf text
strings, escaped so spaces, quotes, backslashes and non-ASCII names (e.g. 口罩) survive the
OD API's `label_map_util.load_labelmap` (protobuf `text_format`).
"""
import difflib
import re

from odcore.errors import UserError
from odcore.fileio import write_text

_ITEM = re.compile(r"item\s*\{(.*?)\}", re.S)
_ID = re.compile(r"\bid\s*:\s*(-?\d+)")
_NAME = re.compile(r"\bname\s*:\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")


def _unquote(token):
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _parse_with_odapi(text):
    """The OD API's own parser when it is installed (same behaviour as training will see)."""
    from google.protobuf import text_format
    from object_detection.protos import string_int_label_map_pb2

    msg = string_int_label_map_pb2.StringIntLabelMap()
    text_format.Merge(text, msg)
    return [(item.id, item.name or item.display_name) for item in msg.item]


def _parse_plain(text):
    items = []
    for block in _ITEM.findall(text):
        id_match, name_match = _ID.search(block), _NAME.search(block)
        if not id_match or not name_match:
            raise ValueError("an item without id or name: item {" + block.strip() + "}")
        items.append((int(id_match.group(1)), _unquote(name_match.group(1))))
    return items


# Unicode categories a class name must not contain: Cc (C0/C1 controls: newline, tab, CR, ESC,
# DEL ...), Zl/Zp (line and paragraph separators). A name is written as one line of labels.txt and
# one protobuf string: `dog\n1:evil` would add a class (issue 22).
NAME_FORBIDDEN = ("Cc", "Zl", "Zp")


def name_problem(name):
    """Why a class name cannot be written (control character, not UTF-8), or None."""
    import unicodedata
    bad = sorted({c for c in name if unicodedata.category(c) in NAME_FORBIDDEN})
    if bad:
        return "class name {} contains control character(s) {} (newline, tab, ...): refused".format(
            ascii(name), ", ".join("U+{:04X}".format(ord(c)) for c in bad))
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "class name {} is not valid UTF-8: refused".format(ascii(name))
    return None


NAME_FIX = "rename the class (letters, digits, spaces and punctuation; no control characters)"


def items(path):
    """[(id, name)] sorted by id: the same reading and checks as `read` (train and export use it)."""
    return sorted((i, name) for name, i in read(path).items())


def read(path):
    """{name: id} from a label_map.pbtxt; bad files raise UserError naming the file."""
    return check_items(parse_items(path), path)


def parse_items(path):
    """[(id, name)] as written, unchecked (`odrun inspect` reports id 0 and duplicates as findings);
    a missing, unreadable or unparsable file raises UserError naming it."""
    import os

    if not os.path.exists(path):
        raise UserError("label map not found", where=path,
                        fix="run `odrun convert` (writes label_map.pbtxt) or pass the right path")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError("cannot read the label map: {}".format(exc), where=path,
                        fix="pass a readable UTF-8 label_map.pbtxt with --label-map")
    try:
        try:
            return _parse_with_odapi(text)
        except ImportError:
            return _parse_plain(text)
    except Exception as exc:  # text_format.ParseError, ValueError
        raise UserError("not a valid label map: {}".format(exc), where=path,
                        fix="write items as: item { id: 1 name: 'cat' }")


def check_items(items, path):
    """The one label-map validator (convert's --label-map and train's --data/--config use it):
    [(id, name)] -> {name: id}; no items, an id < 1, a class or an id used twice -> UserError."""
    if not items:
        raise UserError("the label map has no items", where=path,
                        fix="write items as: item { id: 1 name: 'cat' }")
    mapping = {}
    for item_id, name in items:
        if item_id < 1:
            raise UserError("item {!r} has id {}: ids start at 1 (0 is the background)".format(name, item_id),
                            where=path, fix="renumber the items from 1")
        if not name:
            raise UserError("item with id {} has no name".format(item_id), where=path,
                            fix="give it a name: item {{ id: {} name: 'cat' }}".format(item_id))
        if name_problem(name):
            raise UserError(name_problem(name), where=path, fix=NAME_FIX)
        if name in mapping:
            raise UserError("class {!r} appears twice".format(name), where=path, fix="keep one item per class")
        if item_id in mapping.values():
            raise UserError("id {} is used twice".format(item_id), where=path, fix="give every class its own id")
        mapping[name] = item_id
    return mapping


def build(class_names):
    """{name: id} for the classes seen: sorted by name, so the ids do not depend on file order."""
    class_names = list(class_names)
    for name in class_names:
        if name_problem(name):  # (convert reports each object first; this is the last line of defence)
            raise UserError(name_problem(name), where="label map", fix=NAME_FIX)
    return {name: i + 1 for i, name in enumerate(sorted(set(class_names)))}


def suggest(name, known):
    close = difflib.get_close_matches(name, list(known), n=1)
    return " (did you mean {!r}?)".format(close[0]) if close else ""


def _quote(name):
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return '"' + escaped + '"'


def render(mapping):
    blocks = ["item {{\n  id: {}\n  name: {}\n}}\n".format(i, _quote(n))
              for n, i in sorted(mapping.items(), key=lambda kv: kv[1])]
    return "\n".join(blocks)


def write(path, mapping):
    write_text(path, render(mapping))
