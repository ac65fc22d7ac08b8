"""A small synthetic detection dataset: coloured shapes on noise, one labelImg-style
Pascal VOC XML per JPEG (what the seeds annotate by hand), deterministic for a seed."""
import os

CLASSES = ("circle", "square", "triangle")
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (255, 225, 25)]


def voc_xml(filename, folder, width, height, objects):
    """labelImg's annotation layout (folder, filename, size, object/bndbox)."""
    from lxml import etree
    root = etree.Element("annotation")
    etree.SubElement(root, "folder").text = folder
    etree.SubElement(root, "filename").text = filename
    etree.SubElement(root, "path").text = filename
    etree.SubElement(etree.SubElement(root, "source"), "database").text = "odstack-synthetic"
    size = etree.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        etree.SubElement(size, tag).text = str(value)
    etree.SubElement(root, "segmented").text = "0"
    for name, (xmin, ymin, xmax, ymax) in objects:
        obj = etree.SubElement(root, "object")
        etree.SubElement(obj, "name").text = name
        etree.SubElement(obj, "pose").text = "Unspecified"
        etree.SubElement(obj, "truncated").text = "0"
        etree.SubElement(obj, "difficult").text = "0"
        box = etree.SubElement(obj, "bndbox")
        for tag, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
            etree.SubElement(box, tag).text = str(int(value))
    return etree.tostring(root, pretty_print=True, encoding="unicode")


def _shape(draw, kind, box, color):
    xmin, ymin, xmax, ymax = box
    if kind == "circle":
        draw.ellipse(box, fill=color)
    elif kind == "square":
        draw.rectangle(box, fill=color)
    else:
        draw.polygon([((xmin + xmax) / 2.0, ymin), (xmax, ymax), (xmin, ymax)], fill=color)


def generate(out_dir, count=60, width=160, height=160, seed=0, max_objects=3, classes=CLASSES):
    """Write count JPEG+XML pairs into out_dir; returns the list of image paths."""
    import numpy as np
    from PIL import Image, ImageDraw
    from odrun.fileio import atomic_path, write_text
    rng = np.random.RandomState(seed)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i in range(count):
        noise = rng.randint(0, 256, size=(height, width, 3)).astype(np.uint8)
        im = Image.fromarray((noise // 2 + 64).astype(np.uint8))  # mid-grey noise: shapes stand out
        draw = ImageDraw.Draw(im)
        objects = []
        for _ in range(rng.randint(1, max_objects + 1)):
            kind = classes[rng.randint(len(classes))]
            side = rng.randint(min(width, height) // 5, min(width, height) // 2)
            x, y = rng.randint(0, width - side), rng.randint(0, height - side)
            box = (x, y, x + side, y + side)
            _shape(draw, kind, box, PALETTE[rng.randint(len(PALETTE))])
            objects.append((kind, box))
        name = "synth_{:04d}.jpg".format(i)
        path = os.path.join(out_dir, name)
        with atomic_path(path) as tmp:
            im.save(tmp, format="JPEG", quality=92)
        write_text(os.path.splitext(path)[0] + ".xml",
                   voc_xml(name, os.path.basename(os.path.abspath(out_dir)), width, height, objects))
        paths.append(path)
    return paths
