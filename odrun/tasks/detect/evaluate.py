"""`odrun eval`: COCO detection metrics (pycocotools, through the OD API's evaluator) for a
checkpoint in RUN_DIR (--checkpoint newest|best|STEP), printed as a table and written to RUN_DIR/eval.json;
the evaluation also goes into results.csv/results.png and (TF2) RUN_DIR/eval/ gets the PR curve and
the confusion matrix (odrun.tasks.detect.results)."""
import contextlib
import os
import sys

from odcore.errors import UserError
from odcore.fileio import write_json
from odrun.tasks.detect import backends, results
from odrun.ui.progress import status
from odrun.ui.quiet import terminal  # the terminal, also while library noise goes to the log
from odrun.workdir.rundir import RunDir, resolve_checkpoint

# pycocotools' names for the 12 COCO numbers, in its print order.
ORDER = ["mAP", "mAP@.50IOU", "mAP@.75IOU", "mAP (small)", "mAP (medium)", "mAP (large)",
         "AR@1", "AR@10", "AR@100", "AR@100 (small)", "AR@100 (medium)", "AR@100 (large)"]
OD_MAP, OD_MAP50 = "DetectionBoxes_Precision/mAP", "DetectionBoxes_Precision/mAP@.50IOU"


def run_api(run_dir, api=None):
    """--api, else $ODRUN_API, else the code path the run was trained with (run.json): no
    TensorFlow import just to choose (bad arguments are refused in well under a second)."""
    return api or os.environ.get(backends.ENV) or RunDir(run_dir).read_json().get("api") or None


def run_dir_config(run_dir):
    config = os.path.join(run_dir, "pipeline.config")
    if not os.path.exists(config):
        raise UserError("no pipeline.config: not an `odrun train` run directory", where=run_dir,
                        fix="pass the --workdir you trained in")
    return config


def evaluate(run_dir, api=None, checkpoint=None):
    """checkpoint: newest (default), best or a step number (odrun.workdir.rundir.resolve_checkpoint)."""
    config = run_dir_config(run_dir)
    prefix = resolve_checkpoint(run_dir, checkpoint)
    backend = backends.get(run_api(run_dir, api))
    # pycocotools prints its summary to stdout: keep stdout for our table / --json.
    with status("evaluating {} on the test records".format(os.path.basename(prefix))), \
            contextlib.redirect_stdout(sys.stderr):
        metrics = backend.evaluate(config, run_dir, checkpoint=prefix)
    meta = metrics.pop("_meta", {})
    result = {"step": meta.get("step"), "checkpoint": meta.get("checkpoint"),
              "metrics": metrics}
    with status("drawing the PR curve, the confusion matrix and results.png"):
        result["files"] = pictures(run_dir, meta, metrics)
    write_json(os.path.join(run_dir, "eval.json"), result)
    return result


def pictures(run_dir, meta, metrics):
    """The evaluation in RUN/results.csv (its step's row) and results.png; with per-image
    detections (TF2) also RUN/eval/pr_curve.* and confusion_matrix*.*; -> {name: path}."""
    images, names, step = meta.get("images"), meta.get("names"), meta.get("step")
    if images is not None and names:
        coco = results.coco_eval(images, names)
    else:  # TF1: the estimator's metrics only (no per-image detections, no per-class AP)
        coco = {results.MAP: metrics.get(OD_MAP, 0.0), results.MAP50: metrics.get(OD_MAP50, 0.0), "per_class": {}}
    files = {}
    if step is not None:
        results.add_evaluation(run_dir, step, {}, coco)
        files["results_csv"] = os.path.join(run_dir, results.RESULTS_CSV)
    try:
        if images is not None and names:
            files.update(results.final_plots(run_dir, images, names, coco))
        files["results_png"] = results.plot_results(run_dir)
    except ImportError as exc:  # matplotlib missing: eval.json and results.csv hold the numbers
        terminal().write("no plots ({}): pip install matplotlib\n".format(exc))
    return files


def table(result):
    from rich.table import Table
    t = Table(title="COCO metrics at step {}".format(result["step"]))
    t.add_column("metric")
    t.add_column("value", justify="right")
    metrics = result["metrics"]

    def rank(name):
        short = name.split("/", 1)[-1]
        return (ORDER.index(short) if short in ORDER else len(ORDER), name)

    for name in sorted(metrics, key=rank):
        t.add_row(name, "{:.4f}".format(metrics[name]))
    return t


def from_args(args):
    """`odrun eval` (flags: odrun.verbs.evaluate) -> the eval.json result."""
    return evaluate(args.workdir, api=args.api, checkpoint=getattr(args, "checkpoint", None))


def show(result, args):
    from rich.console import Console
    Console().print(table(result))
    print("wrote " + ", ".join([os.path.join(args.workdir, "eval.json")] + [
        result.get("files", {})[k] for k in ("results_png", "pr_curve", "confusion_matrix",
                                              "confusion_matrix_normalized") if k in result.get("files", {})]))
