"""Issue 25, the terminal items left after the first pass, without TensorFlow (seconds): a long
stage shows a live line with its elapsed time in a real terminal (pty), not a static one.
The TF runs of the same items: tests/test_export_serve.py (export's stages, serve's quiet terminal)."""
import re
import sys

from conftest import ROOT
from ptyrun import PtyRun

STAGE = r"""
import sys, time
from odrun.ui.progress import status
with status("export: writing onnx [tf2onnx]"):
    time.sleep(float(sys.argv[1]))
print("after", flush=True)
"""


def test_a_long_stage_shows_its_elapsed_time_in_a_terminal():
    """ONNX/TFLite export sat on a static `export: writing onnx ...` for 100+ s: in a terminal the
    stage line is live, its clock counting, and a done line with the time stays."""
    term = PtyRun([sys.executable, "-c", STAGE, "2.7"], cwd=str(ROOT)).start()
    assert term.wait(60) == 0, term.text()
    text = term.text()
    live = [line for line in text.splitlines() if re.search(r"\b0:00:0[12]\b", line)]
    assert live, text[-1500:]  # the clock, beside the stage (rich redraws the whole line)
    assert "export: writing onnx [tf2onnx] ..." in text  # the text as given (no markup eaten)
    assert re.search(r"export: writing onnx \[tf2onnx\]: done in 2\.\ds", text), text[-500:]
    assert text.index("done in") < text.index("after")


BUSY = r"""
import time
from odrun.ui.progress import StepProgress
with StepProgress(4) as bar:
    for step in (1, 2):
        bar.update(step, {"loss": 1.0})
        time.sleep(0.2)
    with bar.busy("evaluating step 2"):  # what --eval-every does between two steps
        time.sleep(1.5)
    for step in (3, 4):
        bar.update(step, {"loss": 0.5})
        time.sleep(0.2)
print("end", flush=True)
"""


def test_evaluation_during_training_says_evaluating_not_a_frozen_bar():
    """--eval-every froze the bar at `2/4 ETA ...` for the evaluation's 22 s: the bar says what runs."""
    term = PtyRun([sys.executable, "-c", BUSY], cwd=str(ROOT)).start()
    assert term.wait(60) == 0, term.text()
    text = term.text()
    assert re.search(r"train \(evaluating step 2 \.\.\.\)\W+2/4", text), text[-1500:]
    assert text.rindex("4/4") > text.rindex("evaluating step 2")  # the bar carries on after it


def test_evaluation_during_piped_training_prints_its_lines():
    import subprocess
    proc = subprocess.run([sys.executable, "-c", BUSY], capture_output=True, text=True, timeout=60, cwd=str(ROOT),
                          env=dict(__import__("os").environ, ODRUN_PROGRESS="plain"))
    assert "train: evaluating step 2 ..." in proc.stdout
    assert re.search(r"train: evaluating step 2: done in 1\.\ds", proc.stdout), proc.stdout


# ------------------------------------------------------------------ odrun demo, run again
def _demo_args(work):
    import types
    return types.SimpleNamespace(workdir=str(work), json=True)


def test_a_demo_rerun_trains_anew_and_says_so(tmp_path, capsys):
    """`odrun demo --steps 50` after a 300-step demo in the same folder was refused ("the run is
    already at step 300, past the 50 steps asked"): a demo is a new demo each time."""
    from odrun.ui import stages
    from test_issue25_fast import _fake_run
    work = tmp_path / "demo"
    stages.begin(_demo_args(work), 300, 10, 5, "detections")  # the first demo: nothing to replace
    _fake_run(work / "run", [150, 300])
    (work / "demo.json").write_text("{}")
    assert "earlier demo" not in capsys.readouterr().err
    stages.begin(_demo_args(work), 50, 10, 5, "detections")
    err = capsys.readouterr().err
    assert "an earlier demo is in {}: training a new 50-step one from scratch (its run at step 300 is " \
           "replaced; to extend a run instead: odrun train --workdir {} --steps N --resume)".format(
               work, work / "run") in err, err
    assert not (work / "run").exists()


def test_an_interrupted_demo_is_also_replaced(tmp_path, capsys):
    from odrun.ui import stages
    from test_issue25_fast import _fake_run
    work = tmp_path / "demo"
    stages.begin(_demo_args(work), 300, 10, 5, "detections")
    _fake_run(work / "run", [100])  # Ctrl-C at step 100: no demo.json yet
    stages.begin(_demo_args(work), 300, 10, 5, "detections")
    assert "its run at step 100 is replaced" in capsys.readouterr().err and not (work / "run").exists()


def test_a_run_no_demo_made_is_refused_not_removed(tmp_path):
    import pytest
    from odcore.errors import UserError
    from odrun.ui import stages
    from test_issue25_fast import _fake_run
    _fake_run(tmp_path / "run", [100])  # the user's own training, in the folder given as --workdir
    with pytest.raises(UserError) as e:
        stages.begin(_demo_args(tmp_path), 50, 10, 5, "detections")
    assert e.value.where == "--workdir" and "no odrun demo made" in e.value.message
    assert (tmp_path / "run" / "ckpt-100.index").exists()
