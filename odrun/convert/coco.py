"""COCO instances JSON: images, annotations (bbox = [x, y, width, height]), categories."""
import os

from odcore import imagefile
from odrun.convert import problems as P, safety, schema


def load(json_path, image_dir=None):
    base = os.path.dirname(os.path.abspath(json_path))
    data, bad = P.read_json(json_path, "COCO JSON")
    if bad:
        return [], bad
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        return [], [P.error(json_path, "not a COCO instances file: no 'images' list")]
    structure = _structure_problems(json_path, data)
    if structure:
        return [], structure
    cats = {c.get("id"): str(c.get("name", "")).strip() for c in data.get("categories") or []}
    items, by_id, found, missing_ids = [], {}, [], set()
    # CVAT's "COCO 1.0" export: annotations/instances_default.json beside images/
    dirs = [image_dir] if image_dir else [base, os.path.join(base, "images"),
                                          os.path.join(os.path.dirname(base), "images")]
    for img in data["images"]:
        fname = str(img.get("file_name", ""))
        cands = [os.path.join(d, fname) for d in dirs]
        image = next((c for c in cands if imagefile.present(c)), None)
        if image is None:
            found.append(P.error(json_path, "image {!r} (id {}) not found (looked in: {})".format(
                fname, img.get("id"), ", ".join(dirs))))
            missing_ids.add(img.get("id"))
            continue
        size = None
        if img.get("width") and img.get("height"):
            size = (int(img["width"]), int(img["height"]))  # checked by _structure_problems
        item = {"filename": os.path.basename(fname), "image": image, "ann": json_path, "size": size,
                "objects": [], "roots": list(dirs), "ref": fname}
        by_id[img.get("id")] = item
        items.append(item)
    for n, ann in enumerate(data.get("annotations") or []):
        where = "annotation id {}".format(ann.get("id", "#{}".format(n + 1)))
        item = by_id.get(ann.get("image_id"))
        if item is None:
            if ann.get("image_id") not in missing_ids:  # a missing image is reported once, above
                found.append(P.error(json_path, "refers to unknown image_id {!r}".format(ann.get("image_id")), where))
            continue
        name = cats.get(ann.get("category_id"))
        if not name:
            found.append(P.error(json_path, "unknown category_id {!r}".format(ann.get("category_id")), where))
            continue
        obj, problem = _object(json_path, ann, name, where, item["filename"])
        if problem:
            found.append(problem)
        else:
            item["objects"].append(obj)
    return items, found


def _object(json_path, ann, name, where, filename):
    """One annotation -> (object, None) or (None, the problem): bbox [x, y, width, height], or
    none when a segmentation gives the box."""
    seg = ann.get("segmentation") or None  # polygons or RLE: instance masks (odrun/tasks/detect/masks)
    try:
        x, y, w, h = [float(v) for v in ann["bbox"]]
    except KeyError:
        if seg is None:
            return None, P.error(json_path, "bbox must be [x, y, width, height]", where)
        x = y = w = h = None  # derived from the mask
    except (TypeError, ValueError):
        return None, P.error(json_path, "bbox must be [x, y, width, height]", where)
    if x is not None and not safety.finite((x, y, w, h)):
        return None, safety.not_finite_error(json_path, "bbox [x, y, width, height]", (x, y, w, h), where)
    obj = {"name": name, "xmin": x, "ymin": y, "xmax": None if x is None else x + w,
           "ymax": None if y is None else y + h, "difficult": 0, "truncated": 0, "pose": "Unspecified",
           "crowd": int(bool(ann.get("iscrowd"))),
           "where": "{} {!r} ({})".format(where, name, filename)}
    if seg is not None:
        obj["segmentation"] = seg
    return obj, None


def _is_id(v):
    return isinstance(v, (int, str)) and not isinstance(v, bool)


def _is_size(v):
    """COCO width/height: a positive finite number (or absent)."""
    if v is None:
        return True
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return safety.finite([v]) and v > 0


def _structure_problems(json_path, data):
    """COCO's types (cocodataset.org/#format-data, odrun/convert/schemas/coco.json), checked before
    any field is used: every problem names the field, e.g. images[3].width or annotations[5].bbox
    (annotation id 17), so the file can be fixed in one go. Then what a schema cannot say (NaN)."""
    found = [P.error(json_path, "field {} must be {}".format(_field(path, data), text))
             for path, text in schema.problems("coco", data)]
    if found:
        return found
    for i, img in enumerate(data["images"]):
        for dim in ("width", "height"):
            if not _is_size(img.get(dim)):
                found.append(P.error(json_path, "field images[{}].{} must be a positive finite number".format(i, dim)))
    return found[:50]


def _field(path, data):
    """The field's path, plus the annotation's own id (what a COCO tool shows) when it has one."""
    text = schema.where(path)
    if len(path) > 1 and path[0] == "annotations":
        ann = data["annotations"][path[1]]
        if isinstance(ann, dict) and _is_id(ann.get("id")):
            text += " (annotation id {})".format(ann["id"])
    return text
