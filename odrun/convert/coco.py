"""COCO instances JSON: images, annotations (bbox = [x, y, width, height]), categories."""
import json
import os

from odrun.convert import problems as P


def load(json_path, image_dir=None):
    base = os.path.dirname(os.path.abspath(json_path))
    try:
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [], [P.error(json_path, "cannot parse COCO JSON: {}".format(exc))]
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        return [], [P.error(json_path, "not a COCO instances file: no 'images' list")]
    cats = {c.get("id"): str(c.get("name", "")).strip() for c in data.get("categories") or []}
    items, by_id, found, missing_ids = [], {}, [], set()
    dirs = [image_dir] if image_dir else [base, os.path.join(base, "images")]
    for img in data["images"]:
        fname = str(img.get("file_name", ""))
        cands = [os.path.join(d, fname) for d in dirs]
        image = next((c for c in cands if os.path.isfile(c)), None)
        if image is None:
            found.append(P.error(json_path, "image {!r} (id {}) not found (looked in: {})".format(
                fname, img.get("id"), ", ".join(dirs))))
            missing_ids.add(img.get("id"))
            continue
        size = None
        if img.get("width") and img.get("height"):
            size = (int(img["width"]), int(img["height"]))
        item = {"filename": os.path.basename(fname), "image": image, "ann": json_path, "size": size,
                "objects": []}
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
        try:
            x, y, w, h = [float(v) for v in ann["bbox"]]
        except (KeyError, TypeError, ValueError):
            found.append(P.error(json_path, "bbox must be [x, y, width, height]", where))
            continue
        item["objects"].append({"name": name, "xmin": x, "ymin": y, "xmax": x + w, "ymax": y + h,
                                "difficult": 0, "truncated": 0, "pose": "Unspecified",
                                "crowd": int(bool(ann.get("iscrowd"))),
                                "where": "{} {!r} ({})".format(where, name, item["filename"])})
    return items, found
