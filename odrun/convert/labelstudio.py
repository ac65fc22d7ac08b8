"""Label Studio's JSON export (a list of tasks) -> convert items.

Each task: `data.image` (a path or URL; the file is looked for by its base name in --images, beside
the JSON and in its images/ folder) and `annotations`; the most recent one that was not cancelled is
used (as label-studio-converter does). Results: `rectanglelabels` (x, y, width, height in percent of
the image, rotation in degrees about the top-left corner) -> boxes, `polygonlabels` (points in
percent) -> masks and boxes; other types are skipped with a warning. Percentages are kept as
fractions and scaled by the real image size in the worker (relative.py).
Format: labelstud.io/guide/export#Label-Studio-JSON-format-of-annotated-tasks
"""
import json
import math
import os
from urllib.parse import parse_qs, unquote, urlparse

from odrun.convert import problems as P, safety


def is_export(data):
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "data" in data[0] and (
        "annotations" in data[0] or "predictions" in data[0] or "completions" in data[0])


def is_source(source):
    if not (os.path.isfile(source) and source.lower().endswith(".json")):
        return False
    try:
        with open(source, encoding="utf-8") as f:
            head = f.read(64)
            if not head.lstrip().startswith("["):
                return False
            text = head + f.read()
    except (OSError, UnicodeDecodeError):
        return False
    try:
        return is_export(json.loads(text))
    except ValueError:  # a list that does not parse: of the formats read, only Label Studio's is a list
        return True


def _image_name(ref):
    url = urlparse(ref)
    if "d" in parse_qs(url.query):  # /data/local-files/?d=folder/img.jpg
        return os.path.basename(unquote(parse_qs(url.query)["d"][0]))
    return os.path.basename(unquote(url.path))


def _corners(v):
    x, y, w, h, rot = (float(v[k]) / 100.0 if k != "rotation" else float(v.get(k) or 0)
                       for k in ("x", "y", "width", "height", "rotation"))
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    return [(x + dx * c - dy * s, y + dx * s + dy * c) for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))], rot


def _object(path, r, where):
    """-> (object or None, problem or None) for one result."""
    kind, v = r.get("type"), r.get("value") or {}
    labels = v.get(kind) or v.get("labels") or []
    if kind not in ("rectanglelabels", "polygonlabels"):
        return None, P.warning(path, "{} result skipped (rectanglelabels and polygonlabels are read)".format(kind), where)
    if not labels:
        return None, P.error(path, "result has no label", where)
    try:
        if kind == "rectanglelabels":
            pts, rot = _corners(v)
        else:
            pts, rot = [(float(p[0]) / 100.0, float(p[1]) / 100.0) for p in v["points"]], 0
    except (KeyError, TypeError, ValueError, IndexError):
        return None, P.error(path, "{} needs numeric {}".format(
            kind, "x, y, width, height" if kind == "rectanglelabels" else "points [[x, y], ...]"), where)
    flat = [c for p in pts for c in p]
    if not safety.finite(flat):
        return None, P.error(path, "coordinates are not finite numbers", where)
    xs, ys = flat[0::2], flat[1::2]
    obj = {"name": str(labels[0]).strip(), "xmin": min(xs), "ymin": min(ys), "xmax": max(xs), "ymax": max(ys),
           "difficult": 0, "truncated": 0, "pose": "Unspecified", "normalized": True,
           "where": "{} {!r}".format(where, str(labels[0]))}
    if kind == "polygonlabels" or rot:
        obj["segmentation"] = [flat]
    return obj, None


def _annotation(task):
    anns = task.get("annotations") or task.get("completions") or []
    anns = [a for a in (anns if isinstance(anns, list) else []) if isinstance(a, dict)
            and not (a.get("was_cancelled") or a.get("skipped"))]
    return max(enumerate(anns), key=lambda ia: (str(ia[1].get("created_at", "")), ia[0]))[1] if anns else None


def load(json_path, image_dir=None):
    base = os.path.dirname(os.path.abspath(json_path))
    data, bad = P.read_json(json_path, "Label Studio JSON")
    if bad:
        return [], bad
    if not is_export(data):
        return [], [P.error(json_path, "not a Label Studio JSON export: a list of tasks with data and annotations")]
    dirs = [image_dir] if image_dir else [base, os.path.join(base, "images")]
    items, found = _tasks(data, json_path, dirs)
    if any(p["level"] == P.ERROR for p in found):  # read again to name the line of each bad task/result
        items, found = _tasks(P.read_json_lines(json_path), json_path, dirs)
    polygons = any("segmentation" in o for it in items for o in it["objects"])
    for o in (o for it in items for o in it["objects"] if polygons and "segmentation" not in o):
        o["segmentation"] = [[o["xmin"], o["ymin"], o["xmax"], o["ymin"], o["xmax"], o["ymax"], o["xmin"], o["ymax"]]]
    return items, found


def _where(obj, text):
    """'line 146: task #2 (id 2) result #1' where the line is known (P.read_json_lines)."""
    line = getattr(obj, "line", None)
    return "line {}: {}".format(line, text) if line else text


def _tasks(data, json_path, dirs):
    """The export's tasks -> (items, problems)."""
    items, found = [], []
    for t, task in enumerate(data):
        if not isinstance(task, dict):
            found.append(P.error(json_path, "a task must be a JSON object, got {}".format(type(task).__name__),
                                 "task #{}".format(t + 1)))
            continue
        ref = str((task.get("data") or {}).get("image") or "")
        name = _image_name(ref)
        image = next((c for d in dirs for c in [os.path.join(d, name)] + [os.path.join(d, name + e) for e in
                                                                          (".jpg", ".jpeg", ".png")]
                      if name and os.path.isfile(c)), None)
        if image is None:
            found.append(P.error(json_path, "image {!r} not found (looked for {!r} in: {})".format(
                ref, name, ", ".join(dirs)), _where(task, "task #{} (id {})".format(t + 1, task.get("id")))))
            continue
        item = {"filename": os.path.basename(image), "image": image, "ann": json_path, "size": None,
                "objects": [], "ref": name, "roots": list(dirs)}
        ann = _annotation(task) or {}
        for n, r in enumerate(ann.get("result") or []):
            where = _where(r, "task #{} (id {}) result #{}".format(t + 1, task.get("id"), n + 1))
            obj, problem = _object(json_path, r, where) if isinstance(r, dict) else (
                None, P.error(json_path, "a result must be a JSON object", where))
            if problem:
                found.append(problem)
            if obj:
                size = (r.get("original_width"), r.get("original_height"))
                if all(isinstance(v, int) and v > 0 for v in size):  # else the image's own size
                    item["size"] = size
                item["objects"].append(obj)
        items.append(item)
    return items, found
