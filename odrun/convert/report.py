"""DATA/report.png: what is in a converted dataset (as Ultralytics' labels.jpg and MMDetection's
browse_dataset show it), drawn with Pillow (plot.py) from the train/test CSVs that convert wrote.

Panels: boxes per class (train/test), box width x height in pixels, box aspect ratios, boxes per
image, image sizes, and a grid of sample images with their boxes. Also the size warnings a user
needs before training: images smaller than the model input, boxes too small to be learned once
the image is resized to the input size (MIN_BOX_PX on their shorter side).
"""
import collections
import csv
import math
import os
import random

from odcore import imagefile
from odcore.fileio import atomic_path
from odrun.convert import plot

REPORT = "report.png"
NAN = float("nan")
DEFAULT_INPUT_SIZE = 300  # the default template's (ssd_mobilenet_v2) fixed_shape_resizer
MIN_BOX_PX = 8  # shorter side after resizing to the input size; the SSD's smallest anchors are ~30 px
SAMPLES = 8
THUMB = 256  # px, the sample grid's images


COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")
NUMBERS = ("width", "height", "xmin", "ymin", "xmax", "ymax")


class Boxes(object):
    """The train/test CSVs' rows as columns (`rows.width`, `rows["class"]`, ...: lists), one row a box;
    plain Python (pandas and numpy imports were most of a 300-image `odrun convert`)."""

    def __init__(self, cols):
        self.cols = cols

    def __getattr__(self, name):
        try:
            return self.__dict__["cols"][name]
        except KeyError:
            raise AttributeError(name)

    def __getitem__(self, name):
        return self.cols[name]

    def __len__(self):
        return len(self.cols["filename"])

    def where(self, keep):
        """The rows whose `keep` (a bool per row) is true."""
        return Boxes({k: [v for v, ok in zip(col, keep) if ok] for k, col in self.cols.items()})

    def images(self):
        """One row per image (its first box), in file order."""
        seen = set()
        first = [not (n in seen or seen.add(n)) for n in self.filename]
        return self.where(first)

    def per_image(self):
        return list(collections.Counter(self.filename).values())

    def shorter_side_at(self, input_size):
        """Each box's shorter side (px) once its image is resized to input_size x input_size (NaN: unknown)."""
        return [min(bw, bh) * min(input_size / w, input_size / h) if w > 0 and h > 0 else NAN
                for bw, bh, w, h in zip(self.bw, self.bh, self.width, self.height)]


def _number(text):
    try:
        return float(text)
    except ValueError:
        return NAN


def _frames(data_dir):
    rows = []
    for split in ("train", "test"):
        path = os.path.join(data_dir, split + "_labels.csv")
        if os.path.exists(path):
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                head = next(reader, None) or []
                at = [head.index(c) for c in COLUMNS]
                rows += [[r[i] for i in at] + [split] for r in reader if len(r) >= len(head)]
    cols = {}
    for i, c in enumerate(COLUMNS + ("split",)):
        cols[c] = [_number(r[i]) for r in rows] if c in NUMBERS else [r[i] for r in rows]
    cols["bw"] = [b - a for a, b in zip(cols["xmin"], cols["xmax"])]
    cols["bh"] = [b - a for a, b in zip(cols["ymin"], cols["ymax"])]
    return Boxes(cols)


def size_warnings(df, input_size=DEFAULT_INPUT_SIZE, limit=5):
    """[str]: images smaller than the input, boxes below MIN_BOX_PX after the resize."""
    out = []
    images = df.images()
    small = images.where([w < input_size or h < input_size for w, h in zip(images.width, images.height)])
    if len(small):
        out.append("{} of {} images are smaller than the model input {}x{} (they are upscaled), e.g. {}".format(
            len(small), len(images), input_size, input_size,
            ", ".join("{} {}x{}".format(n, int(w), int(h)) for n, w, h in
                      list(zip(small.filename, small.width, small.height))[:limit])))
    tiny = df.where([v < MIN_BOX_PX for v in df.shorter_side_at(input_size)])  # (NaN compares False)
    if len(tiny):
        out.append("{} of {} boxes are under {} px on their shorter side at input size {} (too small to be "
                   "learned well; use a larger --image-size or crop the images), e.g. {}".format(
                       len(tiny), len(df), MIN_BOX_PX, input_size,
                       ", ".join("{} {} {:g}x{:g}".format(n, c, w, h) for n, c, w, h in
                                 list(zip(tiny.filename, tiny["class"], tiny.bw, tiny.bh))[:limit])))
    return out


def _find_images(roots, names):
    """filename -> path, looking under the source folders (VOC: beside the XML)."""
    wanted, found = set(names), {}
    for root in roots:
        if not root:
            continue
        root = root if os.path.isdir(root) else os.path.dirname(os.path.abspath(root))
        for folder, _dirs, files in os.walk(root):
            for f in files:
                rel = os.path.relpath(os.path.join(folder, f), root)
                for key in (f, rel):
                    if key in wanted and key not in found:
                        found[key] = os.path.join(folder, f)
            if len(found) >= len(wanted):
                return found
    return found


SIZE = (1280, 960)  # px: what matplotlib's 16x12 in at 80 dpi gave
# plotting areas (x0, y0, x1, y1): row 1 boxes, row 2 images, row 3 the sample thumbnails
AREAS = {"per_class": (64, 70, 620, 282), "box_sizes": (690, 70, 932, 282), "ratios": (1000, 70, 1248, 282),
         "per_image": (64, 370, 306, 582), "image_sizes": (380, 370, 620, 582), "seen": (690, 370, 1248, 582)}
SAMPLE_ROW = (64, 680, 1248, 930)


def write(data_dir, summary, out_path=None, input_size=DEFAULT_INPUT_SIZE, seed=0, find_images=None, shown_dir=None):
    """Draw the report; -> (path, warnings). Rows: boxes (_draw_boxes), images (_draw_images),
    sample thumbnails with their boxes (_draw_samples). find_images(names) -> {name: image path} for
    the samples (default: look under the summary's source folders; `odrun inspect` takes them from
    the records). shown_dir: the folder named in the title (default data_dir; convert draws into its
    staged folder and names --out)."""
    from PIL import Image, ImageDraw

    df = _frames(data_dir)
    out_path = out_path or os.path.join(data_dir, REPORT)
    classes = [c["name"] for c in summary.get("classes", [])] or sorted(set(df["class"]))
    fig = Image.new("RGB", SIZE, "#ffffff")
    _draw_boxes(fig, df, classes)
    negatives = summary.get("images", {}).get("negatives", 0)
    _draw_images(fig, df, negatives, input_size)
    _draw_samples(fig, df, classes, summary, seed, find_images)

    warnings = size_warnings(df, input_size)
    plot.centered(ImageDraw.Draw(fig), (SIZE[0] / 2, 18), "{}: {} images, {} boxes, {} classes".format(
        os.path.abspath(shown_dir or data_dir), len(set(df.filename)) + int(negatives), len(df), len(classes)), 16)
    with atomic_path(out_path) as tmp:
        fig.save(tmp, format="PNG", compress_level=3)
    return out_path, warnings


def _top(values):
    finite = [v for v in values if math.isfinite(v)]
    return (min(finite), max(finite)) if finite else (0.0, 1.0)


def _around(lo, hi, margin):
    return lo - margin * (hi - lo), hi + margin * (hi - lo)


def _draw_boxes(fig, df, classes):
    """Row 1: boxes per class and split, box sizes, aspect ratios."""
    per = collections.Counter(zip(df["class"], df.split))
    counts = {s: [per[(c, s)] for c in classes] for s in ("train", "test")}
    tops = [a + b for a, b in zip(counts["train"], counts["test"])]
    ax = plot.Panel(fig, AREAS["per_class"], (-0.6, len(classes) - 0.4), (0, max(tops + [1]) * 1.05),
                    title="boxes per class")
    x = list(range(len(classes)))
    ax.bars([i - 0.4 for i in x], [i + 0.4 for i in x], counts["train"], plot.TAB10[0])
    ax.bars([i - 0.4 for i in x], [i + 0.4 for i in x], counts["test"], plot.TAB10[1], bottoms=counts["train"])
    ax.frame(xticks=x, xticklabels=[c[:20] for c in classes], rotate=len(classes) > 6)
    ax.legend([(plot.TAB10[0], "train", "box"), (plot.TAB10[1], "test", "box")])

    ax = plot.Panel(fig, AREAS["box_sizes"], _around(*(_top(df.bw) + (0.05,))), _around(*(_top(df.bh) + (0.05,))),
                    title="box sizes", xlabel="box width (px)", ylabel="box height (px)")
    for i, c in enumerate(classes):
        sel = [k == c for k in df["class"]]
        ax.scatter(df.where(sel).bw, df.where(sel).bh, plot.TAB10[i % 10])
    ax.frame()
    if 0 < len(classes) <= 10:
        ax.legend([(plot.TAB10[i % 10], c[:16], "dot") for i, c in enumerate(classes)], corner="br", size=9)

    logs = [math.log2(w / h) for w, h in zip(df.bw, df.bh) if w > 0 and h > 0]  # (NaN compares False)
    edges = plot.spread(*(_top(logs) + (30,)))
    counts = plot.histogram(logs, edges)
    ax = plot.Panel(fig, AREAS["ratios"], (edges[0], edges[-1]), (0, max(counts + [1]) * 1.05),
                    title="box aspect ratios", xlabel="log2(width / height)")
    ax.bars(edges[:-1], edges[1:], counts, plot.TAB10[0])
    ax.frame()


def _draw_images(fig, df, negatives, input_size):
    """Row 2: boxes per image (negatives count as 0), image sizes, box sizes at the model's input size."""
    values = df.per_image() + [0] * int(negatives)
    top = max(values + [1])
    edges = [i - 0.5 for i in range(0, top + 2)]
    counts = plot.histogram(values, edges)
    ax = plot.Panel(fig, AREAS["per_image"], (edges[0], edges[-1]), (0, max(counts + [1]) * 1.05),
                    title="boxes per image ({} images)".format(len(values)), xlabel="boxes per image")
    ax.bars(edges[:-1], edges[1:], counts, plot.TAB10[0])
    ax.frame(xticks=[t for t in plot.nice_ticks(0, top + 0.5) if t == int(t) and t <= top])

    images = df.images()
    lo_w, hi_w = _around(*(_top(images.width + [input_size]) + (0.08,)))
    lo_h, hi_h = _around(*(_top(images.height + [input_size]) + (0.08,)))
    ax = plot.Panel(fig, AREAS["image_sizes"], (lo_w - 1, hi_w + 1), (lo_h - 1, hi_h + 1),
                    title="image sizes", xlabel="image width", ylabel="image height")
    ax.scatter(images.width, images.height, plot.TAB10[0], r=3)
    ax.vline(input_size)
    ax.hline(input_size)
    ax.frame()
    ax.legend([("#ff0000", "model input {}".format(input_size), "dash")], corner="mr", size=9)

    rel = [v for v in df.shorter_side_at(input_size) if math.isfinite(v)]
    lo, hi = _top(rel + [MIN_BOX_PX])
    edges = plot.spread(lo, hi, 40)
    counts = plot.histogram(rel, edges)
    ax = plot.Panel(fig, AREAS["seen"], _around(edges[0], edges[-1], 0.03), (0, max(counts + [1]) * 1.05),
                    title="box sizes the model sees", xlabel="shorter box side after resizing to {} px".format(input_size))
    ax.bars(edges[:-1], edges[1:], counts, plot.TAB10[0])
    ax.vline(MIN_BOX_PX)
    ax.frame()
    ax.legend([("#ff0000", "{} px".format(MIN_BOX_PX), "dash")], size=9)


def _draw_samples(fig, df, classes, summary, seed, find_images=None):
    """Row 3: SAMPLES images picked with `seed`, as thumbnails with their boxes."""
    from PIL import ImageDraw
    names = sorted(set(df.filename))
    picked = [names[i] for i in sorted(random.Random(seed).sample(range(len(names)), min(SAMPLES, len(names))))]
    roots = [summary.get("source"), summary.get("train_dir"), summary.get("test_dir")]
    paths = (find_images or (lambda names: _find_images(roots, names)))(picked)
    x0, y0, x1, y1 = SAMPLE_ROW
    cell = (x1 - x0) / SAMPLES
    side = int(min(cell - 16, y1 - y0 - 24))
    draw = ImageDraw.Draw(fig)
    for i, name in enumerate(picked):
        if name not in paths:
            continue
        try:
            opened = imagefile.open_file(paths[name])[1]  # the one opener (regular files, caps)
        except imagefile.ImageRefused:
            continue  # found by name beside the dataset, not the converted file: no thumbnail
        with opened as im:
            full = im.size
            im.draft("RGB", (THUMB, THUMB))  # JPEG: decode at 1/2..1/8 scale (fast on big photos)
            im = im.convert("RGB")
            im.thumbnail((side, side))
        sx, sy = im.size[0] / float(full[0]), im.size[1] / float(full[1])
        left = int(x0 + i * cell + (cell - im.size[0]) / 2)
        top = int(y0 + 20 + (side - im.size[1]) / 2)
        fig.paste(im, (left, top))
        rows = df.where([n == name for n in df.filename])
        for cname, bx, by, bw, bh in zip(rows["class"], rows.xmin, rows.ymin, rows.bw, rows.bh):
            k = classes.index(cname) if cname in classes else 0
            draw.rectangle([left + bx * sx, top + by * sy, left + (bx + bw) * sx, top + (by + bh) * sy],
                           outline=plot.TAB10[k % 10], width=2)
        plot.centered(draw, (x0 + i * cell + cell / 2, top - 4), name[:18], 10, anchor="mb")
