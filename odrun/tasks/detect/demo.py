"""`odrun demo`: the whole pipeline on a generated dataset, in one process.

synthetic shapes (VOC XML) -> convert -> train -> eval -> export -> detect, then a summary
table with the time of each stage and the path of an annotated image. Each stage calls the
verb's library function (convert.convert, train.train, evaluate.evaluate, export.export,
detect.detect), the same one its CLI calls. The defaults finish
in well under 10 minutes on a 2-core CPU (see bench/README.md).
"""
import json
import os
import time

from odcore.errors import UserError

DEFAULT_STEPS = 300
DEFAULT_IMAGES = 80


def add_parser(sub):
    from odrun.tasks.detect.backends import add_api_flag
    p = sub.add_parser("demo", help="synthetic data -> convert -> train -> eval -> export -> detect",
                       description=__doc__)
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training steps (default %(default)s)")
    p.add_argument("--images", type=int, default=DEFAULT_IMAGES, help="synthetic images (default %(default)s)")
    p.add_argument("--workdir", default="demo-run", metavar="DIR", help="where everything goes (default ./demo-run)")
    from odrun.tasks.detect.detect import DEFAULT_THRESHOLD
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="detect score threshold, the same default as `odrun detect` (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bars)")
    add_api_flag(p)
    from odrun.tasks import add_task_flag
    add_task_flag(p, '; classify: class folders -> MobileNetV2 x0.35 from scratch -> predict')
    p.set_defaults(func=run)
    return p


def run(args):
    if getattr(args, "task", "detect") == "classify":
        from odrun.tasks.classify import demo as classify_demo
        return classify_demo.run(args)
    if getattr(args, "task", "detect") == "segment":  # instance masks: Mask R-CNN on shapes with exact masks
        from odrun.tasks.detect.masks import demo as segment_demo
        return segment_demo.run(args)
    from odrun import convert
    from odrun.tasks.detect import detect, evaluate, export, synth, train
    from odcore.fileio import write_json
    work, paths, quiet, stage = begin(args, args.steps, args.images, 5, "detections")
    stages = stage.rows

    stage("synth", lambda: synth.generate(paths["images"], count=args.images, seed=0),
          lambda r: "{} images + VOC XML".format(len(r)))
    stage("convert", lambda: convert.convert(paths["images"], paths["data"], progress=not quiet),
          lambda r: "{} train / {} test images".format(r["images"]["train"], r["images"]["test"]))
    stage("train", lambda: _quiet_call(quiet, lambda: train.train(
              paths["run"], data=paths["data"], steps=args.steps, checkpoint_every=max(args.steps // 2, 1),
              api=args.api, progress=not quiet)),
          _train_note)
    ev = stage("eval", lambda: _quiet_call(True, evaluate.evaluate, paths["run"], args.api),
               lambda r: "mAP@.50IOU {:.3f}".format(r["metrics"].get("DetectionBoxes_Precision/mAP@.50IOU", -1)))
    stage("export", lambda: export.export(paths["run"], paths["export"], api=args.api),
          lambda r: "SavedModel at step {}".format(r["step"]))
    stage("detect", lambda: detect.detect(paths["export"], [paths["images"]], paths["detections"],
                                          threshold=args.threshold, api=args.api, progress=not quiet),
          lambda r: "{} boxes on {} images (score >= {})".format(r["detections"], r["images"], r["threshold"]))
    summary = {"workdir": work, "steps": args.steps, "stages": stages,
               "total_seconds": round(sum(s["seconds"] for s in stages), 1),
               "metrics": ev["metrics"], "annotated_image": best_image(paths["detections"]),
               "paths": paths}
    write_json(os.path.join(work, "demo.json"), summary)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return 0


def begin(args, steps, images, min_images, last):
    """What every demo starts with: check the sizes, name its folders under --workdir
    (images, data, run, export and `last`: where detections/predictions go), and a Stages."""
    if steps < 1 or images < min_images:
        raise UserError("need --steps >= 1 and --images >= {}".format(min_images), where="--steps/--images",
                        fix="use the defaults")
    work = os.path.abspath(args.workdir)
    paths = {k: os.path.join(work, k) for k in ("images", "data", "run", "export", last)}
    return work, paths, args.json, Stages()


class Stages(object):
    """A demo's stages in order: `stage(name, fn, note)` runs fn, times it and keeps
    {stage, seconds, result: note(fn's result)} in `rows`; returns fn's result."""

    def __init__(self):
        self.rows = []

    def __call__(self, name, fn, note):
        t = time.time()
        result = fn()
        self.rows.append({"stage": name, "seconds": round(time.time() - t, 1), "result": note(result)})
        return result


def _quiet_call(quiet, fn, *a):
    """Run fn with its stdout sent to stderr (so --json output stays one JSON document)."""
    import contextlib
    import sys
    if not quiet:
        return fn(*a)
    with contextlib.redirect_stdout(sys.stderr):
        return fn(*a)


def _train_note(t):
    return "step {} (loss {:.3f}, {} steps/s)".format(
        t["end_step"], t["losses"].get("Loss/total_loss", float("nan")), t["steps_per_sec"])


def best_image(det_dir):
    """The annotated image with the most boxes (the first one if none has any)."""
    with open(os.path.join(det_dir, "images.json"), encoding="utf-8") as f:
        images = json.load(f)
    with open(os.path.join(det_dir, "detections.json"), encoding="utf-8") as f:
        counts = {}
        for d in json.load(f):
            counts[d["image_id"]] = counts.get(d["image_id"], 0) + 1
    best = max(images, key=lambda im: (counts.get(im["id"], 0), -im["id"]))
    return best["annotated"]


def print_summary(summary, title="odrun demo", pictures=(("annotated image", "annotated_image"),)):
    """The stage table, then one line per picture (label, summary key) and the summary's path."""
    from rich.console import Console
    from rich.table import Table
    t = Table(title="{} ({} steps) in {}s".format(title, summary["steps"], summary["total_seconds"]))
    for col in ("stage", "seconds", "result"):
        t.add_column(col, justify="right" if col == "seconds" else "left")
    for s in summary["stages"]:
        t.add_row(s["stage"], "{:.1f}".format(s["seconds"]), s["result"])
    console = Console()
    console.print(t)
    for label, key in pictures:
        console.print("{}: {}".format(label, summary[key]))
    console.print("summary: " + os.path.join(summary["workdir"], "demo.json"))
