"""Synthetic class folders for the demo, tests and benchmark, deterministic for a seed: each
class is one kind of picture (a colour + a shape or texture) drawn at a random place, size and
background. Not a model of real photos: only enough signal for a small model to learn."""
import os
import random

# name -> (kind, RGB colour)
CLASSES = (("red_circles", "circle", (220, 30, 40)), ("green_squares", "square", (40, 170, 60)),
           ("blue_stripes", "stripes", (30, 90, 210)), ("yellow_checks", "checks", (235, 200, 30)))


def _draw(draw, kind, color, size, rng):
    w = h = size
    if kind in ("circle", "square"):
        r = rng.randint(size // 5, size // 3)
        cx, cy = rng.randint(r, w - r), rng.randint(r, h - r)
        box = [cx - r, cy - r, cx + r, cy + r]
        (draw.ellipse if kind == "circle" else draw.rectangle)(box, fill=color)
    elif kind == "stripes":
        step = rng.randint(size // 10, size // 6)
        for x in range(rng.randint(0, step), w, step * 2):
            draw.rectangle([x, 0, x + step - 1, h], fill=color)
    else:
        step = rng.randint(size // 8, size // 5)
        for y in range(0, h, step):
            for x in range((y // step) % 2 * step, w, step * 2):
                draw.rectangle([x, y, x + step - 1, y + step - 1], fill=color)


def generate(out_dir, per_class=20, size=96, seed=0, classes=None, fmt="JPEG"):
    """OUT_DIR/<class>/<class>_NNN.jpg; -> list of paths written."""
    from PIL import Image, ImageDraw
    rng = random.Random(seed)
    written = []
    for name, kind, color in (classes or CLASSES):
        folder = os.path.join(out_dir, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            bg = tuple(rng.randint(0, 90) for _ in range(3))
            im = Image.new("RGB", (size, size), bg)
            draw = ImageDraw.Draw(im)
            jitter = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in color)
            _draw(draw, kind, jitter, size, rng)
            ext = ".jpg" if fmt == "JPEG" else "." + fmt.lower()
            path = os.path.join(folder, "{}_{:03d}{}".format(name, i, ext))
            im.save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            written.append(path)
    return written
