"""Small synthetic labelImg-style VOC datasets (coloured boxes on a plain background), for
tests and the benchmark. Not a model of real data: only shapes, sizes and XML layout."""
import os
import random

from lxml import etree


def voc_xml(filename, width, height, objects, folder="images", path=None):
    """labelImg's PascalVocWriter layout: annotation/folder/filename/path/source/size/segmented/object."""
    ann = etree.Element("annotation")
    etree.SubElement(ann, "folder").text = folder
    etree.SubElement(ann, "filename").text = filename
    etree.SubElement(ann, "path").text = path or filename
    src = etree.SubElement(ann, "source")
    etree.SubElement(src, "database").text = "Unknown"
    size = etree.SubElement(ann, "size")
    for tag, val in (("width", width), ("height", height), ("depth", 3)):
        etree.SubElement(size, tag).text = str(val)
    etree.SubElement(ann, "segmented").text = "0"
    for o in objects:
        obj = etree.SubElement(ann, "object")
        etree.SubElement(obj, "name").text = o["name"]
        etree.SubElement(obj, "pose").text = o.get("pose", "Unspecified")
        etree.SubElement(obj, "truncated").text = str(o.get("truncated", 0))
        etree.SubElement(obj, "difficult").text = str(o.get("difficult", 0))
        box = etree.SubElement(obj, "bndbox")
        for k in ("xmin", "ymin", "xmax", "ymax"):
            etree.SubElement(box, k).text = str(o[k])
    return etree.tostring(ann, pretty_print=True, encoding="utf-8")


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
            f.write(voc_xml(name, w, h, objects, folder=os.path.basename(out_dir),
                            path=os.path.join(out_dir, name)))
        truth[name] = objects
    return truth
