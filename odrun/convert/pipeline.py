"""`convert`: annotations -> train/test TFRecords, label map, CSVs and summary.json.

Two passes: annotations are parsed and validated, the split is made; then worker processes
read, check and encode the images in blocks, each block into a part file that the parent
appends (kernel copy) to the output's temp file in order: image bytes never go through a pipe.
Every problem in the input is collected; if any is an error (or any warning under
--strict) the staged folder is removed and nothing in `out_dir` changes. Otherwise the whole
set (records, CSVs, label map, summary, report.png) replaces `out_dir` as one at the end
(odcore.fileio.staged_dir), so a previous good output is never damaged nor mixed with the new one.
"""
import collections
import contextlib
import csv
import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import time

from odrun import option_defaults
from odrun.convert import coco, csvsrc, labelmap, records, safety, split as splitting, voc, yolo
from odrun.convert import labelstudio
from odrun.convert import problems as P
from odrun.convert import labelme
from odrun.convert import masks
from odcore.errors import UserError
from odcore.fileio import staged_dir
from odrun.convert import tfrecord
from odrun.ui.progress import ItemProgress

FORMATS = ("voc", "coco", "csv", "labelme", "yolo", "labelstudio")
LOADERS = {"voc": lambda src, image_dir, workers: voc.load(src, mapper=workers.map, image_dir=image_dir),
           "coco": lambda src, image_dir, workers: coco.load(src, image_dir),
           "csv": lambda src, image_dir, workers: csvsrc.load(src, image_dir),
           "labelme": lambda src, image_dir, workers: labelme.load(src, image_dir),
           "yolo": lambda src, image_dir, workers: yolo.load(src, image_dir),
           "labelstudio": lambda src, image_dir, workers: labelstudio.load(src, image_dir)}
CSV_COLUMNS = csvsrc.COLUMNS
PARALLEL_MIN = 48  # below this many images a process pool costs more than it saves

def detect_format(source):
    if labelme.is_source(source):
        return "labelme"
    if yolo.is_source(source):
        return "yolo"
    if labelstudio.is_source(source):
        return "labelstudio"
    if os.path.isdir(source):
        return "voc"
    ext = os.path.splitext(source)[1].lower()
    if ext == ".json":
        return "coco"
    if ext == ".csv":
        return "csv"
    if ext == ".xml":
        return "voc"
    raise UserError("cannot tell the annotation format of {!r}".format(source), where=source,
                    fix="pass a VOC folder, a COCO .json or an xml_to_csv.py-style .csv, or say --format voc|coco|csv")


def _load(source, fmt, image_dir, workers):
    if not os.path.exists(source):
        raise UserError("no such file or folder", where=source, fix="check the path")
    fmt = fmt or detect_format(source)
    if fmt not in FORMATS:
        raise UserError("unknown format {!r}".format(fmt), where="--format", fix="use one of: " + ", ".join(FORMATS))
    if fmt == "voc" and os.path.isfile(source):
        return fmt, voc.load(os.path.dirname(os.path.abspath(source)), files=[source], image_dir=image_dir)
    if fmt == "voc" and not voc.find_annotations(source):
        raise UserError("no *.xml annotation files in this folder", where=source,
                        fix="point at the folder labelImg saved into (or CVAT's Annotations/), or pass --format")
    return fmt, LOADERS[fmt](source, image_dir, workers)


def _duplicates(items):
    seen, found = {}, []
    for it in items:
        key = it["filename"]
        if key in seen:
            found.append(P.error(it["ann"], "duplicate file name {!r}: also used by {} (image/source_id must be unique)"
                                 .format(key, seen[key]["ann"] if seen[key]["ann"] != it["ann"] else seen[key]["image"])))
        else:
            seen[key] = it
    return found


def import_tf():
    """The TFRecord framing needs CRC32C: the `crc32c` package (no TensorFlow: convert starts in
    well under a second), else TensorFlow's writer; without either say what to install."""
    if tfrecord.available():
        return None
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise UserError("writing TFRecords needs the crc32c package or TensorFlow ({})".format(exc),
                        fix="pip install crc32c (or run scripts/setup.sh / use an odstack image)")
    return tf


class DeferSigint(object):
    """Hold back Ctrl-C while the outputs are renamed into place, so an interrupt never leaves a
    mix of new and old files (each rename is atomic, the set of them is not)."""

    def __init__(self):
        self.previous = None
        self.caught = False

    def _handler(self, signum, frame):
        self.caught = True

    def start(self):
        try:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: signals cannot arrive here anyway
            self.previous = None

    def stop(self):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
            if self.caught:
                raise KeyboardInterrupt


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates the pool


class Workers(object):
    """`map(fn, items)` over a fork-based process pool, created on first use for a batch large
    enough to pay for it, after TensorFlow is imported so the workers inherit it."""

    def __init__(self, processes):
        self.processes = processes
        self.pool = None

    def map(self, fn, items, chunksize=16, size=None):
        size = len(items) if size is None else size
        if self.processes > 1 and size >= PARALLEL_MIN and "fork" in multiprocessing.get_all_start_methods():
            if self.pool is None:
                import_tf()  # workers inherit it; importing it in each would cost seconds
                self.pool = multiprocessing.get_context("fork").Pool(self.processes, initializer=_ignore_sigint)
            return self.pool.imap(fn, items, chunksize=chunksize)
        return (fn(x) for x in items)

    @property
    def used(self):
        return self.processes if self.pool is not None else 1

    def close(self):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def _num(v):
    return int(v) if float(v).is_integer() else round(float(v), 3)


def _csv(path, rows):
    """xml_to_csv.py's CSV (pandas reads it back the same), written without importing pandas."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(CSV_COLUMNS)
        out.writerows(safety.csv_rows(rows))


# One conversion's settings, by the `odrun convert` flags' dest names, with the CLI's defaults.
_BOXES = option_defaults("convert", "detect")  # odrun/data/defaults.yaml
_OPTIONS = (("source", None), ("out_dir", None), ("fmt", None), ("split", 0.8), ("seed", _BOXES["seed"]),
            ("label_map", None), ("shards", _BOXES["shards"]), ("strict", False), ("skip_empty", False),
            ("train_dir", None), ("test_dir", None), ("progress", True), ("workers", None),
            ("image_dir", None), ("allow_outside_images", False), ("masks", None),
            ("max_size", None))
ConvertOptions = collections.namedtuple("ConvertOptions", [name for name, _ in _OPTIONS])
ConvertOptions.__new__.__defaults__ = tuple(default for _, default in _OPTIONS)  # (3.6: no defaults=)


def convert(source, out_dir, finish=None, **options):
    """Convert annotations to OD API TFRecords; options are ConvertOptions' fields; returns the
    summary (also out_dir/summary.json). finish(stage, summary): write more of the set (the
    report) into the staged folder before it replaces out_dir."""
    opts = ConvertOptions(source, out_dir, **options)
    if opts.workers is not None and opts.workers < 1:
        raise UserError("--workers must be at least 1", where="--workers", fix="omit it to use every core")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no oneDNN/CPU-feature banners in a converter
    pool = Workers(opts.workers or min(os.cpu_count() or 1, 8))
    try:
        return _convert(pool, opts, finish)
    finally:
        pool.close()


def _check_options(o):
    if o.max_size is not None and o.max_size < 32:
        raise UserError("--max-size must be at least 32 (pixels)", where="--max-size", fix="e.g. --max-size 1000")
    if o.shards < 1:
        raise UserError("--shards must be at least 1", where="--shards", fix="use --shards 1 (one file per split)")
    if (o.train_dir is None) != (o.test_dir is None):
        raise UserError("--train and --test go together", where="--train/--test", fix="pass both folders, or neither")
    if o.train_dir is None:
        if o.source is None:
            raise UserError("no input", fix="pass SOURCE, or --train DIR --test DIR")
        if not 0.0 < o.split <= 1.0:
            raise UserError("--split must be between 0 and 1 (the train fraction), got {}".format(o.split),
                            where="--split", fix="e.g. --split 0.8 for 80% train / 20% test")


def _gather(o, pool):
    """(format, items, problems): the annotations of SOURCE, or of the --train/--test folders."""
    if o.train_dir is None:
        fmt_used, (items, found) = _load(o.source, o.fmt, o.image_dir, pool)
        return fmt_used, items, found + _duplicates(items)
    fmt_used, (train_items, p1) = _load(o.train_dir, o.fmt, o.image_dir, pool)
    _, (test_items, p2) = _load(o.test_dir, o.fmt, o.image_dir, pool)
    for it in train_items:
        it["split"] = "train"
    for it in test_items:
        it["split"] = "test"
    items = train_items + test_items
    return fmt_used, items, p1 + p2 + _duplicates(items)


def _label_ids(o, items, found):
    """name -> id: from --label-map (a class not in it is an error) or from the annotations."""
    if o.label_map:
        label_ids = labelmap.read(o.label_map)
        for it in items:
            for obj in it["objects"]:
                if obj["name"] not in label_ids:
                    found.append(P.error(it["ann"], "class {!r} is not in the label map {}{}".format(
                        obj["name"], o.label_map, labelmap.suggest(obj["name"], label_ids)), obj["where"]))
        return label_ids
    for it in items:  # a class name is written into the label map: no control characters
        bad = [o for o in it["objects"] if labelmap.name_problem(o["name"])]
        for obj in bad:
            found.append(P.error(it["ann"], labelmap.name_problem(obj["name"]) + "; " + labelmap.NAME_FIX,
                                 obj["where"]))
        it["objects"] = [o for o in it["objects"] if not labelmap.name_problem(o["name"])]
    order = next((it["classes"] for it in items if it.get("classes")), None)  # YOLO: class 0 -> id 1
    if order:
        return {name: i + 1 for i, name in enumerate(order)}
    label_ids = labelmap.build(obj["name"] for it in items for obj in it["objects"])
    if not label_ids and items:
        found.append(P.error(o.source or o.train_dir, "no objects in any annotation: nothing to train on"))
    return label_ids


def _jobs(o, items, found):
    """(jobs, skipped): the images to encode, each with its split, and those --skip-empty dropped."""
    skipped, kept = [], []
    for it in items:
        if not it["objects"]:
            if o.skip_empty:
                skipped.append({"file": it["ann"], "reason": "no objects (--skip-empty)"})
                continue
            found.append(P.warning(it["ann"], "no objects: kept as a negative example (use --skip-empty to drop it)"))
        kept.append(it)
    if not kept and not any(p["level"] == P.ERROR for p in found):
        raise UserError("no images to convert", where=o.source or o.train_dir,
                        fix="check the folder holds annotated images (or drop --skip-empty)")
    if o.train_dir is not None or (kept and all(it.get("split") for it in kept)):  # folders, data.yaml's
        train = [it for it in kept if it["split"] == "train"]
        test = [it for it in kept if it["split"] == "test"]
    else:
        train, test = splitting.stratified(kept, o.split, o.seed)
        if not test and o.split < 1.0 and kept:
            found.append(P.warning(o.source, "the test split is empty: {} image(s) x {:g} rounds to 0; evaluation "
                                             "will have nothing to read".format(len(kept), 1.0 - o.split)))
    return [dict(it, split="train") for it in train] + [dict(it, split="test") for it in test], skipped


class Tally(object):
    """What the encoded records hold, per split: images, boxes per class, CSV rows; image formats
    and EXIF orientations seen."""

    def __init__(self):
        self.counts = {"train": 0, "test": 0}
        self.boxes = {"train": {}, "test": {}}
        self.csv_rows = {"train": [], "test": []}
        self.formats, self.orientations = {}, []

    def add(self, split, job, res):
        if not res["record"]:
            return
        self.counts[split] += 1
        self.formats[res["format"]] = self.formats.get(res["format"], 0) + 1
        if res.get("orientation"):
            self.orientations.append({"file": job["image"], "orientation": res["orientation"]})
        for name, x0, y0, x1, y1 in res["objects"]:
            self.boxes[split][name] = self.boxes[split].get(name, 0) + 1
            self.csv_rows[split].append([job["filename"], res["width"], res["height"], name,
                                         _num(x0), _num(y0), _num(x1), _num(y1)])


def _encode(pool, jobs, o, label_ids, sinks, parts, found):
    """Encode every image in worker processes, appending each block to its shard in order."""

    tally = Tally()
    blocks = _blocks(jobs, o.shards)
    tasks = [(os.path.join(parts, "{:06d}.record".format(i)),
              [dict(j, max_size=o.max_size) for j in b[2]] if o.max_size else b[2], label_ids)
             for i, b in enumerate(blocks)]
    results = pool.map(records.encode_block, tasks, chunksize=1, size=len(jobs))
    with ItemProgress(len(jobs), "converting", enabled=o.progress, stderr=True) as bar:
        for (s, shard, block_jobs), (part, _jobs, _labels), block_results in zip(blocks, tasks, results):
            _append(sinks[s][shard], part)
            os.unlink(part)
            for job, res in zip(block_jobs, block_results):
                found.extend(res["problems"])
                tally.add(s, job, res)
            bar.advance(len(block_jobs))
    return tally


def _summary(o, fmt_used, jobs, label_ids, tally, skipped, found, outputs, workers):
    out_dir = o.out_dir
    return {
        "source": o.source, "train_dir": o.train_dir, "test_dir": o.test_dir, "format": fmt_used,
        "out_dir": os.path.abspath(out_dir),
        "split": o.split if o.train_dir is None else "folders", "seed": o.seed,
        "images": {"train": tally.counts["train"], "test": tally.counts["test"],
                   "total": tally.counts["train"] + tally.counts["test"],
                   "negatives": sum(1 for j in jobs if not j["objects"])},
        "boxes": {k: dict(sorted(v.items())) for k, v in tally.boxes.items()},
        "classes": [{"id": i, "name": n, "train_boxes": tally.boxes["train"].get(n, 0),
                     "test_boxes": tally.boxes["test"].get(n, 0)}
                    for n, i in sorted(label_ids.items(), key=lambda kv: kv[1])],
        "image_formats": tally.formats,
        "exif_orientation": tally.orientations,
        "skipped": skipped,
        "warnings": [p for p in found if p["level"] == P.WARNING],
        "outputs": {"train": outputs["train"], "test": outputs["test"],
                    "label_map": os.path.join(out_dir, "label_map.pbtxt"),
                    "train_csv": os.path.join(out_dir, "train_labels.csv"),
                    "test_csv": os.path.join(out_dir, "test_labels.csv"),
                    "summary": os.path.join(out_dir, "summary.json")},
        "shards": o.shards, "workers": workers,
    }


def _convert(pool, o, finish=None):
    """1. read and check the annotations, 2. split, 3. encode into a hidden staged sibling of
    --out, 4. write the label map, CSVs and summary there (and `finish(stage, summary)`: the
    report), 5. swap the staged folder in for --out as one (or nothing, on any error)."""
    start = time.time()
    _check_options(o)
    safety.check_output(o)  # --out never is, contains or lies inside an input; writable; not the user's
    fmt_used, items, found = _gather(o, pool)
    with_masks, mask_problems = masks.apply_mode(items, o.masks, o.source or o.train_dir)  # instance masks
    found += mask_problems
    items = safety.check_images(items, found, o.allow_outside_images, o.image_dir)
    label_ids = _label_ids(o, items, found)
    jobs, skipped = _jobs(o, items, found)

    out_dir = o.out_dir
    outputs = {"train": records.shard_names(out_dir, "train", o.shards),
               "test": records.shard_names(out_dir, "test", o.shards)}
    commit = DeferSigint()
    import_tf()  # before anything is written (and before the pool forks, so workers inherit it)
    safety.clean_stale(out_dir)  # temps an older version's killed run left (.train.record.*.tmp, .parts-*/)
    try:
        with staged_dir(out_dir) as stage:  # removed on any error or Ctrl-C; --out untouched
            summary = _write_set(pool, o, stage, (fmt_used, jobs, label_ids, skipped, found, outputs, with_masks),
                                 start)
            if finish is not None:
                finish(stage, summary)
            commit.start()  # leaving the block swaps the set in: Ctrl-C waits until it is in place
    finally:
        commit.stop()  # a Ctrl-C held back during the swap is raised here
    return summary


def _write_set(pool, o, stage, state, start):
    """Every output file of one convert, written into `stage` (the summary names them at --out)."""
    fmt_used, jobs, label_ids, skipped, found, outputs, with_masks = state
    names = {s: records.shard_names(stage, s, o.shards) for s in outputs}
    with contextlib.ExitStack() as stack:
        parts = tempfile.mkdtemp(prefix=".parts-", dir=stage)
        stack.callback(shutil.rmtree, parts, True)
        stack.callback(pool.close)  # runs first: no worker may still write into `parts`
        sinks = {s: [stack.enter_context(open(p, "wb", buffering=0)) for p in names[s]] for s in names}
        tally = _encode(pool, jobs, o, label_ids, sinks, parts, found)
        for fs in sinks.values():
            for f in fs:
                f.close()
        _fail_on(found, o.strict, o.source or o.train_dir)
        summary = _summary(o, fmt_used, jobs, label_ids, tally, skipped, found, outputs, pool.used)
        summary["instance_masks"] = with_masks
        files = {key: os.path.join(stage, path) for key, path in (
            ("label_map", "label_map.pbtxt"), ("train_csv", "train_labels.csv"),
            ("test_csv", "test_labels.csv"), ("summary", "summary.json"))}
        with open(files["label_map"], "w", encoding="utf-8") as f:
            f.write(labelmap.render(label_ids))
        _csv(files["train_csv"], tally.csv_rows["train"])
        _csv(files["test_csv"], tally.csv_rows["test"])
        summary["seconds"] = round(time.time() - start, 3)
        summary["images_per_second"] = round(len(jobs) / max(summary["seconds"], 1e-9), 1)
        with open(files["summary"], "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2, ensure_ascii=False)
            f.write("\n")
        _readable([p for ps in names.values() for p in ps] + list(files.values()))
    return summary


BLOCK = 32  # images per worker task: one part file each


def _blocks(jobs, shards):
    """(split, shard, jobs) in output order. Shard k of a split holds a contiguous run of its
    images (the OD API interleaves shards when reading, so round-robin is not needed)."""
    blocks = []
    for split in ("train", "test"):
        sjobs = [j for j in jobs if j["split"] == split]
        for k in range(shards):
            run = sjobs[k * len(sjobs) // shards:(k + 1) * len(sjobs) // shards]
            blocks += [(split, k, run[i:i + BLOCK]) for i in range(0, len(run), BLOCK)]
    return blocks


def _append(sink, part):
    """Append a worker's part file to the output, copied by the kernel (no pass through Python)."""
    with open(part, "rb") as src:
        size, offset = os.fstat(src.fileno()).st_size, 0
        try:
            while offset < size:
                sent = os.sendfile(sink.fileno(), src.fileno(), offset, size - offset)
                if sent <= 0:
                    break
                offset += sent
        except (AttributeError, OSError):  # no sendfile for these files: plain copy
            pass
        if offset < size:
            src.seek(offset)
            shutil.copyfileobj(src, sink, 1 << 20)


def _readable(paths):
    """mkstemp creates 0600 files; outputs are data for others (containers, other users) too."""
    umask = os.umask(0)
    os.umask(umask)
    for p in paths:
        os.chmod(p, 0o666 & ~umask)


def _fail_on(found, strict, where):
    errors = [p for p in found if p["level"] == P.ERROR]
    if strict:
        errors += [p for p in found if p["level"] == P.WARNING]
    if errors:
        what = "error" if not strict else "problem"
        raise UserError("{} {}{} in the input; nothing was written:\n  {}".format(
            len(errors), what, "s" if len(errors) > 1 else "", P.render_many(errors)),
            where=where,
            fix=("fix the files named above (warnings are errors under --strict)" if strict
                 else "fix the files named above, then run again"))


