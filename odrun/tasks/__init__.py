"""Tasks other than box detection, each a package with its own convert/train/eval/export/predict
pieces, reached through the same verbs (`--task NAME` on convert/train/demo; eval, export and
detect read the task from the run or export directory)."""
import json
import os

TASKS = ("detect", "classify", "segment")


def task_of(directory, name):
    """The "task" field of DIRECTORY/NAME (run.json or metadata.json); "detect" when absent."""
    path = os.path.join(directory or "", name)
    if not os.path.isfile(path):
        return "detect"
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("task") or "detect"
    except (OSError, ValueError):
        return "detect"


def add_task_flag(parser, help_extra=""):
    parser.add_argument("--task", choices=TASKS, default="detect",
                        help="detect (boxes, the OD API; default) or classify (one label per image, "
                             "the tutorials' retrain.py / slim pipeline) or segment (instance masks, Mask R-CNN: "
                             "the COCO tutorial's create_coco_tf_record.py --include_masks)" + help_extra)
