"""What every `odrun demo` shares: its folders, its timed stages, quiet library calls and the
summary table (detect, segment and classify demos alike)."""
import contextlib
import os
import shutil
import sys
import time

from odcore.errors import UserError
from odrun import DATA_DIR
from odrun.ui.quiet import terminal  # the terminal, also while library output goes to the log
from odrun.workdir import rundir

DEMO_JSON = "demo.json"  # the summary a finished demo leaves
MARKER = ".odrun-demo"  # written when a demo starts: an interrupted demo's run is also the demo's
SETTINGS_FILE = os.path.join(DATA_DIR, "demo.yaml")


def begin(args, steps, images, min_images, last):
    """What every demo starts with: check the sizes, name its folders under --workdir
    (images, data, run, export and `last`: where detections/predictions go), and a Stages."""
    if steps < 1 or images < min_images:
        raise UserError("need --steps >= 1 and --images >= {}".format(min_images), where="--steps/--images",
                        fix="use the defaults")
    work = os.path.abspath(args.workdir)
    paths = {k: os.path.join(work, k) for k in ("images", "data", "run", "export", last)}
    fresh_run(work, paths["run"], steps)
    return work, paths, args.json, Stages()


def fresh_run(work, run, steps):
    """A demo trains from scratch every time: a rerun into the same --workdir (fewer steps, more
    steps) is a new demo, not a resume that would refuse fewer steps. The earlier demo's run goes,
    said with how to extend it instead; a run there that no demo made is refused, never removed."""
    ours = os.path.exists(os.path.join(work, DEMO_JSON)) or os.path.exists(os.path.join(work, MARKER))
    if os.path.lexists(run):
        if not ours or os.path.islink(run) or not os.path.isdir(run):
            raise UserError("{} holds a training run that no odrun demo made".format(run), where="--workdir",
                            fix="pass another --workdir (the demo trains from scratch in DIR/run)")
        step = rundir.step_of(rundir.RunDir(run).newest_checkpoint())
        terminal().write("an earlier demo is in {}: training a new {}-step one from scratch (its run{} is "
                         "replaced; to extend a run instead: odrun train --workdir {} --steps N --resume)\n".format(
                             work, steps, " at step {}".format(step) if step is not None else "", run))
        shutil.rmtree(run)
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, MARKER), "w") as f:
        f.write("odrun demo workdir: a rerun here trains its run/ anew\n")


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
