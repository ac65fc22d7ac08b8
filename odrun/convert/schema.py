"""Annotation files checked against a JSON Schema per format (odrun/convert/schemas/*.json)
before any field is read (issue 22): a wrong type anywhere is one clear error naming the file
and the field (`shapes[2].points[0]`, `annotations[5].bbox (annotation id 17)`), never a crash.

jsonschema does the checking where it is installed; the TF images may lack it (and run Python
3.6), so `_walk` below checks the same subset of draft-07 the schemas use (type, required,
properties, items, minItems, maxItems, minLength, minimum, maximum, exclusiveMinimum, anyOf).
Both treat true/false as not a number and 1e400 (inf) as not an integer. Each message is the
failing field's nearest `description`.
"""
import json
import math
import os

SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")
MAX_REPORTED = 20
_CACHE = {}


def load(name):
    if name not in _CACHE:
        with open(os.path.join(SCHEMAS, name + ".json"), encoding="utf-8") as f:
            _CACHE[name] = json.load(f)
    return _CACHE[name]


def problems(name, data):
    """[(path list, description)] of the first MAX_REPORTED fields of `data` that break schema `name`."""
    schema = load(name)
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if getattr(jsonschema, "Draft7Validator", None) is None:  # absent, or older than 3.0
        found = []
        _walk(data, schema, [], schema.get("description", "valid"), found)
        return found[:MAX_REPORTED]
    validator = jsonschema.Draft7Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        out.append((list(err.absolute_path), _description(schema, list(err.schema_path))))
        if len(out) >= MAX_REPORTED:
            break
    return out


def _description(schema, schema_path):
    """The last `description` met walking the schema along a jsonschema error's schema_path."""
    node, text = schema, schema.get("description", "valid")
    for key in schema_path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and "description" in node:
            text = node["description"]
    return text


def where(path):
    """['shapes', 2, 'points'] -> 'shapes[2].points'."""
    out = ""
    for part in path:
        out += "[{}]".format(part) if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(the whole file)"


# ------------------------------------------------------------------ the fallback checker
def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "number": _is_number,
    "integer": lambda v: _is_number(v) and (isinstance(v, int) or (math.isfinite(v) and float(v).is_integer())),
}


def _bounds_ok(v, s):
    if not _is_number(v):
        return True
    return not (("minimum" in s and v < s["minimum"]) or ("maximum" in s and v > s["maximum"])
                or ("exclusiveMinimum" in s and v <= s["exclusiveMinimum"]))


def _local_ok(v, s):
    """The keywords that look at `v` itself (not its children)."""
    types = s.get("type")
    if types is not None and not any(_TYPES[t](v) for t in ([types] if isinstance(types, str) else types)):
        return False
    if isinstance(v, list) and not (s.get("minItems", 0) <= len(v) <= s.get("maxItems", len(v))):
        return False
    if isinstance(v, str) and len(v) < s.get("minLength", 0):
        return False
    if isinstance(v, dict) and any(k not in v for k in s.get("required", ())):
        return False
    return _bounds_ok(v, s)


def _walk(v, s, path, text, found):
    text = s.get("description", text)
    if "anyOf" in s:
        if not any(_valid(v, sub) for sub in s["anyOf"]):
            found.append((list(path), text))
            return
    if not _local_ok(v, s):
        found.append((list(path), text))
        return
    if isinstance(v, dict):
        for key, sub in s.get("properties", {}).items():
            if key in v:
                _walk(v[key], sub, path + [key], text, found)
    elif isinstance(v, list) and "items" in s:
        for i, item in enumerate(v):
            _walk(item, s["items"], path + [i], text, found)
            if len(found) >= MAX_REPORTED:
                return


def _valid(v, s):
    found = []
    _walk(v, s, [], "", found)
    return not found
