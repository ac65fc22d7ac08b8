"""Synthetic instance-segmentation data (hand-made, deterministic for a seed): coloured circles,
squares and triangles on noise, written as JPEGs + one COCO instances JSON whose masks are exact.

Each shape is painted on the image and on its own mask canvas with the same PIL call; shapes
painted later cover earlier ones, so an object's mask is its canvas minus the later shapes.
`forms` picks how each object's segmentation is written, cycling per object:
  "rle"      compressed RLE of the exact visible mask (the demo: masks equal the painted pixels)
  "polygon"  the shape's outline as a polygon (what annotation tools save)
  "crowd"    uncompressed RLE with iscrowd 1 (what COCO and CVAT write for crowd regions)
"""
import json
import os

from odcore.fileio import atomic_path, write_text
from odrun.tasks.detect.synth import noise_canvas, paint_shape, random_square

CLASSES = ("circle", "square", "triangle")
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (255, 225, 25)]
CIRCLE_VERTICES = 32


def _outline(kind, box):
    """The shape as a polygon [x0, y0, ...] (circles approximated)."""
    import math
    xmin, ymin, xmax, ymax = [float(v) for v in box]
    if kind == "square":
        return [xmin, ymin, xmax, ymin, xmax, ymax, xmin, ymax]
    if kind == "triangle":
        return [(xmin + xmax) / 2.0, ymin, xmax, ymax, xmin, ymax]
    cx, cy, r = (xmin + xmax) / 2.0, (ymin + ymax) / 2.0, (xmax - xmin) / 2.0
    return [v for k in range(CIRCLE_VERTICES) for v in (cx + r * math.cos(2 * math.pi * k / CIRCLE_VERTICES),
                                                        cy + r * math.sin(2 * math.pi * k / CIRCLE_VERTICES))]


def _uncompressed(mask):
    """COCO's uncompressed RLE: run lengths of the column-major pixels, starting with zeros."""
    import numpy as np
    flat = mask.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], change])).tolist()
    return {"size": list(mask.shape), "counts": counts[:-1] if counts and counts[-1] == 0 else counts}


def generate(out_dir, count=60, width=160, height=160, seed=0, max_objects=3, classes=CLASSES,
             forms=("rle",), json_name="instances.json", sizes=(4, 2), contrast=2, class_colors=False):
    """Write count JPEGs + out_dir/json_name; returns (json path, {file_name: [exact HxW masks]}).
    sizes: a shape's side spans 1/sizes[0] to 1/sizes[1] of the picture; contrast: noise_canvas's;
    class_colors: each class keeps one colour (an easier set, what the demo learns from scratch)."""
    import numpy as np
    from PIL import Image, ImageDraw
    from pycocotools import mask as mask_api
    rng = np.random.RandomState(seed)
    os.makedirs(out_dir, exist_ok=True)
    images, annotations, truth = [], [], {}
    form_index = 0
    for i in range(count):
        im, draw = noise_canvas(rng, width, height, contrast)
        shapes = []
        for _ in range(rng.randint(1, max_objects + 1)):
            kind, x, y, side = random_square(rng, classes, width, height, *sizes)
            box = (x, y, x + side - 1, y + side - 1)
            color = PALETTE[classes.index(kind) % len(PALETTE)] if class_colors else PALETTE[rng.randint(len(PALETTE))]
            paint_shape(draw, kind, box, color)
            canvas = Image.new("L", (width, height), 0)
            paint_shape(ImageDraw.Draw(canvas), kind, box, 1)
            shapes.append((kind, box, np.asarray(canvas, dtype=np.uint8)))
        name = "shapes_{:04d}.jpg".format(i)
        with atomic_path(os.path.join(out_dir, name)) as tmp:
            im.save(tmp, format="JPEG", quality=92)
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
        truth[name] = []
        for k, (kind, box, canvas) in enumerate(shapes):
            visible = canvas.copy()
            for _, _, later in shapes[k + 1:]:
                visible[later > 0] = 0
            if visible.sum() < 16:  # almost fully covered: not an object any more
                continue
            form = forms[form_index % len(forms)]
            form_index += 1
            rle = mask_api.encode(np.asfortranarray(visible))
            x, y, w, h = [float(v) for v in mask_api.toBbox(rle)]
            if form == "polygon":  # the whole outline (occlusion ignored), its extent as the box
                seg, crowd = [_outline(kind, box)], 0
                x, y = min(seg[0][0::2]), min(seg[0][1::2])
                w, h = max(seg[0][0::2]) - x, max(seg[0][1::2]) - y
            elif form == "crowd":
                seg, crowd = _uncompressed(visible), 1
            else:
                seg, crowd = {"size": [height, width], "counts": str(rle["counts"], "ascii")}, 0
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": classes.index(kind) + 1, "bbox": [x, y, w, h],
                                "area": float(visible.sum()), "iscrowd": crowd, "segmentation": seg})
            truth[name].append(visible)
    doc = {"images": images, "annotations": annotations,
           "categories": [{"id": n + 1, "name": c, "supercategory": "shape"} for n, c in enumerate(classes)]}
    path = os.path.join(out_dir, json_name)
    write_text(path, json.dumps(doc))
    return path, truth
