"""An `odrun export` folder's metadata.json, read in one place (detect, predict, serve and the
runtimes): missing or malformed is exit 2 naming the file and the field, never a traceback or a
silently empty dict; and the task a run or export directory belongs to."""
import json
import os

from odcore.errors import UserError

NAME = "metadata.json"


def task_of(directory, name):
    """The "task" field of DIRECTORY/NAME (run.json or metadata.json); "detect" when absent.
    (A damaged file is the task reader's to report: this only routes to it.)"""
    path = os.path.join(directory or "", name)
    if not os.path.isfile(path):
        return "detect"
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return "detect"
    return (data.get("task") if isinstance(data, dict) else None) or "detect"


def export_metadata(export_dir, classifier=None):
    """The one reader of an `odrun export` folder's metadata.json -> (meta, {class id: name}).
    Missing or malformed is exit 2 naming the file/field; `classifier` True/False also refuses
    an export of the other kind (with the verb that reads it)."""
    meta_path = os.path.join(export_dir, "metadata.json")
    if not os.path.isfile(meta_path):
        raise UserError("no metadata.json: not an `odrun export` folder", where=export_dir,
                        fix="odrun export --workdir RUN_DIR --out " + export_dir)
    meta, names = model_metadata(meta_path)
    is_classifier = meta.get("task") == "classify"
    if classifier is True and not is_classifier:
        raise UserError("this export is a detector, not a classifier", where=export_dir,
                        fix="use `odrun detect --model {} ...` for detectors".format(export_dir))
    if classifier is False and is_classifier:
        raise UserError("this export is a classifier, not a detector", where=export_dir,
                        fix="use `odrun predict --model {} ...` for classifiers".format(export_dir))
    return meta, names


def model_metadata(meta_path):
    """An export's metadata.json -> (meta, {class id: name}); anything malformed is exit 2
    naming the file and the field (never a KeyError/JSONDecodeError traceback)."""
    fix = "re-export the model: odrun export --workdir RUN_DIR --out " + os.path.dirname(meta_path)
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError("metadata.json cannot be read as JSON ({})".format(type(exc).__name__), where=meta_path,
                        fix=fix)
    if not isinstance(meta, dict):
        raise UserError("metadata.json must hold a JSON object", where=meta_path, fix=fix)
    classes = meta.get("classes", [])
    if not isinstance(classes, list):
        raise UserError("field 'classes' must be a list of {id, name}", where=meta_path, fix=fix)
    names = {}
    for i, c in enumerate(classes):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or isinstance(c.get("id"), bool) \
                or not isinstance(c.get("id"), int):
            raise UserError("field 'classes[{}]' must be {{\"id\": integer, \"name\": text}}".format(i),
                            where=meta_path, fix=fix)
        names[c["id"]] = c["name"]
    api = meta.get("api")
    if api is not None and api not in ("tf1", "tf2"):
        raise UserError("field 'api' must be \"tf1\" or \"tf2\"", where=meta_path, fix=fix)
    return meta, names
