"""`odrun convert DIR --task classify --out DATA`: one sub-folder per class -> the slim
TFRecords (image_train_00000-of-00005.tfrecord ...), labels.txt and summary.json.

Replaces the tutorial's slim writer (`_NUM_TEST = 500`, `_RANDOM_SEED = 0`, `_NUM_SHARDS = 5`),
which opens JPEGs in text mode (`UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff` on
Python 3), drops the last len % 5 images of each split, takes any file as an image and
stores every one as b'jpg'. Here:

1. scan: DIR/<class>/* (or DIR/train/<class>/* and DIR/test/<class>/*); an image is a file
   whose extension Pillow knows (any case); other files are listed and skipped;
2. check: every image is decoded fully with Pillow; unreadable files, empty class folders and
   the same bytes filed under two classes are errors (all of them listed, nothing written);
3. split: per class, a seeded shuffle then the last round((1 - split) * n) files (>= 1 when the
   class has two or more) go to test: the same seed gives the same split;
4. write: JPEG and PNG bytes are stored as they are, other formats re-encoded as PNG; features
   image/encoded, image/format, image/class/label, image/height, image/width (slim's
   dataset_utils.image_to_tfexample) plus image/filename; records round-robin over the shards;
5. publish: everything is written into a temp folder beside DATA and renamed into place at the
   end, so an error or Ctrl-C leaves a previous DATA untouched.
"""
import hashlib
import io
import os
import random
import time

from odcore import imagefile, paths
from odcore.errors import UserError
from odcore.fileio import staged_dir, write_json, write_text
from odrun.convert import labelmap
from odrun.convert.safety import ALLOW_FLAG
from odrun import option_defaults
from odrun.tasks.classify import defaults, labels as L, require_tf2
from odrun.ui.progress import ItemProgress
from odrun.ui.quiet import terminal  # the terminal, also while library noise goes to the log

RECORD_PATTERN = "image_{split}_{shard:05d}-of-{shards:05d}.tfrecord"
SUMMARY_NAME = "summary.json"
SPLITS = ("train", "test")
MAX_LISTED = 12


# -- 1. scan -----------------------------------------------------------------------------------

def image_extensions():
    """Every extension Pillow registers a reader for (lower case, with the dot)."""
    from PIL import Image
    Image.init()
    return {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def _visible(names):
    return sorted(n for n in names if not n.startswith("."))


def refusal(path, source, allow_outside=False, class_folder=False):
    """Why a class folder or image cannot be read (issue 22), or None: a name that is not UTF-8,
    a class name with control characters, a symlink that leads outside SOURCE."""
    name = os.path.basename(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.listdir's surrogateescape: the bytes are not UTF-8
        return "{}: the file name is not valid UTF-8: refused (rename it)".format(ascii(path))
    if class_folder:  # its name goes into labels.txt
        problem = labelmap.name_problem(name)
        if problem:
            return "{}: {} ({})".format(ascii(path), problem, labelmap.NAME_FIX)
    if not allow_outside and not paths.is_within(path, source):
        return ("{}: leads outside the image folder {} (to {}) after resolving symlinks: refused (copy the "
                "image into the folder, or pass {} if this is intended)".format(
                    path, paths.real(source), paths.real(path), ALLOW_FLAG))
    return None


def scan_classes(folder, exts, source=None, allow_outside=False, refused=None):
    """{class: [paths]}, [skipped (path, why)] for FOLDER/<class>/<file>; `refused` collects
    the paths `refusal` rejects (nothing is read from them)."""
    classes, skipped = {}, []
    refused = [] if refused is None else refused
    source = folder if source is None else source
    for name in _visible(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isdir(path):
            skipped.append((path, "not inside a class folder"))
            continue
        if refusal(path, source, allow_outside, class_folder=True):
            refused.append(refusal(path, source, allow_outside, class_folder=True))
            continue
        files = []
        for fname in _visible(os.listdir(path)):
            fpath = os.path.join(path, fname)
            if refusal(fpath, source, allow_outside):
                refused.append(refusal(fpath, source, allow_outside))
            elif os.path.isdir(fpath):
                skipped.append((fpath, "sub-folder inside a class folder (not read)"))
            elif os.path.splitext(fname)[1].lower() in exts:
                files.append(fpath)
            else:
                skipped.append((fpath, "not an image extension Pillow reads"))
        classes[name] = files
    return classes, skipped


def existing_splits(source):
    """DIR/train and DIR/test, each holding class folders: the user's own split."""
    dirs = [os.path.join(source, s) for s in SPLITS]
    if all(os.path.isdir(d) for d in dirs) and all(
            any(os.path.isdir(os.path.join(d, c)) for c in os.listdir(d)) for d in dirs):
        return dirs
    return None


# -- 2. check ----------------------------------------------------------------------------------

def read_image(path, keep_formats):
    """-> dict(data, format, width, height, sha256) or raises ValueError with the reason."""
    try:
        data = imagefile.read_nonempty(path)  # the one opener: regular files only, size cap
    except imagefile.ImageRefused as exc:
        raise ValueError(exc.message)
    raw_sha256 = hashlib.sha256(data).hexdigest()
    try:
        with imagefile.open_bytes(data, path) as im:  # decode pixel cap before im.load()
            fmt = im.format
            im.load()  # decode every pixel: truncated and corrupt files fail here, not in training
            width, height = im.size
            if fmt not in keep_formats:
                buf = io.BytesIO()
                im.convert("RGBA" if "A" in im.getbands() else "RGB").save(buf, format="PNG")
                data, fmt = buf.getvalue(), "PNG"
    except imagefile.ImageRefused as exc:
        raise ValueError(exc.message)
    except Exception as exc:  # Pillow raises many types for a damaged file
        raise ValueError("Pillow cannot decode it ({}: {})".format(type(exc).__name__, exc))
    return {"data": data, "format": fmt.lower(), "width": width, "height": height,
            "sha256": hashlib.sha256(data).hexdigest(), "raw_sha256": raw_sha256}


def check(items, keep_formats, progress):
    """Read every image; -> (errors, warnings). Fills item["image"]."""
    errors, warnings, by_digest = [], [], {}
    with ItemProgress(len(items), "check images", enabled=progress) as bar:
        for it in items:
            try:
                it["image"] = read_image(it["path"], keep_formats)
            except (OSError, ValueError) as exc:
                errors.append("{}: {}".format(it["path"], exc))
            else:  # the bytes read once, by the opener
                by_digest.setdefault(it["image"]["raw_sha256"], []).append(it)
            bar.advance()
    for same in by_digest.values():
        classes = sorted({it["class"] for it in same})
        paths = ", ".join(it["path"] for it in same)
        if len(classes) > 1:
            errors.append("the same image is filed under {} classes ({}): {}".format(
                len(classes), ", ".join(classes), paths))
        elif len(same) > 1:
            warnings.append("duplicate image in class {!r}: {}".format(classes[0], paths))
    return errors, warnings


# -- 3. split ----------------------------------------------------------------------------------

def split_class(paths, train_fraction, seed, class_name):
    """Seeded per-class shuffle; -> (train, test) lists."""
    order = sorted(paths)
    random.Random("{}:{}".format(seed, class_name)).shuffle(order)
    n_test = int(round(len(order) * (1.0 - train_fraction)))
    if len(order) >= 2 and train_fraction < 1.0:
        n_test = min(max(n_test, 1), len(order) - 1)
    return order[:len(order) - n_test], order[len(order) - n_test:]


# -- 4. write ----------------------------------------------------------------------------------

def to_example(image, label, filename):
    import tensorflow as tf

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": b(image["data"]), "image/format": b(image["format"].encode()),
        "image/class/label": i(label), "image/height": i(image["height"]), "image/width": i(image["width"]),
        "image/filename": b(filename.encode("utf-8")),
    }))


def write_split(folder, split, items, shards, seed):
    import tensorflow as tf
    order = list(items)
    random.Random("{}:{}".format(seed, split)).shuffle(order)  # mixed classes within each shard
    names = [RECORD_PATTERN.format(split=split, shard=s, shards=shards) for s in range(shards)]
    writers = [tf.io.TFRecordWriter(os.path.join(folder, n)) for n in names]
    try:
        for k, it in enumerate(order):
            writers[k % shards].write(to_example(it["image"], it["label"], it["rel"]).SerializeToString())
    finally:
        for w in writers:
            w.close()
    return names


# -- 5. publish --------------------------------------------------------------------------------

def _guard_paths(source, out_dir):
    paths.check_output_dir(out_dir, [("image folder", source)], flag="--out", verb="odrun convert --task classify",
                           kind="convert", replaces=True)


def _fail(what, problems, fix, where):
    listed = problems[:MAX_LISTED]
    more = len(problems) - len(listed)
    text = "{} ({}):\n  {}".format(what, len(problems), "\n  ".join(listed))
    if more:
        text += "\n  ... and {} more".format(more)
    raise UserError(text + "\n  nothing was written", where=where, fix=fix)


def collect(source, split, seed, exts, allow_outside=False):
    """-> (names, items, skipped, how): items carry path, rel, class, label, split."""
    dirs = existing_splits(source) if split is None else None
    groups = {}
    skipped, refused = [], []
    if dirs:
        for s, d in zip(SPLITS, dirs):
            classes, sk = scan_classes(d, exts, source, allow_outside, refused)
            groups[s] = classes
            skipped += sk
        names = sorted(set(groups["train"]) | set(groups["test"]))
        how = "existing train/ and test/ folders"
    else:
        classes, skipped = scan_classes(source, exts, source, allow_outside, refused)
        names = sorted(classes)
        fraction = defaults()["convert"]["split"] if split is None else split
        groups = {"train": {}, "test": {}}
        for c in names:
            groups["train"][c], groups["test"][c] = split_class(classes[c], fraction, seed, c)
        how = "seeded stratified split: {:.0%} train per class, seed {}".format(fraction, seed)
    if refused:
        _fail("files and class folders that cannot be read", refused,
              "rename, move or remove them (a class name goes into labels.txt: no control characters)", source)
    return names, groups, skipped, how, bool(dirs)


def _items(source, names, groups, given):
    """The scanned class folders as items (path, rel, class, label, split); no class, an empty
    class folder or a single class is exit 2."""
    if not names:
        raise UserError("no class folders", where=source,
                        fix="put each class's images in its own sub-folder: {}/cat/*.jpg, {}/dog/*.jpg".format(
                            source, source))
    empty = [os.path.join(source, c) for c in names
             if not groups["train"].get(c) and not groups["test"].get(c)]
    if given:
        empty += [os.path.join(source, "train", c) for c in names if not groups["train"].get(c)
                  and groups["test"].get(c)]
    if empty:
        _fail("class folders without images", empty, "add images to them or remove the folders", source)
    if len(names) < 2:
        raise UserError("only one class ({!r}): a classifier needs two or more".format(names[0]), where=source,
                        fix="add a second class folder")
    items = []
    for s in SPLITS:
        for label, c in enumerate(names):
            for p in groups[s].get(c, []):
                items.append({"path": p, "rel": os.path.relpath(p, source), "class": c, "label": label, "split": s})
    return items


def convert(source, out_dir, split=None, seed=None, shards=None, strict=False, progress=True,
            allow_outside=False):
    """See the module docstring; returns the summary dict (also written to DATA/summary.json)."""
    cfg = option_defaults("convert", "classify")  # odrun/data/defaults.yaml
    seed = cfg["seed"] if seed is None else seed
    shards = cfg["shards"] if shards is None else shards
    started = time.time()
    if not source or not os.path.isdir(source):
        raise UserError("not a folder", where=source or "SOURCE",
                        fix="give the folder that holds one sub-folder of images per class")
    if split is not None and not 0.0 < split <= 1.0:
        raise UserError("--split must be in (0, 1]", where="--split", fix="e.g. --split 0.8")
    if shards < 1:
        raise UserError("--shards must be >= 1", where="--shards", fix="e.g. --shards 5")
    _guard_paths(source, out_dir)
    # 1. scan
    names, groups, skipped, how, given = collect(source, split, seed, image_extensions(), allow_outside)
    items = _items(source, names, groups, given)
    # 2. check
    errors, warnings = check(items, set(defaults()["convert"]["keep_formats"]), progress)
    if given:
        warnings += ["class {!r} has no test images".format(c) for c in names if not groups["test"].get(c)]
    if errors:
        _fail("unreadable or conflicting images", errors,
              "remove or replace the files listed (a duplicate belongs in one class folder only)", source)
    if strict and (warnings or skipped):
        _fail("warnings under --strict", warnings + ["{}: {}".format(p, w) for p, w in skipped],
              "fix them or drop --strict", source)
    # 4. write into a staged sibling, 5. publish it as one (odcore.fileio.staged_dir)
    require_tf2()
    with staged_dir(out_dir) as tmp:
        files = {}
        for s in SPLITS:
            files[s] = write_split(tmp, s, [it for it in items if it["split"] == s], shards, seed)
        write_text(os.path.join(tmp, L.SLIM_NAME), L.slim_text(names))
        formats = {}
        for it in items:
            formats[it["image"]["format"]] = formats.get(it["image"]["format"], 0) + 1
        summary = {
            "task": "classify", "source": os.path.abspath(source), "out_dir": os.path.abspath(out_dir),
            "split": how, "seed": seed, "shards": shards,
            "images": {"total": len(items), "train": sum(it["split"] == "train" for it in items),
                       "test": sum(it["split"] == "test" for it in items)},
            "classes": [{"id": i, "name": c, "train": len(groups["train"].get(c, [])),
                         "test": len(groups["test"].get(c, []))} for i, c in enumerate(names)],
            "formats": formats,
            "reencoded_png": sum(1 for it in items if it["image"]["format"] == "png"
                                 and os.path.splitext(it["path"])[1].lower() != ".png"),
            "skipped": [{"file": p, "why": w} for p, w in skipped],
            "warnings": warnings,
            "files": {"train": files["train"], "test": files["test"], "labels": L.SLIM_NAME},
            "seconds": round(time.time() - started, 2),
        }
        write_json(os.path.join(tmp, SUMMARY_NAME), summary)
    return summary


def from_args(args):
    """`odrun convert --task classify` (flags: odrun.verbs.convert) -> the summary."""
    return convert(args.source, args.out, split=args.split, seed=args.seed,
                   shards=args.shards, strict=args.strict,
                   progress=not args.json and terminal().isatty(),
                   allow_outside=getattr(args, "allow_outside_images", False))


def show(summary, args):
    print_summary(summary)


def print_summary(summary):
    from rich.console import Console
    from rich.table import Table
    err = Console(file=terminal())  # the terminal, not the library log
    for w in summary["warnings"][:MAX_LISTED]:
        err.print("[yellow]warning[/yellow]: " + w, markup=True, highlight=False)
    for s in summary["skipped"][:MAX_LISTED]:
        err.print("skipped: {file}: {why}".format(**s), highlight=False)
    more = len(summary["skipped"]) + len(summary["warnings"]) - 2 * MAX_LISTED
    if more > 0:
        err.print("... more in " + os.path.join(summary["out_dir"], SUMMARY_NAME))
    t = Table(title_justify="left")
    for col in ("id", "class", "train", "test"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for c in summary["classes"]:
        t.add_row(str(c["id"]), c["name"], str(c["train"]), str(c["test"]))
    out = Console()
    out.print("converted {} images ({} train / {} test; {}) in {:.1f}s".format(
        summary["images"]["total"], summary["images"]["train"], summary["images"]["test"], summary["split"],
        summary["seconds"]), highlight=False)
    out.print(t)
    out.print("{} shards per split, labels.txt -> {}".format(summary["shards"], summary["out_dir"]), highlight=False)
