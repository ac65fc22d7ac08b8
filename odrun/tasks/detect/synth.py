"""Synthetic labelImg-style VOC datasets, deterministic for a seed: `generate` (coloured shapes on
noise, what the demo trains on) and `make_voc` (plain boxes, JPEG or PNG, optional photo-like noise,
for the convert tests and benchmark). Not a model of real data: only shapes, sizes and XML layout."""
import os
import random

from odcore.fileio import atomic_path, write_text

CLASSES = ("circle", "square", "triangle")
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (255, 225, 25)]


def voc_xml(filename, folder, width, height, objects, path=None):
    """labelImg's PascalVocWriter layout (folder, filename, path, source, size, segmented, object/bndbox).
    `objects`: dicts with name, xmin, ymin, xmax, ymax and optional pose, truncated, difficult."""
    from lxml import etree
    root = etree.Element("annotation")
    etree.SubElement(root, "folder").text = folder
    etree.SubElement(root, "filename").text = filename
    etree.SubElement(root, "path").text = path or filename
    etree.SubElement(etree.SubElement(root, "source"), "database").text = "odstack-synthetic"
    size = etree.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        etree.SubElement(size, tag).text = str(value)
    etree.SubElement(root, "segmented").text = "0"
    for o in objects:
        obj = etree.SubElement(root, "object")
        etree.SubElement(obj, "name").text = o["name"]
        etree.SubElement(obj, "pose").text = o.get("pose", "Unspecified")
        etree.SubElement(obj, "truncated").text = str(o.get("truncated", 0))
        etree.SubElement(obj, "difficult").text = str(o.get("difficult", 0))
        box = etree.SubElement(obj, "bndbox")
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            etree.SubElement(box, tag).text = str(int(o[tag]))
    return etree.tostring(root, pretty_print=True, encoding="unicode")


def paint_shape(draw, kind, box, color):
    """Fill one synthetic shape (circle, square, triangle) into its box (also the segment task's masks)."""
    xmin, ymin, xmax, ymax = box
    if kind == "circle":
        draw.ellipse(box, fill=color)
    elif kind == "square":
        draw.rectangle(box, fill=color)
    else:
        draw.polygon([((xmin + xmax) / 2.0, ymin), (xmax, ymax), (xmin, ymax)], fill=color)


def noise_canvas(rng, width, height, contrast=2):
    """A noise picture (shapes stand out, nothing is trivially flat) and its ImageDraw: mid-grey
    (values 64-191) for contrast 2, darker and quieter for more (4: values 32-95)."""
    import numpy as np
    from PIL import Image, ImageDraw
    noise = rng.randint(0, 256, size=(height, width, 3)).astype(np.uint8)
    im = Image.fromarray((noise // contrast + 128 // contrast).astype(np.uint8))
    return im, ImageDraw.Draw(im)


def random_square(rng, classes, width, height, min_part, max_part=2):
    """A class and a square (x, y, side) inside the picture, side from 1/min_part to 1/max_part of it."""
    kind = classes[rng.randint(len(classes))]
    side = rng.randint(int(min(width, height) / min_part), int(min(width, height) / max_part))
    x, y = rng.randint(0, width - side), rng.randint(0, height - side)
    return kind, x, y, side


def generate(out_dir, count=60, width=160, height=160, seed=0, max_objects=3, classes=CLASSES,
             sizes=(5, 2), contrast=2, class_colors=False):
    """Write count JPEG+XML pairs into out_dir; returns the list of image paths. sizes: a shape's
    side spans 1/sizes[0] to 1/sizes[1] of the picture; contrast: noise_canvas's; class_colors:
    each class keeps one colour (an easier set, what the demo learns in a few minutes)."""
    import numpy as np
    rng = np.random.RandomState(seed)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i in range(count):
        im, draw = noise_canvas(rng, width, height, contrast)
        objects = []
        for _ in range(rng.randint(1, max_objects + 1)):
            kind, x, y, side = random_square(rng, classes, width, height, *sizes)
            box = (x, y, x + side, y + side)
            color = PALETTE[classes.index(kind) % len(PALETTE)] if class_colors else PALETTE[rng.randint(len(PALETTE))]
            paint_shape(draw, kind, box, color)
            objects.append(dict(zip(("name", "xmin", "ymin", "xmax", "ymax"), (kind,) + box)))
        name = "synth_{:04d}.jpg".format(i)
        path = os.path.join(out_dir, name)
        with atomic_path(path) as tmp:
            im.save(tmp, format="JPEG", quality=92)
        write_text(os.path.splitext(path)[0] + ".xml",
                   voc_xml(name, os.path.basename(os.path.abspath(out_dir)), width, height, objects))
        paths.append(path)
    return paths


def make_voc(out_dir, n, classes=("cat", "dog"), size=(96, 72), seed=0, max_objects=3, fmt="JPEG",
             quality=90, noise=0):
    """Write n images + XMLs into out_dir; returns {filename: objects}.

    `noise` (0-255) adds pixel noise so JPEGs have photo-like sizes (a 640x480 photo is
    ~50-150 KB; flat colours compress to a few KB and would flatter any I/O benchmark)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    os.makedirs(out_dir, exist_ok=True)
    w, h = size
    truth = {}
    for i in range(n):
        ext = "jpg" if fmt == "JPEG" else "png"
        name = "img_{:05d}.{}".format(i, ext)
        im = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
        draw = ImageDraw.Draw(im)
        objects = []
        for k in range(rng.randint(1, max_objects)):
            cls = classes[(i + k) % len(classes)]
            bw, bh = rng.randint(w // 8, w // 2), rng.randint(h // 8, h // 2)
            x0, y0 = rng.randint(1, w - bw - 1), rng.randint(1, h - bh - 1)
            draw.rectangle([x0, y0, x0 + bw, y0 + bh], fill=(50 * (classes.index(cls) + 1) % 256, 40, 200))
            objects.append({"name": cls, "xmin": x0, "ymin": y0, "xmax": x0 + bw, "ymax": y0 + bh,
                            "difficult": int(k == 2), "truncated": 0, "pose": "Unspecified"})
        if noise:
            import numpy as np

            arr = np.asarray(im, dtype=np.int16)
            arr = arr + np.random.RandomState(seed * 100003 + i).randint(-noise, noise + 1, arr.shape)
            im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        im.save(os.path.join(out_dir, name), fmt, **({"quality": quality} if fmt == "JPEG" else {}))
        with open(os.path.join(out_dir, os.path.splitext(name)[0] + ".xml"), "wb") as f:
            f.write(voc_xml(name, os.path.basename(out_dir), w, h, objects,
                            path=os.path.join(out_dir, name)).encode("utf-8"))
        truth[name] = objects
    return truth
