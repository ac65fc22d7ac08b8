"""`odrun eval`: COCO detection metrics (pycocotools, through the OD API's evaluator) for the
checkpoint in RUN_DIR (--checkpoint newest|best|STEP), printed as a table and written to RUN_DIR/eval.json."""

from odrun import verbs
from odrun.tasks.detect.backends import add_api_flag
from odrun.workdir.rundir import add_checkpoint_flags


def add_parser(sub):
    p = sub.add_parser("eval", help="COCO metrics for a checkpoint (default: the newest)", description=__doc__)
    add_checkpoint_flags(p)  # --workdir, --checkpoint
    p.add_argument("--json", action="store_true", help="print eval.json instead of a table")
    add_api_flag(p)
    return verbs.finish(p, "eval", run)


def run(args):
    return verbs.run_on_run_dir("eval", args)
