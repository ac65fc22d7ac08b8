"""DATA/report.png: what is in a converted dataset (as Ultralytics' labels.jpg and MMDetection's
browse_dataset show it), drawn with matplotlib from the train/test CSVs that convert wrote.

Panels: boxes per class (train/test), box width x height in pixels, box aspect ratios, boxes per
image, image sizes, and a grid of sample images with their boxes. Also the size warnings a user
needs before training: images smaller than the model input, boxes too small to be learned once
the image is resized to the input size (MIN_BOX_PX on their shorter side).
"""
import os

from odcore import imagefile
from odcore.fileio import atomic_path

REPORT = "report.png"
DEFAULT_INPUT_SIZE = 300  # the default template's (ssd_mobilenet_v2) fixed_shape_resizer
MIN_BOX_PX = 8  # shorter side after resizing to the input size; the SSD's smallest anchors are ~30 px
SAMPLES = 8
THUMB = 256  # px, the sample grid's images


def _frames(data_dir):
    import pandas as pd
    frames = []
    for split in ("train", "test"):
        path = os.path.join(data_dir, split + "_labels.csv")
        if os.path.exists(path):
            df = pd.read_csv(path, keep_default_na=False, dtype={"class": str, "filename": str})
            df["split"] = split
            frames.append(df)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax", "split"])
    for c in ("width", "height", "xmin", "ymin", "xmax", "ymax"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["bw"], df["bh"] = df["xmax"] - df["xmin"], df["ymax"] - df["ymin"]
    return df


def size_warnings(df, input_size=DEFAULT_INPUT_SIZE, limit=5):
    """[str]: images smaller than the input, boxes below MIN_BOX_PX after the resize."""
    out = []
    images = df.drop_duplicates("filename")
    small = images[(images["width"] < input_size) | (images["height"] < input_size)]
    if len(small):
        out.append("{} of {} images are smaller than the model input {}x{} (they are upscaled), e.g. {}".format(
            len(small), len(images), input_size, input_size,
            ", ".join("{} {}x{}".format(r.filename, int(r.width), int(r.height)) for r in small.head(limit).itertuples())))
    scale = (input_size / df["width"]).combine(input_size / df["height"], min)
    tiny = df[(df[["bw", "bh"]].min(axis=1) * scale) < MIN_BOX_PX]
    if len(tiny):
        out.append("{} of {} boxes are under {} px on their shorter side at input size {} (too small to be "
                   "learned well; use a larger --image-size or crop the images), e.g. {}".format(
                       len(tiny), len(df), MIN_BOX_PX, input_size,
                       ", ".join("{} {} {:g}x{:g}".format(r.filename, r._4, r.bw, r.bh)
                                 for r in tiny.head(limit).itertuples())))
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


def write(data_dir, summary, out_path=None, input_size=DEFAULT_INPUT_SIZE, seed=0, find_images=None, shown_dir=None):
    """Draw the report; -> (path, warnings). Rows: boxes (_draw_boxes), images (_draw_images),
    sample thumbnails with their boxes (_draw_samples). find_images(names) -> {name: image path} for
    the samples (default: look under the summary's source folders; `odrun inspect` takes them from
    the records). shown_dir: the folder named in the title (default data_dir; convert draws into its
    staged folder and names --out)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    df = _frames(data_dir)
    out_path = out_path or os.path.join(data_dir, REPORT)
    classes = [c["name"] for c in summary.get("classes", [])] or sorted(df["class"].unique())
    colors = matplotlib.colormaps["tab10"]
    # no pyplot (its import and figure manager cost ~0.4 s) and fixed margins instead of
    # tight_layout (which measures every tick label: ~0.5 s of a ~1.3 s drawing)
    fig = Figure(figsize=(16, 12))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(3, 4, height_ratios=[1, 1, 1.2], left=0.05, right=0.98, bottom=0.03, top=0.93,
                            wspace=0.28, hspace=0.38)
    _draw_boxes(fig, grid, df, classes, colors)
    negatives = summary.get("images", {}).get("negatives", 0)
    _draw_images(fig, grid, df, negatives, input_size)
    _draw_samples(fig, grid, df, classes, colors, summary, seed, find_images)

    warnings = size_warnings(df, input_size)
    fig.suptitle("{}: {} images, {} boxes, {} classes".format(
        os.path.abspath(shown_dir or data_dir), df["filename"].nunique() + int(negatives), len(df), len(classes)))
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    return out_path, warnings


def _draw_boxes(fig, grid, df, classes, colors):
    """Row 1: boxes per class and split, box sizes, aspect ratios."""
    import numpy as np
    ax = fig.add_subplot(grid[0, 0:2])
    x = np.arange(len(classes))
    counts = {s: [int(((df["class"] == c) & (df["split"] == s)).sum()) for c in classes] for s in ("train", "test")}
    ax.bar(x, counts["train"], label="train")
    ax.bar(x, counts["test"], bottom=counts["train"], label="test")
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=30 if len(classes) > 6 else 0, ha="right" if len(classes) > 6 else "center")
    ax.set_title("boxes per class")
    ax.legend()

    ax = fig.add_subplot(grid[0, 2])
    for i, c in enumerate(classes):
        sel = df[df["class"] == c]
        ax.scatter(sel["bw"], sel["bh"], s=6, alpha=0.5, color=colors(i % 10), label=c)
    ax.set_xlabel("box width (px)")
    ax.set_ylabel("box height (px)")
    ax.set_title("box sizes")
    if 0 < len(classes) <= 10:
        ax.legend(fontsize=7, markerscale=2)

    ax = fig.add_subplot(grid[0, 3])
    ratio = (df["bw"] / df["bh"].where(df["bh"] > 0)).dropna()
    ax.hist(np.log2(ratio[ratio > 0]) if len(ratio) else [], bins=30)
    ax.set_xlabel("log2(width / height)")
    ax.set_title("box aspect ratios")


def _draw_images(fig, grid, df, negatives, input_size):
    """Row 2: boxes per image (negatives count as 0), image sizes, box sizes at the model's input size."""
    ax = fig.add_subplot(grid[1, 0])
    per_image = df.groupby("filename").size()
    values = list(per_image.values) + [0] * int(negatives)
    ax.hist(values, bins=range(0, max(values + [1]) + 2), align="left")
    ax.set_xlabel("boxes per image")
    ax.set_title("boxes per image ({} images)".format(len(values)))

    ax = fig.add_subplot(grid[1, 1])
    images = df.drop_duplicates("filename")
    ax.scatter(images["width"], images["height"], s=8, alpha=0.6)
    ax.axvline(input_size, color="red", lw=1, ls="--")
    ax.axhline(input_size, color="red", lw=1, ls="--", label="model input {}".format(input_size))
    ax.set_xlabel("image width")
    ax.set_ylabel("image height")
    ax.set_title("image sizes")
    ax.legend(fontsize=7)

    ax = fig.add_subplot(grid[1, 2:4])
    rel = (df[["bw", "bh"]].min(axis=1) * (input_size / df["width"]).combine(input_size / df["height"], min))
    ax.hist(rel.dropna(), bins=40)
    ax.axvline(MIN_BOX_PX, color="red", lw=1, ls="--", label="{} px".format(MIN_BOX_PX))
    ax.set_xlabel("shorter box side after resizing to {} px".format(input_size))
    ax.set_title("box sizes the model sees")
    ax.legend(fontsize=7)


def _draw_samples(fig, grid, df, classes, colors, summary, seed, find_images=None):
    """Row 3: SAMPLES images picked with `seed`, as thumbnails with their boxes."""
    from matplotlib.patches import Rectangle
    import numpy as np
    names = sorted(df.groupby("filename").size().index)
    rng = np.random.RandomState(seed)
    picked = [names[i] for i in sorted(rng.choice(len(names), min(SAMPLES, len(names)), replace=False))] if names else []
    roots = [summary.get("source"), summary.get("train_dir"), summary.get("test_dir")]
    paths = (find_images or (lambda names: _find_images(roots, names)))(picked)
    sub = grid[2, :].subgridspec(1, SAMPLES)
    for i in range(SAMPLES):
        ax = fig.add_subplot(sub[0, i])
        ax.axis("off")
        if i >= len(picked) or picked[i] not in paths:
            continue
        try:
            opened = imagefile.open_file(paths[picked[i]])[1]  # the one opener (regular files, caps)
        except imagefile.ImageRefused:
            continue  # found by name beside the dataset, not the converted file: no thumbnail
        with opened as im:
            full = im.size
            im.draft("RGB", (THUMB, THUMB))  # JPEG: decode at 1/2..1/8 scale (fast on big photos)
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB))
            sx, sy = im.size[0] / float(full[0]), im.size[1] / float(full[1])
            ax.imshow(im)
        for r in df[df["filename"] == picked[i]].itertuples():
            k = classes.index(r._4) if r._4 in classes else 0
            ax.add_patch(Rectangle((r.xmin * sx, r.ymin * sy), r.bw * sx, r.bh * sy, fill=False,
                                   lw=1.2, edgecolor=colors(k % 10)))
        ax.set_title(picked[i][:18], fontsize=7)
