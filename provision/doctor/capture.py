"""`provision doctor --root DIR`: check DIR/commands.yaml before the checks read it, so a bad
capture is exit 2 naming the file and the field (not an AttributeError traceback).

The shape is data: provision/data/commands.schema.json (JSON Schema), validated with jsonschema.
"""
import json
import os
from pathlib import Path

from odcore.errors import UserError

SCHEMA = Path(__file__).resolve().parent.parent / "data" / "commands.schema.json"
MAX_BYTES = 16 << 20  # a recorded capture is a few KB; never read an unbounded file


def check_commands_file(root):
    """Parse and validate ROOT/commands.yaml; returns the data or raises UserError."""
    import jsonschema
    import yaml

    path = Path(root) / "commands.yaml"
    fix = "fix {} (layout: tests/fixtures/doctor/<scenario>/commands.yaml)".format(path)
    if not path.is_file():
        raise UserError("no commands.yaml in the captured system root", where=str(root),
                        fix="point --root at a directory made like tests/fixtures/doctor/<scenario>/")
    if path.stat().st_size > MAX_BYTES:
        raise UserError("commands.yaml is larger than {} MB: not a recorded capture".format(MAX_BYTES >> 20),
                        where=str(path), fix=fix)
    try:
        with open(str(path), encoding="utf-8") as f:
            data = yaml.safe_load(f.read(MAX_BYTES))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        at = " at line {}".format(mark.line + 1) if mark is not None else ""
        raise UserError("commands.yaml is not valid YAML{} ({})".format(at, type(exc).__name__),
                        where=str(path), fix=fix)
    data = {} if data is None else data
    with open(str(SCHEMA), encoding="utf-8") as f:
        schema = json.load(f)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is not None:
        field = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        if error.validator == "type":  # say what is expected, without echoing the file's values
            what = "must be of type {}".format(" or ".join(error.validator_value) if isinstance(
                error.validator_value, list) else error.validator_value)
        else:
            what = "does not match the schema ({})".format(error.validator)
        raise UserError("commands.yaml field {} {}".format(field, what), where=str(path), fix=fix)
    for cmd, entry in (data.get("commands") or {}).items():
        ref = entry.get("stdout_file")
        if ref and not os.path.realpath(str(Path(root) / ref)).startswith(os.path.realpath(str(root)) + os.sep):
            raise UserError("commands.yaml field commands/{}/stdout_file leads outside the capture".format(cmd),
                            where=str(path), fix=fix)
    return data
