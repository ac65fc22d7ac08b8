"""What every `odrun demo` shares: its folders, its timed stages, quiet library calls and the
summary table (detect, segment and classify demos alike)."""
import contextlib
import os
import sys
import time

from odcore.errors import UserError
from odrun import DATA_DIR

SETTINGS_FILE = os.path.join(DATA_DIR, "demo.yaml")


def begin(args, steps, images, min_images, last):
    """What every demo starts with: check the sizes, name its folders under --workdir
    (images, data, run, export and `last`: where detections/predictions go), and a Stages."""
    if steps < 1 or images < min_images:
        raise UserError("need --steps >= 1 and --images >= {}".format(min_images), where="--steps/--images",
                        fix="use the defaults")
    work = os.path.abspath(args.workdir)
    paths = {k: os.path.join(work, k) for k in ("images", "data", "run", "export", last)}
    return work, paths, args.json, Stages()


def settings(task):
    """odrun/data/demo.yaml's entry for TASK: the synthetic set (synth.generate's keywords) and the
    model (template, --set overrides) that the demo trains; its steps and images are defaults.yaml's."""
    import yaml
    with open(SETTINGS_FILE, encoding="utf-8") as f:
        return yaml.safe_load(f)[task]


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


def quiet_call(quiet, fn, *a):
    """Run fn with its stdout sent to stderr (so --json output stays one JSON document)."""
    if not quiet:
        return fn(*a)
    with contextlib.redirect_stdout(sys.stderr):
        return fn(*a)


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
