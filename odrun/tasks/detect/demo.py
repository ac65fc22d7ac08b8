"""`odrun demo` (boxes): synthetic shapes (VOC XML) -> convert -> train -> eval -> export ->
detect, each stage through the library function its verb calls (convert.convert, train.train,
evaluate.evaluate, export.export, detect.detect); the stage table is odrun.ui.stages'."""
import json
import os

from odcore.fileio import write_json
from odrun.convert import convert_with_report
from odrun.tasks.detect import detect, evaluate, export, synth, train
from odrun.ui.stages import begin, print_summary, quiet_call, settings


def from_args(args):
    """`odrun demo` (flags: odrun.verbs.demo; --steps/--images: odrun/data/defaults.yaml) -> demo.json's summary."""
    work, paths, quiet, stage = begin(args, args.steps, args.images, 5, "detections")
    stages = stage.rows
    cfg = settings("detect")  # odrun/data/demo.yaml: the synthetic set and the model

    stage("synth", lambda: synth.generate(paths["images"], count=args.images, seed=0, **cfg["synth"]),
          lambda r: "{} images + VOC XML".format(len(r)))
    stage("convert", lambda: convert_stage(paths, quiet),
          lambda r: "{} train / {} test images, report.png".format(r["images"]["train"], r["images"]["test"]))
    stage("train", lambda: quiet_call(quiet, lambda: train.train(
              paths["run"], data=paths["data"], model=cfg["model"], overrides=cfg["overrides"], steps=args.steps,
              checkpoint_every=max(args.steps // 2, 1), api=args.api, progress=not quiet)),
          train_note)
    ev = stage("eval", lambda: quiet_call(True, evaluate.evaluate, paths["run"], args.api),
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
    summary.update(pictures(paths, ev))
    write_json(os.path.join(work, "demo.json"), summary)
    return summary


def convert_stage(paths, quiet):
    """The demo's convert: records, label map and DATA/report.png, as `odrun convert` writes them."""
    return convert_with_report(paths["images"], paths["data"], progress=not quiet)


# (label, demo.json key) of the pictures a box or mask demo names at its end
PICTURES = (("data report", "report"), ("results", "results_png"), ("PR curve", "pr_curve"),
            ("confusion matrix", "confusion_matrix"), ("annotated image", "annotated_image"))


def pictures(paths, ev):
    """The demo's pictures besides the annotated image: convert's report, eval's files."""
    files = ev.get("files", {})
    out = {"report": os.path.join(paths["data"], "report.png")}
    out.update({k: files[k] for k in ("results_png", "pr_curve", "confusion_matrix") if k in files})
    return out


def show(summary, args):
    print_summary(summary, pictures=[p for p in PICTURES if p[1] in summary])


def train_note(t):
    """The train stage's line of a box (or mask) demo."""
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
