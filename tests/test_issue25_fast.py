"""Issue 25 without TensorFlow (seconds): Ctrl-C handling, history truncation on resume,
--checkpoint newest|best|STEP, a too-small --steps, a terminal (pty) that stays quiet while a
bar or spinner runs, and bad arguments refused before TensorFlow is imported.
The TF runs of the same items: tests/test_interrupt_tf2.py."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from ptyrun import PtyRun
from odcore.errors import UserError
from odrun.tasks.detect import results
from odrun.workdir import rundir

INDEX_BYTES = b"\0" * 40 + rundir.INDEX_MAGIC  # the footer a complete .index ends with


def _python(code, *args):
    return [sys.executable, "-c", code] + [str(a) for a in args]


def _fake_run(run_dir, steps, state=None):
    """A run directory's checkpoint files, as their names and .index footers look (no weights)."""
    os.makedirs(str(run_dir), exist_ok=True)
    for step in steps:
        (run_dir / "ckpt-{}.index".format(step)).write_bytes(INDEX_BYTES)
        (run_dir / "ckpt-{}.data-00000-of-00001".format(step)).write_bytes(b"")
    newest = state or "ckpt-{}".format(steps[-1])
    (run_dir / "checkpoint").write_text('model_checkpoint_path: "{}"\n'.format(newest))


# ------------------------------------------------------------------ Ctrl-C
GUARD_SCRIPT = r"""
import sys, time
from odrun.ui.interrupt import Guard
with Guard(say=lambda t: print(t.strip(), flush=True)) as g:
    print("ready", flush=True)
    while not g.requested:
        time.sleep(0.01)
    print("saving", flush=True)
    time.sleep(float(sys.argv[1]))  # a checkpoint save
    print("saved", flush=True)
sys.exit(130)
"""


def _guarded(save_seconds):
    proc = subprocess.Popen(_python(GUARD_SCRIPT, save_seconds), stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    return proc


def test_first_ctrl_c_lets_the_loop_save_then_stop():
    proc = _guarded(0.2)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert out.splitlines() == ["Ctrl-C: saving a checkpoint at the current step, then stopping "
                                "(Ctrl-C again stops at once, without it)", "saving", "saved"]


def test_second_ctrl_c_stops_at_once():
    proc = _guarded(60)
    lines = [proc.stdout.readline().strip() for _ in range(2)]
    assert lines[1] == "saving"
    t = time.time()
    proc.send_signal(signal.SIGINT)
    proc.wait(10)
    assert proc.returncode == -signal.SIGINT and time.time() - t < 5


# ------------------------------------------------------------------ history on resume
def test_resume_drops_history_after_the_restored_step_once_atomically(tmp_path):
    # what an interrupt at 7 without a checkpoint after 5, then a buggy resume, left behind
    steps = list(range(1, 8)) + [1, 2, 3]
    (tmp_path / "losses.csv").write_text("step,total_loss,lr\n" + "".join(
        "{},{},0.1\n".format(s, 10 - s) for s in steps) + "9,")  # + a line a kill cut short
    results.write_rows(str(tmp_path / "results.csv"), [{"step": 4, "total_loss": 1}, {"step": 8, "total_loss": 2}])
    assert results.drop_after(str(tmp_path), 5) == 3 + 2 + 1 + 1
    rows = results.read_rows(str(tmp_path / "losses.csv"))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [int(r["step"]) for r in results.read_rows(str(tmp_path / "results.csv"))] == [4]
    assert sorted(os.listdir(str(tmp_path))) == ["losses.csv", "results.csv"]  # no temp left
    before = (tmp_path / "losses.csv").stat().st_mtime_ns
    assert results.drop_after(str(tmp_path), 5) == 0  # nothing to drop: nothing rewritten
    assert (tmp_path / "losses.csv").stat().st_mtime_ns == before


def test_loss_log_is_flushed_each_step(tmp_path):
    log = results.LossLog(str(tmp_path))
    log.add(1, {"Loss/total_loss": 2.0, "learning_rate": 0.1})
    assert (tmp_path / "losses.csv").read_text() == "step,total_loss,lr\n1,2,0.1\n"  # before close
    log.close()


# ------------------------------------------------------------------ --checkpoint
def test_checkpoint_newest_best_and_step(tmp_path):
    run = tmp_path / "run"
    _fake_run(run, [4, 8, 12])
    assert rundir.resolve_checkpoint(str(run)) == str(run / "ckpt-12")
    assert rundir.resolve_checkpoint(str(run), "newest") == str(run / "ckpt-12")
    assert rundir.resolve_checkpoint(str(run), "8") == str(run / "ckpt-8")
    with pytest.raises(UserError) as e:
        rundir.resolve_checkpoint(str(run), "best")
    assert "--eval-every" in e.value.fix
    _fake_run(run / "best", [8])
    assert rundir.resolve_checkpoint(str(run), "best") == str(run / "best" / "ckpt-8")
    with pytest.raises(UserError) as e:
        rundir.resolve_checkpoint(str(run), "5")
    assert "4, 8, 12" in e.value.fix
    with pytest.raises(UserError):
        rundir.resolve_checkpoint(str(run), "latest")


def test_checkpoint_dir_names_one_checkpoint(tmp_path):
    _fake_run(tmp_path, [4, 8])
    with rundir.checkpoint_dir(str(tmp_path / "ckpt-4")) as d:
        assert rundir.RunDir(d).newest_checkpoint() == str(tmp_path / "ckpt-4")
    assert not os.path.exists(d)


# ------------------------------------------------------------------ before TensorFlow
CLI_SCRIPT = r"""
import json, sys, time
t, cpu = time.time(), time.process_time()
from odcore.cli import run
from odrun.cli import build_parser
rc = run(build_parser(), sys.argv[1:])
print(json.dumps({"rc": rc, "seconds": time.time() - t, "cpu_seconds": time.process_time() - cpu,
                  "tensorflow": "tensorflow" in sys.modules}))
"""


def _cli(*args):
    proc = subprocess.run(_python(CLI_SCRIPT, *args), capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize("args, says", [
    (["train", "--data", "{tmp}/no-such-data", "--workdir", "{tmp}/run", "--steps", "3"], "data directory not found"),
    (["train", "--data", "{tmp}/empty", "--workdir", "{tmp}/run"], "missing train.record"),
    (["train", "--workdir", "{tmp}/run", "--resume"], "nothing to resume"),
    (["train", "--data", "{tmp}/data", "--workdir", "{tmp}/run", "--augment", "flop"], "flop"),
    (["export", "--workdir", "{tmp}/fake", "--out", "{tmp}/export", "--format", "onxx"], "unknown export format"),
    (["eval", "--workdir", "{tmp}/fake", "--checkpoint", "5"], "no checkpoint at step 5"),
    (["export", "--workdir", "{tmp}/fake", "--out", "{tmp}/export", "--checkpoint", "best"], "no best checkpoint"),
    (["train", "--workdir", "{tmp}/fake", "--resume", "--steps", "50"], "already at step 200, past the 50 steps"),
])
def test_bad_arguments_are_refused_before_tensorflow(tmp_path, args, says):
    _fake_run(tmp_path / "fake", [100, 200])
    (tmp_path / "fake" / "pipeline.config").write_text("")
    (tmp_path / "data").mkdir()
    (tmp_path / "empty").mkdir()  # a data folder without its records
    for name in ("train.record", "test.record", "label_map.pbtxt"):  # names only: refused before they are read
        (tmp_path / "data" / name).write_bytes(b"")
    result, err = _cli(*[a.format(tmp=tmp_path) for a in args])
    assert result["rc"] == 2 and says in err, err
    # < 1 s of work (importing TensorFlow alone is ~5 s); the wall clock allows for a loaded machine
    assert not result["tensorflow"] and result["cpu_seconds"] < 1.0 and result["seconds"] < 3.0, result


def test_steps_below_the_run_says_how_to_extend(tmp_path):
    _fake_run(tmp_path, [100, 200])
    (tmp_path / "pipeline.config").write_text("")
    _, err = _cli("train", "--workdir", tmp_path, "--resume", "--steps", "50")
    assert "fix: to train further pass a larger total: odrun train --workdir {} --steps 400 --resume".format(
        tmp_path) in err


def test_resume_of_a_finished_run_says_so_at_once(tmp_path):
    _fake_run(tmp_path, [100, 200])
    (tmp_path / "pipeline.config").write_text("")
    (tmp_path / "run.json").write_text(json.dumps({"num_steps": 200, "checkpoint_every": 100}))
    (tmp_path / "train.json").write_text(json.dumps({"start_step": 100, "end_step": 200, "num_steps": 200,
                                                     "seconds": 9.0, "checkpoints": [str(tmp_path / "ckpt-200")]}))
    proc = subprocess.run(_python(CLI_SCRIPT, "train", "--workdir", tmp_path, "--resume"), capture_output=True,
                          text=True, timeout=120, cwd=str(ROOT))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0 and not result["tensorflow"], proc.stderr
    assert "the run is already at step 200 of 200: nothing to train; to train further: odrun train --workdir " \
           "{} --steps 400 --resume".format(tmp_path) in proc.stderr
    assert "trained steps 200->200 in 0.0s" in proc.stdout


# ------------------------------------------------------------------ a quiet terminal
NOISY_VERB = r"""
import logging, sys, time, warnings
from odrun.ui import progress, quiet
with quiet.session("train", sys.argv[1]):
    with progress.StepProgress(3) as bar:
        logging.getLogger("late").addHandler(logging.StreamHandler(sys.stderr))  # TF's logger, made late
        for step in (1, 2, 3):
            warnings.warn("Keras-like UserWarning {}".format(step))
            logging.getLogger("late").warning("LATE HANDLER NOISE")
            sys.stderr.write("STDERR NOISE\n")
            bar.update(step, {"loss": 1.0})
            time.sleep(0.3)
    with progress.status("evaluating"), quiet.library_stdout():
        print("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all ] = 0.5")  # pycocotools
        time.sleep(0.3)
print("summary line")
"""


def test_a_terminal_shows_the_bar_and_summary_and_no_library_noise(tmp_path):
    term = PtyRun(_python(NOISY_VERB, tmp_path), cwd=str(ROOT)).start()
    assert term.wait(60) == 0, term.text()
    text = term.text()
    assert "summary line" in text and "3/3" in text and "evaluating" in text
    for noise in ("UserWarning", "LATE HANDLER NOISE", "STDERR NOISE", "Average Precision"):
        assert noise not in text, (noise, text[-2000:])
    log = (tmp_path / "logs" / "train.log").read_text()
    for noise in ("UserWarning", "LATE HANDLER NOISE", "STDERR NOISE", "Average Precision"):
        assert noise in log, noise


def test_predict_keeps_library_output_in_a_log():
    from odrun.ui import quiet
    assert quiet.LOG_DIR_ARG["predict"] == "out"  # TF's oneDNN lines at import land in OUT/logs/predict.log


# ------------------------------------------------------------------ detect: unreadable images
def test_detect_skips_an_unreadable_image_unless_strict(tmp_path, capsys):
    from PIL import Image
    from odrun.tasks.detect import detect
    good, bad = tmp_path / "good.jpg", tmp_path / "broken.jpg"
    Image.new("RGB", (32, 24), (200, 10, 10)).save(str(good), quality=90)
    bad.write_bytes(good.read_bytes()[:100])  # a truncated JPEG
    skipped = []
    assert detect._load_or_skip(str(good), False, skipped).shape == (24, 32, 3)
    assert detect._load_or_skip(str(bad), False, skipped) is None
    assert [s["file"] for s in skipped] == [str(bad)] and "cannot read image" in skipped[0]["reason"]
    assert "warning: skipped {}".format(bad) in capsys.readouterr().err
    with pytest.raises(UserError) as e:
        detect._readable([str(good), str(bad)], strict=True)  # before the model loads
    assert e.value.where == str(bad)
    detect._readable([str(good), str(bad)], strict=False)  # checked one by one while detecting
