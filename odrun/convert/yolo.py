"""YOLO text datasets (labelImg's YOLO save, Ultralytics/Roboflow exports) -> convert items.

Layouts: images/ + labels/ (a label file is the image path with the last /images/ replaced by
/labels/ and the extension by .txt, Ultralytics' rule), or labels beside the images (labelImg).
Class names: classes.txt (one per line), or a data.yaml with `names` (a list or a {id: name} dict);
data.yaml's `train` and `val` (folders, .txt lists of image paths, or lists of those) become the
train and test splits. A line is
`class cx cy w h` (normalised 0..1), or `class x1 y1 x2 y2 ...` (a polygon: instance mask).
Coordinates stay normalised here; the worker scales them by the real image size (relative.py).
"""
import os

from odrun.convert import problems as P, safety

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def is_source(source):
    if os.path.isfile(source):
        return source.lower().endswith((".yaml", ".yml"))
    if not os.path.isdir(source):
        return False
    names = os.listdir(source)
    return "data.yaml" in names or os.path.isdir(os.path.join(source, "labels")) or (
        "classes.txt" in names and any(n.endswith(".txt") and n != "classes.txt" for n in names))


def _names(root, yaml_path):
    """-> (class names list, problems)."""
    if yaml_path:
        import yaml
        try:
            with open(yaml_path, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as exc:
            return None, data_err(yaml_path, "cannot parse YAML: {}".format(exc))
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            try:
                names = [str(names[k]) for k in sorted(names, key=int)]
            except (TypeError, ValueError):
                return None, data_err(yaml_path, "names: the keys must be the class numbers 0, 1, ...")
        if not isinstance(names, list) or not names:
            return None, data_err(yaml_path, "needs `names`: a list of class names (or {0: name, ...})")
        return [str(n).strip() for n in names], []
    for cand in (os.path.join(root, "classes.txt"), os.path.join(root, "labels", "classes.txt")):
        if os.path.isfile(cand):
            with open(cand, encoding="utf-8") as f:
                return [line.strip() for line in f if line.strip()], []
    return None, data_err(root, "no classes.txt or data.yaml with the class names")


def data_err(path, message):
    return [P.error(path, message)]


def _split_sources(yaml_path):
    """data.yaml's {split: [image paths]}, val -> test (what the OD API evaluates); -> (splits, problems).

    `train`/`val` as Ultralytics reads them: a folder, a .txt file listing image paths (one a line;
    `./x` relative to the .txt file), or a list of those."""
    import yaml
    with open(yaml_path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    base = os.path.dirname(os.path.abspath(yaml_path))
    root = os.path.normpath(os.path.join(base, str(data["path"]))) if data.get("path") else base
    if data.get("path") and not os.path.isdir(root):
        root = base
    out, found = {}, []
    for key, split in (("train", "train"), ("val", "test")):
        value = data.get(key)
        if value is None:
            continue
        images = []
        for entry in (value if isinstance(value, list) else [value]):
            got, problems = _entry_images(yaml_path, key, entry, root, base)
            images += got
            found += problems
        out[split] = list(dict.fromkeys(images))
    if "train" in out and set(out["train"]) == set(out.get("test", ())):
        out.pop("test")  # coco128-style: the same images for both; split anew
    return out, found


def _entry_images(yaml_path, key, entry, root, base):
    """One `train:`/`val:` entry (a folder or an image-list .txt) -> (image paths, problems)."""
    if not isinstance(entry, str) or not entry.strip():
        return [], data_err(yaml_path, "{}: expected a folder or a .txt list of images, got {!r}".format(key, entry))
    tries = [entry] + ([entry[3:]] if entry.startswith("../") else [])  # Roboflow's `../train/images`, as Ultralytics
    cands = [os.path.normpath(os.path.join(d, e)) for e in tries for d in (root, base)]
    path = next((c for c in cands if os.path.exists(c)), None)
    if path is None:
        return [], [P.error(yaml_path, "{!r} not found (relative to {})".format(entry, " and ".join(
            sorted({root, base}))), key)]
    if os.path.isdir(path):
        return _images(path), []
    if not path.lower().endswith(".txt"):
        return [], [P.error(yaml_path, "{!r} is neither a folder nor a .txt list of image paths".format(entry), key)]
    return _listed_images(path, root)


def _listed_images(txt, root):
    """An Ultralytics image list: one path a line, `./x` relative to the list's folder; -> (paths, problems)."""
    here, images, found = os.path.dirname(os.path.abspath(txt)), [], []
    with open(txt, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            name = line.strip()
            if not name or name.startswith("#"):
                continue
            cands = [name] if os.path.isabs(name) else [os.path.normpath(os.path.join(d, name)) for d in (here, root)]
            image = next((c for c in cands if os.path.isfile(c)), None)
            if image is None:
                found.append(P.error(txt, "image {!r} not found".format(name), "line {}".format(n)))
            elif not image.lower().endswith(IMAGE_EXTS):
                found.append(P.error(txt, "{!r} is not a .jpg/.png image".format(name), "line {}".format(n)))
            else:
                images.append(image)
    return images, found


def _label_path(image):
    head, sep, tail = image.rpartition(os.sep + "images" + os.sep)
    stem = os.path.splitext(image)[0] + ".txt"
    if sep:
        moved = os.path.splitext(head + os.sep + "labels" + os.sep + tail)[0] + ".txt"
        if os.path.isfile(moved) or not os.path.isfile(stem):
            return moved
    return stem


def _images(folder):
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        found += [os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(IMAGE_EXTS)]
    return found


def parse_line(path, n, line, names):
    """-> (object or None, problem or None) for line n (1-based) of a label file."""
    where = "line {}".format(n)
    parts = line.split()
    try:
        cls, values = int(parts[0]), [float(v) for v in parts[1:]]
    except ValueError:
        return None, P.error(path, "expected `class cx cy w h` (numbers), got {!r}".format(line.strip()[:80]), where)
    if not 0 <= cls < len(names):
        return None, P.error(path, "class {} is not in the {} class names (0..{})".format(
            cls, len(names), len(names) - 1), where)
    if len(values) != 4 and (len(values) < 6 or len(values) % 2):
        return None, P.error(path, "expected 4 numbers (cx cy w h) or an even number >= 6 (polygon x y ...), got "
                                   "{}".format(len(values)), where)
    if not safety.finite(values) or min(values) < 0 or max(values) > 1:
        return None, P.error(path, "coordinates must be normalised to 0..1 (fractions of the image size), got "
                                   "{}".format(" ".join(parts[1:])[:80]), where)
    obj = {"name": names[cls], "difficult": 0, "truncated": 0, "pose": "Unspecified", "normalized": True,
           "where": "{} {!r}".format(where, names[cls])}
    if len(values) == 4:
        cx, cy, w, h = values
        obj.update(xmin=cx - w / 2, ymin=cy - h / 2, xmax=cx + w / 2, ymax=cy + h / 2)
    else:
        xs, ys = values[0::2], values[1::2]
        obj.update(xmin=min(xs), ymin=min(ys), xmax=max(xs), ymax=max(ys), segmentation=[values])
    return obj, None


def _item(image, names, split):
    label = _label_path(image)
    item = {"filename": os.path.basename(image), "image": image, "ann": label if os.path.isfile(label) else image,
            "size": None, "objects": [], "ref": os.path.basename(image), "classes": names,
            "roots": [os.path.dirname(image)]}
    if split:
        item["split"] = split
    found = []
    if os.path.isfile(label):
        with open(label, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    obj, problem = parse_line(label, n, line, names)
                    if problem:
                        found.append(problem)
                    else:
                        item["objects"].append(obj)
    return item, found


def load(source, image_dir=None):
    """(items, problems) for a YOLO folder or its data.yaml."""
    yaml_path = source if os.path.isfile(source) else None
    root = os.path.dirname(os.path.abspath(source)) if yaml_path else source
    if not yaml_path and os.path.isfile(os.path.join(root, "data.yaml")):
        yaml_path = os.path.join(root, "data.yaml")
    names, found = _names(root, yaml_path)
    if names is None:
        return [], found
    splits, problems = _split_sources(yaml_path) if yaml_path else ({}, [])
    found += problems
    if not splits and not problems:
        folder = image_dir or (os.path.join(root, "images") if os.path.isdir(os.path.join(root, "images")) else root)
        splits = {None: _images(folder)}
    items = []
    for split, images in sorted(splits.items(), key=lambda kv: str(kv[0])):
        if len(splits) == 1 and split == "train":
            split = None  # no val images: split anew
        for image in images:
            item, problems = _item(image, names, split)
            found += problems
            items.append(item)
    if not items and not found:
        found.append(P.error(source, "no images (.jpg/.png) found under {}".format(
            folder if None in splits else "data.yaml's train/val")))
    polygons = any("segmentation" in o for it in items for o in it["objects"])
    for o in (o for it in items for o in it["objects"] if polygons and "segmentation" not in o):
        o["segmentation"] = [[o["xmin"], o["ymin"], o["xmax"], o["ymin"], o["xmax"], o["ymax"], o["xmin"], o["ymax"]]]
    return items, found
