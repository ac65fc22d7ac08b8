"""`odrun inspect`: check TFRecords that any tool made (odrun convert, the tutorials'
generate_tfrecord.py, the OD API's create_*_tf_record.py) against their label map.

Two passes: checks.py reads every record in pure Python (boxes, class ids/texts, sha256, image
headers); decode.py decodes every image with the OD API's decoder in tf.data. `odrun train` runs
the first pass's box and class checks (`before_training`) before TensorFlow starts.
"""
import glob
import os
import re
import time

from odcore.errors import UserError
from odrun.convert import report
from odrun.convert.inspect import checks, dataset, decode, draw
from odrun.convert.inspect.checks import ERROR, WARNING

RECORD_NAME = re.compile(r"\.(tf)?records?(-\d{5}-of-\d{5})?$", re.I)
BLOCKING = ("record", "example", "box", "class")  # what `odrun train` refuses


def find_inputs(data, label_map=None):
    """DATA (folders and/or record files) -> (record files, label map path); bad input: UserError."""
    files, folders = [], []
    for item in data:
        if os.path.isdir(item):
            found = sorted((p for p in glob.glob(os.path.join(item, "*")) if RECORD_NAME.search(p) and os.path.isfile(p)),
                           key=lambda p: ({"train": 0, "test": 1}.get(checks.split_of(p), 2), p))
            if not found:
                raise UserError("no record files (*.record, *.tfrecord, *.record-00000-of-0000N) in the folder",
                                where=item, fix="pass the folder `odrun convert` or generate_tfrecord.py wrote to")
            files += found
            folders.append(item)
        elif os.path.isfile(item):
            files.append(item)
            folders.append(os.path.dirname(item) or ".")
        else:
            raise UserError("not found", where=item, fix="pass a folder of records or a record file")
    if label_map is None:
        near = [os.path.join(d, "label_map.pbtxt") for d in folders]
        near = [p for p in near if os.path.isfile(p)] or sorted(
            p for d in folders for p in glob.glob(os.path.join(d, "*.pbtxt")))
        if len(set(near)) != 1:
            raise UserError("no label map beside the records" if not near else
                            "several label maps beside the records: {}".format(", ".join(sorted(set(near)))),
                            where=data[0], fix="pass --label-map label_map.pbtxt")
        label_map = near[0]
    return list(dict.fromkeys(files)), label_map


def inspect(data, label_map=None, image_size=None, report_path=None, decode_images=True, strict=False):
    """Library entry point: the whole inspection -> result dict (what --json prints)."""
    started = time.time()
    files, label_map = find_inputs(data, label_map)
    # TensorFlow starts (in a second process) at once, and decodes while this one reads, checks and draws
    decoding = decode.Background() if decode_images else None
    try:
        lm = checks.read_label_map(label_map)
        found = checks.label_map_findings(lm)
        counts, damaged = checks.intact(files)
        if decoding:
            decoding.send(files, counts)
    except BaseException:
        if decoding:
            decoding.cancel()
        raise
    try:
        examples, per_example = checks.scan(files, lm, counts=counts, full=True)
        found += damaged + per_example
        found += dataset.duplicates(examples, checks.split_of)
        table = dataset.class_table(examples, lm, checks.split_of)
        found += dataset.balance(table, lm, files, checks.split_of)
        input_size = image_size or report.DEFAULT_INPUT_SIZE
        if report_path is None:
            report_path = os.path.join(data[0] if os.path.isdir(data[0]) else os.path.dirname(data[0]) or ".",
                                       report.REPORT)
        path, size_warnings = draw.write(examples, table, report_path, input_size, checks.split_of)
        found += [checks.finding(WARNING, "size", report_path, None, w) for w in size_warnings]
    finally:
        sizes, failed = decoding.result() if decoding else ({}, {})
    found += decode.findings(examples, sizes, failed)
    if strict:
        found = [dict(f, level=ERROR) for f in found]
    errors = sum(f["level"] == ERROR for f in found)
    return {"files": [{"path": os.path.abspath(p), "split": checks.split_of(p), "examples": counts[p]} for p in files],
            "label_map": os.path.abspath(label_map), "examples": len(examples),
            "boxes": sum(len(ex["boxes"]) for ex in examples), "classes": table, "decoded": decode_images,
            "input_size": input_size, "errors": errors, "warnings": len(found) - errors,
            "ok": errors == 0, "findings": found, "report": os.path.abspath(path),
            "seconds": round(time.time() - started, 2)}


def before_training(files, label_map, where, limit=8):
    """`odrun train`'s cheap pass: class ids/texts vs the label map and box ranges, TF-free and
    without reading the image bytes; any error -> UserError (exit 2) listing the first ones."""
    lm = checks.read_label_map(label_map)
    _examples, found = checks.scan(files, lm, full=False)
    errors = [f for f in found if f["level"] == ERROR and f["check"] in BLOCKING]
    if errors:
        shown = "\n  ".join(checks.render(f) for f in errors[:limit])
        more = "\n  ... and {} more".format(len(errors) - limit) if len(errors) > limit else ""
        raise UserError("{} problem{} in the records (training would run and learn nothing from these):\n  {}{}"
                        .format(len(errors), "s" if len(errors) > 1 else "", shown, more), where=where,
                        fix="see them all: odrun inspect {} --label-map {}; fix the records (or re-make them "
                            "with `odrun convert`)".format(" ".join(files), label_map))
