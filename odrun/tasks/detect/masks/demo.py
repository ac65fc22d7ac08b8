"""`odrun demo --task segment`: synthetic shapes with exact masks (COCO JSON, compressed RLE) ->
convert (masks) -> train (mask_rcnn_resnet50_small) -> eval (box + mask mAP) -> export
(detection_masks) -> detect (masks drawn, COCO RLE in detections.json). Each stage calls the
verb's library function, as `odrun demo` does for boxes.

Defaults for this task (odrun/data/defaults.yaml, tasks: segment: demo): 700 steps on 80 128x128
images of the easy set in odrun/data/demo.yaml (large, high-contrast shapes, one colour per class),
sized to finish in < 10 min on a 2-core CPU and still learn masks from scratch (README).
"""
import os

from odcore.fileio import write_json
from odrun.convert import convert_with_report
from odrun.tasks.detect import demo, detect, evaluate, export, train
from odrun.tasks.detect.masks import synth
from odrun.ui.stages import begin, print_summary, quiet_call, settings


def from_args(args):
    """`odrun demo --task segment` (flags: odrun.verbs.demo) -> the demo.json summary."""
    steps, count = args.steps, args.images  # this task's defaults: odrun.tasks.stage_for
    work, paths, quiet, stage = begin(args, steps, count, 5, "detections")
    stages = stage.rows
    cfg = settings("segment")  # odrun/data/demo.yaml: the synthetic set and the model

    stage("synth", lambda: synth.generate(paths["images"], count=count, seed=0, **cfg["synth"]),
          lambda r: "{} images + COCO JSON with exact masks".format(len(r[1])))
    stage("convert", lambda: convert_with_report(os.path.join(paths["images"], "instances.json"), paths["data"],
                                                 input_size=cfg["synth"]["width"], masks=True, progress=not quiet),
          lambda r: "{} train / {} test images with masks, report.png".format(r["images"]["train"],
                                                                              r["images"]["test"]))
    stage("train", lambda: quiet_call(quiet, lambda: train.train(
              paths["run"], data=paths["data"], model=cfg["model"], overrides=cfg["overrides"], steps=steps,
              checkpoint_every=steps,
              api="tf2", progress=not quiet)),
          demo.train_note)
    ev = stage("eval", lambda: quiet_call(True, evaluate.evaluate, paths["run"], "tf2"),
               lambda r: "box mAP@.50 {:.3f}, mask mAP@.50 {:.3f}".format(
                   r["metrics"].get("DetectionBoxes_Precision/mAP@.50IOU", -1),
                   r["metrics"].get("DetectionMasks_Precision/mAP@.50IOU", -1)))
    stage("export", lambda: export.export(paths["run"], paths["export"], api="tf2"),
          lambda r: "SavedModel with detection_masks at step {}".format(r["step"]))
    stage("detect", lambda: detect.detect(paths["export"], [paths["images"]], paths["detections"],
                                          threshold=args.threshold, api="tf2", progress=not quiet),
          lambda r: "{} masks on {} images (score >= {})".format(r["detections"], r["images"], r["threshold"]))
    summary = {"task": "segment", "workdir": work, "steps": steps, "stages": stages,
               "total_seconds": round(sum(s["seconds"] for s in stages), 1),
               "metrics": ev["metrics"], "annotated_image": demo.best_image(paths["detections"]),
               "paths": paths}
    summary.update(demo.pictures(paths, ev))
    write_json(os.path.join(work, "demo.json"), summary)
    return summary


def show(summary, args):
    print_summary(summary, title="odrun demo --task segment", pictures=[p for p in demo.PICTURES if p[1] in summary])
