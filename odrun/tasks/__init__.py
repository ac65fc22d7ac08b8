"""The tasks the verbs run, as a table: TASKS[name].stage(verb) names the module that does the
work (`from_args(args)` -> summary, `show(summary, args)` for the terminal; imported only when used, so
`odrun --help` loads no TensorFlow) and the flags the task takes on that verb.

convert, train and demo take `--task NAME`; eval and export read the task from RUN_DIR/run.json,
detect from EXPORT_DIR/metadata.json. `segment` is detect with masks (a user-facing alias)."""
import argparse
import importlib
import json
import sys

from odcore.errors import UserError
from odrun import option_defaults
from odrun.workdir.metadata import task_of

# flags no task refuses: the verb's own plumbing
_ANY_TASK = frozenset(("func", "verbose", "command", "task", "json"))

_CONVERT = ("source", "out", "split", "seed", "shards", "strict", "allow_outside_images")
_CONVERT_BOXES = _CONVERT + ("fmt", "train_dir", "test_dir", "label_map", "image_dir", "workers",
                             "skip_empty", "check", "max_size", "input_size", "masks")
_TRAIN = ("data", "workdir", "model", "steps", "batch", "image_size", "pretrained", "overrides",
          "checkpoint_every", "resume")
_TRAIN_BOXES = _TRAIN + ("config", "new_run", "api", "eval_every", "patience", "augment", "gpus",
                         "cross_device_ops")
_TRAIN_CLASSES = _TRAIN + ("epochs", "fine_tune_from", "fine_tune_steps", "flip_left_right", "random_crop",
                           "random_scale", "random_brightness", "bottleneck_dir")
_DETECT = ("sources", "model", "out", "batch", "no_images")
_DETECT_BOXES = _DETECT + ("threshold", "agnostic_nms", "runner_up", "runtime", "mask_png", "api", "strict")
_DEMO = ("steps", "images", "workdir")


class Stage(object):
    """One verb of one task: the module doing it, the flags (argparse dests) it takes, and
    `preset`: attributes set on args before it runs (segment: masks on; detect on a classifier: top 5)."""

    def __init__(self, module, flags, preset=None):
        self.module_name, self.flags, self.preset = module, frozenset(flags) | _ANY_TASK, dict(preset or {})

    def module(self):
        return importlib.import_module(self.module_name)

    def run(self, args):
        """The stage's summary for ARGS (its `from_args`), with the preset applied."""
        for name, value in self.preset.items():
            setattr(args, name, value)
        return self.module().from_args(args)

    def show(self, summary, args):
        """What the stage prints on the terminal (without --json): its `show(summary, args)`."""
        self.module().show(summary, args)


class Task(object):
    def __init__(self, name, stages):
        self.name, self.stages = name, stages

    def stage(self, verb):
        if verb not in self.stages:
            raise UserError("`odrun {}` does not apply to the {} task".format(verb, self.name), where=verb,
                            fix="one of: " + ", ".join(sorted(self.stages)))
        return self.stages[verb]


_DETECT_STAGES = {
    "convert": Stage("odrun.convert", _CONVERT_BOXES),
    "train": Stage("odrun.tasks.detect.train", _TRAIN_BOXES),
    "eval": Stage("odrun.tasks.detect.evaluate", ("workdir", "api", "checkpoint")),
    "export": Stage("odrun.tasks.detect.export", ("workdir", "out", "format", "quantize", "api", "checkpoint")),
    "detect": Stage("odrun.tasks.detect.detect", _DETECT_BOXES),
    "demo": Stage("odrun.tasks.detect.demo", _DEMO + ("threshold", "api")),
}

TASKS = {
    "detect": Task("detect", _DETECT_STAGES),
    "segment": Task("segment", dict(_DETECT_STAGES, **{
        "convert": Stage("odrun.convert", _CONVERT_BOXES, preset={"masks": True}),
        "demo": Stage("odrun.tasks.detect.masks.demo", _DEMO + ("threshold",)),
    })),
    "classify": Task("classify", {
        "convert": Stage("odrun.tasks.classify.convert", _CONVERT),
        "train": Stage("odrun.tasks.classify.train", _TRAIN_CLASSES),
        "eval": Stage("odrun.tasks.classify.evaluate", ("workdir",)),
        "export": Stage("odrun.tasks.classify.export", ("workdir", "out")),
        "detect": Stage("odrun.tasks.classify.predict", _DETECT, preset={"top_k": 5}),
        "predict": Stage("odrun.tasks.classify.predict", _DETECT + ("top_k",)),
        "demo": Stage("odrun.tasks.classify.demo", _DEMO),
    }),
}
NAMES = ("detect", "classify", "segment")  # --task choices, in the order --help lists them


def add_task_flag(parser, help_extra=""):
    parser.add_argument("--task", choices=NAMES, default="detect",
                        help="detect (boxes, the OD API; default) or classify (one label per image, "
                             "the tutorials' retrain.py / slim pipeline) or segment (instance masks, Mask R-CNN: "
                             "the COCO tutorial's create_coco_tf_record.py --include_masks)" + help_extra)


def file_defaults(parser, verb):
    """PARSER's defaults from odrun/data/defaults.yaml's VERB section, and the "default X" of each
    help from the same file: the value, or per task where the tasks differ (`tasks:`)."""
    values = option_defaults(verb)
    for action in parser._actions:
        if action.dest not in values or isinstance(action, argparse._HelpAction):
            continue
        action.default = value = values[action.dest]
        per_task = ["{} {}".format(t, option_defaults(verb, t)[action.dest]) for t in NAMES
                    if action.dest in option_defaults(verb, t)]
        if per_task and value is None:
            action.help = (action.help or "") + " (default: " + ", ".join(per_task) + ")"
        elif value not in (None, False, []) and "default" not in (action.help or ""):
            action.help = (action.help or "") + " (default %(default)s)"


def record_defaults(parser, verb=None):
    """Keep PARSER's flags and their defaults on its args (`_flag_defaults`): what `stage_for`
    compares to tell a flag the user gave from one left alone. Call it after the last add_argument;
    VERB: take the defaults from odrun/data/defaults.yaml first (file_defaults)."""
    if verb:
        file_defaults(parser, verb)
    table = {}
    for action in parser._actions:  # --masks/--no-masks share one dest: the first one's default counts
        if action.dest != "help":
            flag = action.option_strings[-1] if action.option_strings else action.dest
            name, default = table.get(action.dest, (None, action.default))
            table[action.dest] = (name + "/" + flag if name else flag, default)
    parser.set_defaults(_flag_defaults=table)


def stage_for(verb, args, task=None):
    """The Stage that runs VERB for ARGS (task: the given name, else args.task, else detect); a flag
    the user set that this task does not take is exit 2, naming the flag and the task."""
    name = task or getattr(args, "task", None) or "detect"
    stage = TASKS[name].stage(verb)
    given = sorted(flag for dest, (flag, default) in getattr(args, "_flag_defaults", {}).items()
                   if dest not in stage.flags and getattr(args, dest, default) != default)
    if given:
        raise UserError("the {} task does not take {} of `odrun {}` (it would be ignored)".format(
            name, "this flag" if len(given) == 1 else "these flags", verb), where=", ".join(given),
            fix="drop {}; `odrun {} --help` lists each task's flags".format(" ".join(given), verb))
    for dest, value in option_defaults(verb, name).items():  # this task's own defaults (defaults.yaml)
        if getattr(args, dest, None) is None:
            setattr(args, dest, value)
    return stage


def task_of_run(run_dir):
    """The task of an `odrun train` run directory (RUN_DIR/run.json's "task"; detect when absent)."""
    return task_of(run_dir, "run.json")


def task_of_export(export_dir):
    """The task of an `odrun export` directory (its metadata.json's "task"; detect when absent)."""
    return task_of(export_dir, "metadata.json")


def run_verb(verb, args, task=None, ensure_ascii=True):
    """Every task verb's run(): the task's stage for ARGS, its summary printed as JSON (--json) or
    in the task's own view (stage.show); -> exit 0 (errors are UserErrors: exit 2)."""
    stage = stage_for(verb, args, task)
    summary = stage.run(args)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2, ensure_ascii=ensure_ascii) + "\n")
    else:
        stage.show(summary, args)
    return 0
