"""`odrun demo --task classify`: generated class folders (a colour + shape or texture per class)
-> convert -> train (MobileNetV2 x0.35 at 96 px, from scratch: no download) -> eval -> export
-> predict, then a table with the time of each stage. Default: 80 images, 300 steps."""
import os
import types

from odcore.fileio import write_json
from odrun import option_defaults
from odrun.tasks.classify import convert, evaluate, export, predict, synth, train
from odrun.ui.stages import begin, print_summary


MODEL, SIZE, ALPHA, BATCH = "mobilenet_v2", 96, 0.35, 16


def from_args(args):
    """`odrun demo --task classify` (flags: odrun.verbs.demo) -> the demo.json summary."""
    work, paths, quiet, stage = begin(args, args.steps, args.images, 8, "predictions")
    stages = stage.rows

    per_class = max(2, args.images // len(synth.CLASSES))
    stage("synth", lambda: synth.generate(paths["images"], per_class=per_class, size=SIZE, seed=0),
          lambda r: "{} images in {} class folders".format(len(r), len(synth.CLASSES)))
    stage("convert", lambda: convert.convert(paths["images"], paths["data"], progress=not quiet),
          lambda r: "{} train / {} test images".format(r["images"]["train"], r["images"]["test"]))
    # train's options: odrun/data/defaults.yaml's, with the demo's model, size and steps
    targs = types.SimpleNamespace(**dict(
        option_defaults("train"), task="classify", data=paths["data"], workdir=paths["run"], model=MODEL,
        image_size=SIZE, steps=args.steps, batch=BATCH, overrides=["alpha={}".format(ALPHA)],
        checkpoint_every=max(args.steps // 2, 1), json=True))
    s = stage("train", lambda: _train(targs, quiet),
              lambda r: "step {} (loss {:.3f}, test accuracy {})".format(r["end_step"], r["losses"]["loss"],
                                                                        r["test_accuracy"]))
    ev = stage("eval", lambda: evaluate.evaluate(paths["run"]), lambda r: "top-1 {:.3f}".format(r["top1"]))
    stage("export", lambda: export.export(paths["run"], paths["export"]),
          lambda r: "SavedModel + output_graph.pb at step {}".format(r["step"]))
    pr = stage("predict", lambda: predict.predict(paths["export"], [os.path.join(paths["images"], c[0])
                                                                  for c in synth.CLASSES],
                                                  paths["predictions"], progress=not quiet),
               lambda r: "{} images, contact sheet ({} wrong, framed red)".format(
                   r["images"], sum(1 for x in r["predictions"] if x.get("correct") is False)))
    summary = {"task": "classify", "workdir": work, "steps": args.steps, "stages": stages,
               "total_seconds": round(sum(x["seconds"] for x in stages), 1), "top1": ev["top1"],
               "train_seconds": s["seconds"], "contact_sheet": pr["contact_sheet"],
               "confusion_matrix": ev["picture"], "results_png": ev["results_png"], "paths": paths}
    write_json(os.path.join(work, "demo.json"), summary)
    return summary


def _train(targs, quiet):
    s = train.settings(targs)
    s.update({"run_dir": targs.workdir, "bottleneck_dir": None})
    os.makedirs(targs.workdir, exist_ok=True)
    return train.train(s, show=not quiet)


def show(summary, args):
    print_summary(summary, title="odrun demo --task classify",
                  pictures=(("contact sheet", "contact_sheet"), ("confusion matrix", "confusion_matrix"),
                            ("results", "results_png")))
