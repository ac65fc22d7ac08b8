"""`provision doctor --root DIR`: check DIR/commands.yaml before the checks read it, so a bad
capture is exit 2 naming the file and the field (not an AttributeError traceback).

The shape is data: provision/data/commands.schema.json (JSON Schema), validated with jsonschema.
"""
import json
import os
import stat
from pathlib import Path

from odcore.errors import UserError
from provision.doctor.system import RECORDED_CAP, parse_smi_xml, read_capped

SCHEMA = Path(__file__).resolve().parent.parent / "data" / "commands.schema.json"
MAX_BYTES = RECORDED_CAP  # a recorded capture is a few KB; read whole up to this, never cut, refused above


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
        if ref:
            _check_recorded_file(Path(root) / ref, cmd, path)
    _check_smi_xml(root, data, path)
    return data


def _check_recorded_file(ref, cmd, path):
    """A stdout_file is a regular file under RECORDED_CAP: read whole, never cut."""
    try:
        st = os.stat(str(ref))
    except OSError:
        raise UserError("the recorded output of `{}` is missing".format(cmd), where=str(ref),
                        fix="add the file, or fix commands/{}/stdout_file in {}".format(cmd, path))
    if not stat.S_ISREG(st.st_mode) or st.st_size > RECORDED_CAP:
        raise UserError("the recorded output of `{}` is not a regular file of at most {} MB".format(
            cmd, RECORDED_CAP >> 20), where=str(ref), fix="record the command's output into a plain file")


def _check_smi_xml(root, data, path):
    """A recorded successful `nvidia-smi -q -x` must be nvidia-smi's XML (the nvml checks parse it)."""
    entry = (data.get("commands") or {}).get("nvidia-smi -q -x")
    if not entry or int(entry.get("rc", 0)) != 0:
        return
    ref = entry.get("stdout_file")
    text = read_capped(Path(root) / ref, RECORDED_CAP) if ref else entry.get("stdout", "")
    try:
        parse_smi_xml(text)
    except ValueError as exc:
        where = str(Path(root) / ref) if ref else "{} (commands/nvidia-smi -q -x/stdout)".format(path)
        raise UserError("recorded `nvidia-smi -q -x` output: {}".format(exc), where=where,
                        fix="record it again with `nvidia-smi -q -x > FILE` (or set rc: to its exit code)")
