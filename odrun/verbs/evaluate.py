"""`odrun eval`: COCO detection metrics (pycocotools, through the OD API's evaluator) for the
checkpoint in RUN_DIR (--checkpoint newest|best|STEP), printed as a table and written to RUN_DIR/eval.json."""

from odrun import tasks
from odrun.tasks.detect.backends import add_api_flag
from odrun.workdir.rundir import add_checkpoint_flag


def add_parser(sub):
    p = sub.add_parser("eval", help="COCO metrics for a checkpoint (default: the newest)", description=__doc__)
    p.add_argument("--workdir", metavar="RUN_DIR", required=True, help="the run directory of `odrun train`")
    p.add_argument("--json", action="store_true", help="print eval.json instead of a table")
    add_checkpoint_flag(p)
    add_api_flag(p)
    tasks.record_defaults(p, "eval")  # defaults: odrun/data/defaults.yaml
    p.set_defaults(func=run)
    return p


def run(args):
    return tasks.run_verb("eval", args, task=tasks.task_of_run(args.workdir))
