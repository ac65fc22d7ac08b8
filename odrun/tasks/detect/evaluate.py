"""`odrun eval`: COCO detection metrics (pycocotools, through the OD API's evaluator) for the
newest checkpoint in RUN_DIR, printed as a table and written to RUN_DIR/eval.json."""
import contextlib
import os
import sys

from odcore.errors import UserError
from odcore.fileio import write_json
from odrun.tasks.detect import backends
from odrun.ui.progress import status
from odrun.workdir.rundir import newest_checkpoint

# pycocotools' names for the 12 COCO numbers, in its print order.
ORDER = ["mAP", "mAP@.50IOU", "mAP@.75IOU", "mAP (small)", "mAP (medium)", "mAP (large)",
         "AR@1", "AR@10", "AR@100", "AR@100 (small)", "AR@100 (medium)", "AR@100 (large)"]


def run_dir_config(run_dir):
    config = os.path.join(run_dir, "pipeline.config")
    if not os.path.exists(config):
        raise UserError("no pipeline.config: not an `odrun train` run directory", where=run_dir,
                        fix="pass the --workdir you trained in")
    return config


def evaluate(run_dir, api=None):
    config = run_dir_config(run_dir)
    if not newest_checkpoint(run_dir):
        raise UserError("no checkpoint yet", where=run_dir, fix="train first: odrun train --workdir " + run_dir)
    backend = backends.get(api)
    # pycocotools prints its summary to stdout: keep stdout for our table / --json.
    with status("evaluating the newest checkpoint on the test records"), contextlib.redirect_stdout(sys.stderr):
        metrics = backend.evaluate(config, run_dir)
    meta = metrics.pop("_meta", {})
    result = {"step": meta.get("step"), "checkpoint": meta.get("checkpoint"),
              "metrics": metrics}
    write_json(os.path.join(run_dir, "eval.json"), result)
    return result


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
    return evaluate(args.workdir, api=args.api)


def show(result, args):
    from rich.console import Console
    Console().print(table(result))
    print("wrote " + os.path.join(args.workdir, "eval.json"))
