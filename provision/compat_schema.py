"""compat_matrix.yaml's validation: the shape is data (provision/data/compat_matrix.schema.json,
JSON Schema, checked with jsonschema like doctor's captures), then what a schema cannot say:
versions and specifiers that `packaging` must read (the schema's `x-format`), no entry twice,
and the links between sections (a CUDA row for every CUDA named, image driver floors, OD API
code paths, every image flavour). The first problem is a MatrixError naming the entry,
e.g. `compat_matrix.yaml: gpus[0] (Tesla K80).compute_capability: ...`.
"""
import json
import os

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from odcore.cache import cache_dir
from odcore.errors import UserError
from provision.compat_rules import line_of

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "compat_matrix.schema.json")
FLAVORS = ("tf1.15-gpu", "tf1.15-ngc", "tf2-gpu", "cpu")
_SCHEMA = []


class MatrixError(UserError):
    """compat_matrix.yaml itself is malformed; `where` is the path of the bad entry
    (defined here, where the shape is checked; provision.compat re-exports it)."""


def schema():
    if not _SCHEMA:
        with open(SCHEMA_PATH, encoding="utf-8") as f:
            _SCHEMA.append(json.load(f))
    return _SCHEMA[0]


class Checker(object):
    def __init__(self, data, path):
        self.data, self.path, self.error = data, path, MatrixError

    def fail(self, where, message, fix=None):
        raise self.error(message, where="{}: {}".format(self.path, where),
                         fix=fix or "correct that entry in compat_matrix.yaml")

    def where(self, parts):
        """['gpus', 0, 'compute_capability'] -> 'gpus[0] (Tesla K80).compute_capability'."""
        if not parts:
            return "(top level)"
        text = str(parts[0])
        if len(parts) > 1 and isinstance(parts[1], int):
            entry = self.data[parts[0]][parts[1]]
            key = None
            if isinstance(entry, dict):
                key = (entry.get("version") or entry.get("name") or entry.get("flavor")
                       or entry.get("code_path") or entry.get("id"))
            text += "[{}]".format(parts[1]) + (" ({})".format(key) if key else "")
            parts = parts[2:]
        else:
            parts = parts[1:]
        for p in parts:
            text += "[{}]".format(p) if isinstance(p, int) else "." + str(p)
        return text

    # 1. the shape (JSON Schema)
    def shape(self):
        try:
            import jsonschema
        except ImportError:
            raise UserError("checking compat_matrix.yaml needs the jsonschema package", where=self.path,
                            fix="pip install 'odstack[host]' (or pip install jsonschema)")

        validator = jsonschema.Draft202012Validator(schema())
        errors = list(validator.iter_errors(self.data))
        if not errors:
            return
        error = min(errors, key=self._document_order)  # the first problem in the file, as a reader meets it
        while error.context:  # oneOf: the branch that fits the value's type says what is wrong inside it
            inner = [e for e in error.context if e.validator != "type" or e.relative_path]
            if not inner:
                break
            error = min(inner, key=self._document_order)
        parts = list(error.absolute_path)
        if error.validator == "required" and error.validator_value:
            missing = [f for f in error.validator_value if f not in (error.instance or {})]
            if parts:
                self.fail(self.where(parts + missing[:1]), "required field missing")
            self.fail(missing[0], "section missing or not a non-empty list")
        sub = self._field_schema(error)
        message = sub.get("x-message") or error.message
        self.fail(self.where(parts), "{}, got {!r}".format(message, error.instance), sub.get("x-fix"))

    def _document_order(self, error):
        """Sort key: where the error's value stands in the file (mappings keep their YAML order)."""
        key, node = [], self.data
        for part in error.absolute_path:
            if isinstance(node, dict):
                key.append(list(node).index(part) if part in node else len(node))
            else:
                key.append(part if isinstance(part, int) else 0)
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
        return key

    def _field_schema(self, error):
        """The innermost schema with an x-message on the way to the failed keyword."""
        node, found = schema(), {}
        for part in error.absolute_schema_path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
            if isinstance(node, dict) and "$ref" in node:
                if node.get("x-message"):
                    found = node
                node = schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
            if isinstance(node, dict) and node.get("x-message"):
                found = node
        return found

    # 2. values packaging must read (x-format)
    def formats(self):
        defs = schema()["$defs"]
        for section, sec_schema in schema()["properties"].items():
            props = sec_schema["items"]["properties"]
            for i, entry in enumerate(self.data.get(section) or []):
                for field, ref in props.items():
                    fmt_def = defs.get(ref.get("$ref", "").rsplit("/", 1)[-1], {})
                    value = entry.get(field)
                    if value is None or "x-format" not in fmt_def:
                        continue
                    try:
                        (Version if fmt_def["x-format"] == "version" else SpecifierSet)(str(value))
                    except (InvalidVersion, InvalidSpecifier):
                        self.fail(self.where([section, i, field]), "{}: {!r}".format(fmt_def["x-message"], value))

    # 3. no entry twice, links between sections
    def links(self):

        for section in schema()["properties"]:
            seen = set()
            for i, entry in enumerate(self.data.get(section) or []):
                name = (entry.get("version") or entry.get("name") or entry.get("flavor")
                        or entry.get("code_path") or entry.get("id"))
                if name in seen:
                    self.fail(self.where([section, i]), "duplicate entry {!r}".format(name))
                seen.add(name)
        cuda = {line_of(c["version"]): c for c in self.data["cuda"]}
        for i, entry in enumerate(self.data["tensorflow"]):
            if entry["cuda"] and line_of(entry["cuda"]) not in cuda:
                self.fail(self.where(["tensorflow", i, "cuda"]),
                          "CUDA {} has no entry in the cuda section".format(entry["cuda"]))
        for i, img in enumerate(self.data["images"]):
            if img["cuda"] is None:
                continue
            row = cuda.get(line_of(img["cuda"]))
            if row is None:
                self.fail(self.where(["images", i, "cuda"]), "CUDA {} has no entry in the cuda section".format(img["cuda"]))
            if img["min_driver"] is not None and Version(img["min_driver"]) < Version(row["min_driver"]):
                self.fail(self.where(["images", i, "min_driver"]), "{} is below CUDA {}'s minimum driver {}".format(
                    img["min_driver"], row["version"], row["min_driver"]))
        paths = {e["code_path"] for e in self.data["od_api"]} | {"none"}
        for i, entry in enumerate(self.data["tensorflow"]):
            if entry["od_api"] not in paths:
                self.fail(self.where(["tensorflow", i, "od_api"]), "{!r} is not an od_api code_path ({})".format(
                    entry["od_api"], ", ".join(sorted(paths))))
        flavors = [e["flavor"] for e in self.data["images"]]
        for flavor in FLAVORS:
            if flavor not in flavors:
                self.fail("images", "image flavour {!r} missing".format(flavor))


def digest(path):
    """sha256 of the matrix file, the schema and this module: a file that validated once with
    them is not validated again (jsonschema's import + validation cost ~0.3 s per command)."""
    import hashlib

    h = hashlib.sha256()
    for p in (str(path), SCHEMA_PATH, os.path.abspath(__file__)):
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:32]


def _stamp(key):

    return os.path.join(cache_dir("matrix-validated"), key)


def validate(data, path, key=None):
    """Raise MatrixError for the first problem in `data` (the parsed compat_matrix.yaml).
    `key` (see `digest`): skip a file that validated before, and remember one that does now."""
    data.setdefault("known_issues", [])
    data.setdefault("effective_bounds", [])
    if key and os.path.exists(_stamp(key)):
        return
    check = Checker(data, path)
    check.shape()
    check.formats()
    check.links()
    if key:
        try:
            from odcore.cache import make_dir
            make_dir("matrix-validated")
            open(_stamp(key), "w").close()
        except OSError:  # a read-only home: validate every time
            pass
