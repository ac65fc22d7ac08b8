"""`odrun detect`: run an exported model over images (files, folders, globs).

Loads the model once, runs in batches, writes OUT_DIR/<name>.png with boxes, class names
and scores (DejaVu Sans if installed, else Pillow's built-in font: no arial.ttf needed),
detections.json (COCO results format: image_id, category_id, bbox [x, y, w, h] in pixels,
score; image ids are listed in images.json) and detections.csv (one row per box).
"""
import glob
import os

from odcore import imagefile
from odcore.errors import UserError
from odcore.fileio import atomic_path, write_json, write_text
from odcore.paths import check_output_dir
from odrun import runtimes
from odrun.convert.safety import csv_cell  # a class or file named =cmd|... is not a formula
from odrun.tasks.detect import draw
from odrun.tasks.detect.checks import unit_interval
from odrun.tasks.detect.masks import output as seg_output  # instance masks (Mask R-CNN exports)
from odrun.ui import quiet
from odrun.ui.progress import ItemProgress, enabled, status
from odrun.workdir.metadata import export_metadata

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
DEFAULT_THRESHOLD = 0.4  # one default for `odrun detect` and `odrun demo`


def collect(sources, exts=IMAGE_EXTS):
    """Image paths from files, folders (not recursive) and globs; stable order, no duplicates.
    `exts`: lower-case extensions a folder or glob picks up (`odrun predict` passes all Pillow reads)."""
    exts = tuple(exts)
    out, seen = [], set()
    for src in sources:
        if os.path.isdir(src):
            found = sorted(os.path.join(src, f) for f in os.listdir(src) if f.lower().endswith(exts))
        elif os.path.isfile(src):
            found = [src]
        else:
            found = sorted(f for f in glob.glob(src) if f.lower().endswith(exts))
            if not found:
                raise UserError("no image matches", where=src,
                                fix="give an image file, a folder of images or a quoted glob like 'imgs/*.jpg'")
        for f in found:
            key = os.path.abspath(f)
            if key not in seen:
                seen.add(key)
                out.append(f)
    if not out:
        raise UserError("no images found", where=" ".join(sources),
                        fix="folders are read one level deep; extensions: " + " ".join(exts))
    return out


def load_image(path):
    import numpy as np
    try:
        with imagefile.open_file(path)[1] as im:  # the one opener: regular files, size and pixel caps
            return np.asarray(im.convert("RGB"))
    except imagefile.ImageRefused:
        raise
    except (OSError, ValueError) as exc:
        raise UserError("cannot read image: {}".format(exc), where=path, fix="remove or replace the file")


def drawn(raw, filtered, agnostic_iou, runner_up):
    """(detections, agnostic IoU) to draw: with --runner-up the unfiltered ones and the NMS in
    draw.plan, which names the second class of a box before NMS would drop it; else the filtered ones."""
    if runner_up and agnostic_iou is not None:
        return raw, agnostic_iou
    return filtered, None


def annotate(image, det, names, threshold, path, agnostic_iou=None, runner_up=False):
    """Draw the detections (odrun.tasks.detect.draw decides which label is visible) and write a PNG atomically."""
    im, _labels = draw.annotate(image, det, names, threshold, agnostic_iou=agnostic_iou, runner_up=runner_up)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")


def _readable(paths, strict):
    """strict: every image decodes (UserError naming the first that does not), before the model loads."""
    if strict:
        for p in paths:
            load_image(p)


def _refuse_hostile(path):
    """The opener's refusals (a FIFO, a device, over the byte or pixel cap: exit 2) before the model
    loads; a merely unreadable image (truncated, not an image) is left to _load_or_skip / --strict."""
    try:
        imagefile.open_file(path)[1].close()
    except imagefile.ImageRefused:
        raise
    except (OSError, ValueError):
        pass


def _load_or_skip(path, strict, skipped):
    """The image as an array, or None (skipped: a warning on the terminal, the file in the summary)."""
    try:
        return load_image(path)
    except UserError as exc:
        if strict:
            raise
        quiet.terminal().write("warning: skipped {}: {} (--strict makes this an error)\n".format(path, exc.message))
        skipped.append({"file": os.path.abspath(path), "reason": exc.message})
        return None


def detect(model_dir, sources, out_dir, threshold=DEFAULT_THRESHOLD, batch=16, api=None, images=True, progress=True,
           agnostic_iou=None, runner_up=False, runtime=None, mask_png=False, strict=False):
    """-> the summary (images, detections, runtime, skipped unreadable images, ...)."""
    import pandas as pd
    if batch < 1:
        raise UserError("--batch must be >= 1", where="--batch", fix="e.g. 16")
    if agnostic_iou is not None and not 0.0 <= agnostic_iou <= 1.0:
        raise UserError("--agnostic-nms is an IoU between 0 and 1, got {}".format(agnostic_iou),
                        where="--agnostic-nms", fix="e.g. --agnostic-nms 0.5")
    unit_interval(threshold, "--threshold", DEFAULT_THRESHOLD)
    meta, names = export_metadata(model_dir, classifier=False)
    paths = collect(sources)
    # never write over (or among) the inputs: photos/ --out photos/ would replace the PNGs
    check_output_dir(out_dir, [("model folder (--model)", model_dir)] +
                     [("input", s) for s in sources if os.path.exists(s)] +
                     [("input image", p) for p in paths], kind="detect")
    for p in paths:  # no FIFO, device, oversized file or pixel bomb gets as far as the model load
        _refuse_hostile(p)
    _readable(paths, strict)
    runtime = runtimes.choose(model_dir, seg_output.runtime_for(meta, runtime), meta)
    with status("loading the model ({} runtime)".format(runtime), enabled=progress):
        detector = runtimes.load(model_dir, runtime, meta, api=api).detect  # onnx/tflite: no TensorFlow
    os.makedirs(out_dir, exist_ok=True)
    results, rows, image_rows, used, skipped = [], [], [], set(), []
    calls = 0
    with ItemProgress(len(paths), "detect", enabled=progress) as bar:
        for start in range(0, len(paths), batch):
            loaded = [(p, _load_or_skip(p, strict, skipped)) for p in paths[start:start + batch]]
            chunk = [p for p, a in loaded if a is not None]
            arrays = [a for _, a in loaded if a is not None]
            dets = detector(arrays) if arrays else []
            calls += bool(arrays)
            for path, image, det in zip(chunk, arrays, dets):
                raw = det
                if agnostic_iou is not None:
                    det = draw.agnostic_filter(det, threshold, agnostic_iou)
                image_id = len(image_rows) + 1
                h, w = image.shape[:2]
                det = seg_output.add_image_masks(det, h, w, threshold)
                name = _out_name(path, used)
                image_rows.append({"id": image_id, "file_name": os.path.abspath(path), "width": w, "height": h,
                                   "annotated": os.path.join(os.path.abspath(out_dir), name) if images else None})
                for box, cls, score in zip(det["boxes"], det["classes"], det["scores"]):
                    if score < threshold:
                        continue
                    results.append(runtimes.coco_row(box, cls, score, w, h, image_id))
                    ymin, xmin, ymax, xmax = [float(v) for v in box]
                    x, y = xmin * w, ymin * h
                    rows.append({"filename": os.path.basename(path), "width": w, "height": h,
                                 "class": names.get(int(cls), str(int(cls))), "class_id": int(cls),
                                 "score": round(float(score), 5), "xmin": round(x), "ymin": round(y),
                                 "xmax": round(xmax * w), "ymax": round(ymax * h)})
                seg_output.attach(results, det)
                if mask_png:
                    seg_output.write_pngs(det, out_dir, os.path.splitext(name)[0])
                if images:
                    shown, iou = drawn(raw, det, agnostic_iou, runner_up)
                    annotate(seg_output.shown(image, det), shown, names, threshold, os.path.join(out_dir, name),
                             agnostic_iou=iou, runner_up=runner_up)
            bar.advance(len(loaded))
    write_json(os.path.join(out_dir, "detections.json"), results)
    write_json(os.path.join(out_dir, "images.json"), image_rows)
    columns = ["filename", "width", "height", "class", "class_id", "score", "xmin", "ymin", "xmax", "ymax"]
    rows = [{k: csv_cell(v) for k, v in r.items()} for r in rows]
    write_text(os.path.join(out_dir, "detections.csv"), pd.DataFrame(rows, columns=columns).to_csv(index=False))
    return {"images": len(image_rows), "detections": len(results), "threshold": threshold, "batches": calls,
            "runtime": runtime, "skipped": skipped, "out_dir": os.path.abspath(out_dir),
            "annotated": [r["annotated"] for r in image_rows if r["annotated"]][:1]}


def _out_name(path, used):
    stem = os.path.splitext(os.path.basename(path))[0]
    name, n = stem + ".png", 1
    while name in used:
        n += 1
        name = "{}_{}.png".format(stem, n)
    used.add(name)
    return name


def from_args(args):
    """`odrun detect` on a detector export (flags: odrun.verbs.detect) -> the summary."""
    return detect(args.model, args.sources, args.out, threshold=args.threshold, batch=args.batch,
                  api=args.api, images=not args.no_images, progress=enabled(args),
                  agnostic_iou=args.agnostic_nms, runner_up=args.runner_up, runtime=args.runtime,
                  mask_png=args.mask_png, strict=getattr(args, "strict", False))


def show(summary, args):
    print("{images} images, {detections} detections (score >= {threshold}, {runtime} runtime) -> {out_dir}"
          .format(**summary))
    if summary["skipped"]:
        print("skipped {} unreadable image(s): {}".format(
            len(summary["skipped"]), ", ".join(os.path.basename(s["file"]) for s in summary["skipped"])))
