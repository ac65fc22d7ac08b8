"""labelme JSON (one file per image: imagePath, imageWidth/imageHeight, shapes[]) -> convert items.

Shapes: `polygon`; `rectangle` (2 corner points) and `circle` (centre + a point on the rim)
become polygons; `mask` (labelme >= 5.3: a base64 PNG covering the box given by its 2 points)
becomes an RLE. Shapes with the same label and the same non-null `group_id` are one object
(labelme's way to draw an object in several parts). `point`/`line`/`linestrip` have no area:
skipped with a warning. Boxes are the extent of the rasterised mask.
The labelme format: github.com/wkentaro/labelme (labelme/_label_file.py).
"""
import base64
import json
import math
import os

from odcore import imagefile
from odrun.convert import problems as P, schema

CIRCLE_POINTS = 64  # vertices of the polygon that stands in for a labelme circle
NO_AREA = ("point", "line", "linestrip", "points")


def is_labelme(data):
    return isinstance(data, dict) and isinstance(data.get("shapes"), list) and "imagePath" in data


def is_source(source):
    """A labelme JSON file, or a folder of them (and no VOC XML): `odrun convert` reads it as labelme."""
    if os.path.isdir(source):
        return looks_like_folder(source)
    if not source.lower().endswith(".json") or not os.path.isfile(source):
        return False
    try:
        with open(source, encoding="utf-8") as f:
            head = f.read(1 << 16)
    except (OSError, UnicodeDecodeError):
        return False
    if '"shapes"' not in head or '"imagePath"' not in head:
        return False
    try:
        return is_labelme(json.loads(head)) if len(head) < (1 << 16) else True
    except ValueError:
        return False


def find(folder):
    """labelme JSON files in a folder (sorted), read only far enough to tell them from others."""
    out = []
    for name in sorted(os.listdir(folder)):
        if name.lower().endswith(".json"):
            out.append(os.path.join(folder, name))
    return out


def looks_like_folder(folder):
    """True when the folder holds labelme JSON and no VOC XML."""
    names = os.listdir(folder)
    if any(n.lower().endswith(".xml") for n in names):
        return False
    for path in find(folder)[:3]:
        try:
            with open(path, encoding="utf-8") as f:
                if is_labelme(json.load(f)):
                    return True
        except (OSError, ValueError):
            continue
    return False


def _flat(points):
    return [float(v) for pt in points for v in pt[:2]]


def _circle(points):
    (cx, cy), (px, py) = points[0][:2], points[1][:2]
    r = math.hypot(px - cx, py - cy)
    return [v for k in range(CIRCLE_POINTS) for v in (cx + r * math.cos(2 * math.pi * k / CIRCLE_POINTS),
                                                      cy + r * math.sin(2 * math.pi * k / CIRCLE_POINTS))]


class MaskTooLarge(ValueError):
    """A mask shape's PNG reaches past the image: an error, never cut silently."""


def _mask_rle(shape, width, height, where):
    """labelme's `mask` shape: base64 PNG of the region inside its 2-point box -> full-image RLE.
    The PNG goes through the one image opener's pixel cap (odcore.imagefile.open_bytes)."""
    import numpy as np
    from pycocotools import mask as mask_api
    im = imagefile.open_bytes(base64.b64decode(shape["mask"]), where)
    crop = np.asarray(im.convert("L")) > 0
    (x0, y0), _ = shape["points"][0][:2], shape["points"][1][:2]
    x0, y0 = int(round(x0)), int(round(y0))
    if x0 < 0 or y0 < 0 or x0 + crop.shape[1] > width or y0 + crop.shape[0] > height:
        raise MaskTooLarge("the mask's {}x{} PNG at ({}, {}) reaches past the {}x{} image; redraw the mask "
                           "inside the image".format(crop.shape[1], crop.shape[0], x0, y0, width, height))
    full = np.zeros((height, width), dtype=np.uint8)
    full[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    rle = mask_api.encode(np.asfortranarray(full))
    return {"size": [height, width], "counts": str(rle["counts"], "ascii")}


def _shape_segmentation(shape, width, height, where=None):
    """-> (segmentation part: polygon list or RLE dict, problem message or None)."""
    kind = shape.get("shape_type") or "polygon"
    points = shape.get("points") or []
    if kind == "polygon":
        return _flat(points), None
    if kind == "rectangle" and len(points) == 2:
        (x0, y0), (x1, y1) = points[0][:2], points[1][:2]
        return [x0, y0, x1, y0, x1, y1, x0, y1], None
    if kind == "circle" and len(points) == 2:
        return _circle(points), None
    if kind == "mask" and shape.get("mask") and len(points) == 2:
        if not (width and height):
            return None, "a mask shape needs imageWidth/imageHeight in the file"
        try:
            return _mask_rle(shape, int(width), int(height), where), None
        except MaskTooLarge as exc:
            return None, str(exc)
        except imagefile.ImageRefused:
            raise
        except Exception as exc:  # base64/PNG errors come in many types
            return None, "cannot decode the mask shape's PNG: {}".format(exc)
    return None, "{} shape with {} point(s) cannot be used".format(kind, len(points))


def load_file(path, image_dir=None):
    """-> (item or None, problems) for one labelme JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, [P.error(path, "cannot parse labelme JSON: {}".format(exc))]
    if not is_labelme(data):
        return None, [P.error(path, "not a labelme file: no 'shapes' list and 'imagePath'")]
    bad = schema.problems("labelme", data)  # odrun/convert/schemas/labelme.json: types before any use
    if bad:
        return None, [P.error(path, "field {} must be {}".format(schema.where(field), text)) for field, text in bad]
    base = os.path.dirname(os.path.abspath(path))
    rel = str(data.get("imagePath") or "").replace("\\", "/")
    cands = ([os.path.join(image_dir, os.path.basename(rel))] if image_dir else []) + [
        os.path.join(base, rel), os.path.join(base, os.path.basename(rel))]
    image = next((c for c in cands if rel and imagefile.present(c)), None)
    if image is None:
        return None, [P.error(path, "image {!r} not found (looked in: {}); odrun does not extract the embedded "
                                    "imageData: keep the image file beside the JSON".format(rel, ", ".join(cands)))]
    width, height = data.get("imageWidth"), data.get("imageHeight")
    size = (int(width), int(height)) if width and height else None
    filename = os.path.basename(rel)
    found, groups, order = [], {}, []
    for n, shape in enumerate(data["shapes"]):
        label = str(shape.get("label") or "").strip()
        where = "shape #{} {!r} ({})".format(n + 1, label, filename)
        kind = shape.get("shape_type") or "polygon"
        if kind in NO_AREA:
            found.append(P.warning(path, "{} shape has no area: skipped (only polygon, rectangle, circle and mask "
                                         "shapes become masks)".format(kind), where))
            continue
        if not label:
            found.append(P.error(path, "shape has no label", where))
            continue
        seg, problem = _shape_segmentation(shape, width, height, "{}: {}".format(path, where))
        if problem:
            found.append(P.error(path, problem, where))
            continue
        gid = shape.get("group_id")
        key = (label, gid) if gid is not None else (label, "#{}".format(n))
        if key not in groups:
            groups[key] = {"name": label, "parts": [], "where": where}
            order.append(key)
        groups[key]["parts"].append(seg)
    objects = []
    for key in order:
        g = groups[key]
        rles = [s for s in g["parts"] if isinstance(s, dict)]
        if rles and len(g["parts"]) > 1:
            found.append(P.error(path, "a mask shape cannot share a group_id with other shapes", g["where"]))
            continue
        seg = rles[0] if rles else g["parts"]
        obj = {"name": g["name"], "xmin": None, "ymin": None, "xmax": None, "ymax": None, "difficult": 0,
               "truncated": 0, "pose": "Unspecified", "crowd": 0, "segmentation": seg, "where": g["where"]}
        objects.append(obj)  # the box is the mask's extent (masks.attach)
    item = {"filename": filename, "image": image, "ann": path, "size": size, "objects": objects,
            "roots": [base], "ref": rel}  # convert.safety.check_images: the image stays inside the dataset
    return item, found


def load(source, image_dir=None):
    """(items, problems) for a labelme JSON file or a folder of them."""
    paths = [source] if os.path.isfile(source) else find(source)
    if not paths:
        return [], [P.error(source, "no labelme *.json files here")]
    items, found = [], []
    for path in paths:
        item, problems = load_file(path, image_dir)
        found += problems
        if item is not None:
            items.append(item)
    return items, found
