"""`convert`: annotations -> train/test TFRecords, label map, CSVs and summary.json.

Two passes: annotations are parsed and validated, the split is made; then worker processes
read, check and encode the images in blocks, each block into a part file that the parent
appends (kernel copy) to the output's temp file in order: image bytes never go through a pipe.
Every problem in the input is collected; if any is an error (or any warning under
--strict) the temp files are removed and nothing in `out_dir` changes. Otherwise all
outputs are renamed into place at the end, so a previous good output is never damaged and
Ctrl-C leaves no partial records.
"""
import contextlib
import glob
import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import time

from odrun.convert import coco, csvsrc, labelmap, records, split as splitting, voc
from odrun.convert import problems as P
from odcore.errors import UserError
from odcore.fileio import atomic_path

FORMATS = ("voc", "coco", "csv")
LOADERS = {"voc": lambda src, image_dir, workers: voc.load(src, mapper=workers.map, image_dir=image_dir),
           "coco": lambda src, image_dir, workers: coco.load(src, image_dir),
           "csv": lambda src, image_dir, workers: csvsrc.load(src, image_dir)}
CSV_COLUMNS = csvsrc.COLUMNS
PARALLEL_MIN = 48  # below this many images a process pool costs more than it saves

def detect_format(source):
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
                    fix="pass a VOC folder, a COCO .json or a seeds-style .csv, or say --format voc|coco|csv")


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
    """TensorFlow writes the TFRecord framing; without it say what to install, not a traceback."""
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise UserError("TensorFlow is needed to write TFRecords ({})".format(exc),
                        fix="run `odrun convert` where TensorFlow is installed: scripts/setup.sh, "
                            "pip install 'odstack[tf]', or inside an odstack TF image")
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


def _progress(enabled, total):
    if not enabled:
        return _null()  # (contextlib.nullcontext is 3.7+)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    # (MofNCompleteColumn is newer than the rich that Python 3.6 images carry)
    return Progress(TextColumn("converting"), BarColumn(), TextColumn("{task.completed}/{task.total} images"),
                    TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True)


@contextlib.contextmanager
def _null():
    yield None


def _num(v):
    return int(v) if float(v).is_integer() else round(float(v), 3)


def _csv(path, rows):
    import pandas as pd

    pd.DataFrame(rows, columns=CSV_COLUMNS).to_csv(path, index=False, encoding="utf-8")


def convert(source, out_dir, fmt=None, split=0.8, seed=42, label_map=None, shards=1, strict=False,
            skip_empty=False, train_dir=None, test_dir=None, progress=True, workers=None, image_dir=None):
    """Convert annotations to OD API TFRecords; returns the summary (also out_dir/summary.json)."""
    if workers is not None and workers < 1:
        raise UserError("--workers must be at least 1", where="--workers", fix="omit it to use every core")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no oneDNN/CPU-feature banners in a converter
    pool = Workers(workers or min(os.cpu_count() or 1, 8))
    try:
        return _convert(pool, source, out_dir, fmt, split, seed, label_map, shards, strict, skip_empty,
                        train_dir, test_dir, progress, image_dir)
    finally:
        pool.close()


def _convert(pool, source, out_dir, fmt, split, seed, label_map, shards, strict, skip_empty,
             train_dir, test_dir, progress, image_dir):
    start = time.time()
    if shards < 1:
        raise UserError("--shards must be at least 1", where="--shards", fix="use --shards 1 (one file per split)")
    if (train_dir is None) != (test_dir is None):
        raise UserError("--train and --test go together", where="--train/--test", fix="pass both folders, or neither")
    found = []
    if train_dir is not None:
        fmt_used, (train_items, p1) = _load(train_dir, fmt, image_dir, pool)
        _, (test_items, p2) = _load(test_dir, fmt, image_dir, pool)
        items, found = train_items + test_items, p1 + p2
        for it in train_items:
            it["split"] = "train"
        for it in test_items:
            it["split"] = "test"
    else:
        if source is None:
            raise UserError("no input", fix="pass SOURCE, or --train DIR --test DIR")
        if not 0.0 < split <= 1.0:
            raise UserError("--split must be between 0 and 1 (the train fraction), got {}".format(split),
                            where="--split", fix="e.g. --split 0.8 for 80% train / 20% test")
        fmt_used, (items, found) = _load(source, fmt, image_dir, pool)
    found += _duplicates(items)

    if label_map:
        label_ids = labelmap.read(label_map)
        for it in items:
            for o in it["objects"]:
                if o["name"] not in label_ids:
                    found.append(P.error(it["ann"], "class {!r} is not in the label map {}{}".format(
                        o["name"], label_map, labelmap.suggest(o["name"], label_ids)), o["where"]))
    else:
        label_ids = labelmap.build(o["name"] for it in items for o in it["objects"])
        if not label_ids and items:
            found.append(P.error(source or train_dir, "no objects in any annotation: nothing to train on"))

    skipped, kept = [], []
    for it in items:
        if not it["objects"]:
            if skip_empty:
                skipped.append({"file": it["ann"], "reason": "no objects (--skip-empty)"})
                continue
            found.append(P.warning(it["ann"], "no objects: kept as a negative example (use --skip-empty to drop it)"))
        kept.append(it)
    if not kept and not any(p["level"] == P.ERROR for p in found):
        raise UserError("no images to convert", where=source or train_dir,
                        fix="check the folder holds annotated images (or drop --skip-empty)")

    if train_dir is not None:
        train = [it for it in kept if it["split"] == "train"]
        test = [it for it in kept if it["split"] == "test"]
    else:
        train, test = splitting.stratified(kept, split, seed)
        if not test and split < 1.0 and kept:
            found.append(P.warning(source, "the test split is empty: {} image(s) x {:g} rounds to 0; evaluation will "
                                           "have nothing to read".format(len(kept), 1.0 - split)))
    jobs = [dict(it, split="train") for it in train] + [dict(it, split="test") for it in test]

    outputs = {"train": records.shard_names(out_dir, "train", shards),
               "test": records.shard_names(out_dir, "test", shards)}
    commit = DeferSigint()
    import_tf()  # before anything is written (and before the pool forks, so workers inherit it)
    out_existed = os.path.isdir(out_dir)
    boxes = {"train": {}, "test": {}}
    counts = {"train": 0, "test": 0}
    csv_rows = {"train": [], "test": []}
    formats, orientations = {}, []
    try:
        with contextlib.ExitStack() as stack:
            tmp = {s: [stack.enter_context(atomic_path(p)) for p in outputs[s]] for s in outputs}
            parts = tempfile.mkdtemp(prefix=".parts-", dir=out_dir)
            stack.callback(shutil.rmtree, parts, True)
            stack.callback(pool.close)  # runs first: no worker may still write into `parts`
            blocks = _blocks(jobs, shards)
            tasks = [(os.path.join(parts, "{:06d}.record".format(i)), b[2], label_ids) for i, b in enumerate(blocks)]
            results = pool.map(records.encode_block, tasks, chunksize=1, size=len(jobs))
            bar = stack.enter_context(_progress(progress, len(jobs)))
            task = bar.add_task("convert", total=len(jobs)) if bar is not None else None
            sinks = {s: [stack.enter_context(open(p, "wb", buffering=0)) for p in tmp[s]] for s in tmp}
            for (s, shard, block_jobs), (part, _jobs, _labels), block_results in zip(blocks, tasks, results):
                _append(sinks[s][shard], part)
                os.unlink(part)
                for job, res in zip(block_jobs, block_results):
                    found.extend(res["problems"])
                    if res["record"]:
                        counts[s] += 1
                        formats[res["format"]] = formats.get(res["format"], 0) + 1
                        if res.get("orientation"):
                            orientations.append({"file": job["image"], "orientation": res["orientation"]})
                        for name, x0, y0, x1, y1 in res["objects"]:
                            boxes[s][name] = boxes[s].get(name, 0) + 1
                            csv_rows[s].append([job["filename"], res["width"], res["height"], name,
                                                _num(x0), _num(y0), _num(x1), _num(y1)])
                if task is not None:
                    bar.advance(task, len(block_jobs))
            for fs in sinks.values():
                for f in fs:
                    f.close()
            _fail_on(found, strict, source or train_dir)

            summary = {
                "source": source, "train_dir": train_dir, "test_dir": test_dir, "format": fmt_used,
                "out_dir": os.path.abspath(out_dir),
                "split": split if train_dir is None else "folders", "seed": seed,
                "images": {"train": counts["train"], "test": counts["test"],
                           "total": counts["train"] + counts["test"],
                           "negatives": sum(1 for j in jobs if not j["objects"])},
                "boxes": {k: dict(sorted(v.items())) for k, v in boxes.items()},
                "classes": [{"id": i, "name": n, "train_boxes": boxes["train"].get(n, 0),
                             "test_boxes": boxes["test"].get(n, 0)}
                            for n, i in sorted(label_ids.items(), key=lambda kv: kv[1])],
                "image_formats": formats,
                "exif_orientation": orientations,
                "skipped": skipped,
                "warnings": [p for p in found if p["level"] == P.WARNING],
                "outputs": {"train": outputs["train"], "test": outputs["test"],
                            "label_map": os.path.join(out_dir, "label_map.pbtxt"),
                            "train_csv": os.path.join(out_dir, "train_labels.csv"),
                            "test_csv": os.path.join(out_dir, "test_labels.csv"),
                            "summary": os.path.join(out_dir, "summary.json")},
                "shards": shards, "workers": pool.used,
            }
            for key, path in (("label_map", "label_map.pbtxt"), ("train_csv", "train_labels.csv"),
                              ("test_csv", "test_labels.csv"), ("summary", "summary.json")):
                tmp[key] = stack.enter_context(atomic_path(os.path.join(out_dir, path)))
            with open(tmp["label_map"], "w", encoding="utf-8") as f:
                f.write(labelmap.render(label_ids))
            _csv(tmp["train_csv"], csv_rows["train"])
            _csv(tmp["test_csv"], csv_rows["test"])
            summary["seconds"] = round(time.time() - start, 3)
            summary["images_per_second"] = round(len(jobs) / max(summary["seconds"], 1e-9), 1)
            with open(tmp["summary"], "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=2, ensure_ascii=False)
                f.write("\n")
            _readable([p for ps in tmp.values() for p in (ps if isinstance(ps, list) else [ps])])
            commit.start()  # leaving the block renames every output: Ctrl-C waits until all are in place
        _remove_stale(out_dir, outputs)
    except BaseException:
        if not out_existed and os.path.isdir(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)  # we created it; leave no trace of a failed run
        raise
    finally:
        commit.stop()  # a Ctrl-C held back during the renames is raised here
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


def _remove_stale(out_dir, outputs):
    """Shards of an earlier run with another --shards count would be read by a glob: remove them."""
    current = set(os.path.abspath(p) for ps in outputs.values() for p in ps)
    for split in ("train", "test"):
        plain = os.path.join(out_dir, split + ".record")
        for path in [plain] + glob.glob(plain + "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]"):
            if os.path.exists(path) and os.path.abspath(path) not in current:
                os.unlink(path)
