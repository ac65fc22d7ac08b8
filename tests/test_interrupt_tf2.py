"""Issue 25 on the real TF2 OD API: ONE module-scoped run, through a real pty where a user has a
terminal, of train -> Ctrl-C -> train --resume -> a too-small --steps -> extend to more steps ->
eval/export --checkpoint STEP. Each TF start costs ~1 min here (minutes under load), so the
fixture starts TensorFlow four times and the tests only read what the stages left."""
import csv
import json
import os
import re

import pytest

from conftest import bin_path, have_module, require, run_cli
from ptyrun import PtyRun
from ptyrun import run as pty_run

STEPS, MORE, AT_LEAST = 8, 10, 3
pytestmark = [pytest.mark.tf, pytest.mark.slow]
# what TensorFlow, Keras, absl and pycocotools print when they reach the terminal
NOISE = re.compile(r"UserWarning|DeprecationWarning|oneDNN|tensorflow/core|WARNING:tensorflow|"
                   r"Average Precision +\(AP\)|Average Recall|Accumulating evaluation|DONE \(t=")


def _logged_steps(run_dir):
    path = os.path.join(str(run_dir), "losses.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get("step", "").isdigit()]


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")
    from odrun.tasks.detect import synth
    root = tmp_path_factory.mktemp("day25")
    out = {"root": root, "images": root / "images", "data": root / "data", "run": root / "run"}
    synth.generate(str(out["images"]), count=16, seed=3)
    run_cli("odrun", "convert", out["images"], "--out", out["data"], "--json", check=0)
    odrun = bin_path("odrun")

    # 1) a terminal run, Ctrl-C once after a few steps (no checkpoint would come before the end)
    term = PtyRun([odrun, "train", "--data", out["data"], "--workdir", out["run"], "--steps", STEPS,
                   "--checkpoint-every", 100, "--batch", 2]).start()
    term.wait_for(lambda _: len(_logged_steps(out["run"])) >= AT_LEAST, timeout=900)
    term.interrupt()
    out["int_rc"] = term.wait(600)
    out["int_text"] = term.text()
    out["int_logged"] = _logged_steps(out["run"])
    out["int_files"] = sorted(os.listdir(str(out["run"])))

    # 2) --resume continues at the saved step, to exactly STEPS
    out["resume"] = json.loads(run_cli("odrun", "train", "--workdir", out["run"], "--resume", "--json",
                                       check=0).stdout)
    out["resume_logged"] = _logged_steps(out["run"])
    # 3) fewer steps than the run has: refused (before TensorFlow); more: the run is extended
    out["past"] = run_cli("odrun", "train", "--workdir", out["run"], "--resume", "--steps", 4)
    out["extend"] = json.loads(run_cli("odrun", "train", "--workdir", out["run"], "--resume", "--steps", MORE,
                                       "--json", check=0).stdout)
    out["extend_logged"] = _logged_steps(out["run"])

    # 4) eval/export an older checkpoint by its step; eval on a terminal
    step = out["resume"]["start_step"]
    out["eval_rc"], out["eval_text"] = pty_run([odrun, "eval", "--workdir", out["run"], "--checkpoint", step])
    out["eval_json"] = json.loads((out["run"] / "eval.json").read_text())
    out["export"] = json.loads(run_cli("odrun", "export", "--workdir", out["run"], "--out", root / "export",
                                       "--checkpoint", step, "--json", check=0).stdout)

    # 5) detect: one truncated JPEG among four is skipped with a warning (--strict: exit 2)
    photos = root / "photos"
    photos.mkdir()
    for name in ("synth_0000.jpg", "synth_0001.jpg", "synth_0002.jpg"):
        (photos / name).write_bytes((out["images"] / name).read_bytes())
    (photos / "broken.jpg").write_bytes((out["images"] / "synth_0003.jpg").read_bytes()[:300])
    args = ["detect", "--model", root / "export", photos, "--threshold", "0.0"]
    out["strict"] = run_cli("odrun", *args + ["--out", root / "det-strict", "--strict"])
    out["strict_out"] = (root / "det-strict").exists()
    out["detect"] = run_cli("odrun", *args + ["--out", root / "det", "--json"], check=0)
    out["detect_text"] = run_cli("odrun", *args + ["--out", root / "det2"], check=0)
    return out


def test_first_ctrl_c_saves_the_current_step_and_exits_130(day):
    assert day["int_rc"] == 130, day["int_text"][-3000:]
    step = day["int_logged"][-1]
    assert AT_LEAST <= step < STEPS
    assert "ckpt-{}.index".format(step) in day["int_files"], day["int_files"]
    assert "saving a checkpoint at the current step" in day["int_text"]
    assert re.search(r"interrupted at step {}: saved checkpoint \S*ckpt-{}; continue with: odrun train "
                     r"--workdir \S+ --resume".format(step, step), day["int_text"]), day["int_text"][-2000:]


def test_resume_starts_at_the_interrupted_step_and_history_has_one_row_per_step(day):
    r = day["resume"]
    assert r["start_step"] == day["int_logged"][-1] and r["end_step"] == STEPS
    assert day["resume_logged"] == list(range(1, STEPS + 1))  # no step twice, none lost
    assert day["extend_logged"] == list(range(1, MORE + 1))
    with open(str(day["run"] / "results.csv"), newline="") as f:
        assert [int(row["step"]) for row in csv.DictReader(f)] == [r["start_step"], STEPS, MORE]


def test_fewer_steps_than_the_run_has_is_refused_with_the_way_on(day):
    p = day["past"]
    assert p.returncode == 2, p.stderr
    assert "already at step {}, past the 4 steps".format(STEPS) in p.stderr
    assert "--steps {} --resume".format(2 * STEPS) in p.stderr


def test_a_finished_run_extends_to_more_steps(day):
    e = day["extend"]
    assert (e["start_step"], e["end_step"], e["num_steps"]) == (STEPS, MORE, MORE)
    assert os.path.basename(e["checkpoints"][-1]) == "ckpt-{}".format(MORE)


def test_eval_and_export_take_the_checkpoint_asked(day):
    step = day["resume"]["start_step"]
    assert day["eval_rc"] == 0, day["eval_text"][-3000:]
    assert day["eval_json"]["step"] == step and day["eval_json"]["checkpoint"].endswith("ckpt-{}".format(step))
    assert "COCO metrics at step {}".format(step) in day["eval_text"]
    assert day["export"]["step"] == step and day["export"]["checkpoint"].endswith("ckpt-{}".format(step))


def test_terminal_shows_no_library_noise(day):
    for name in ("int_text", "eval_text"):
        assert [l for l in day[name].splitlines() if NOISE.search(l)] == [], name
    log = (day["run"] / "logs" / "eval.log").read_text(errors="replace")
    assert "Average Precision" in log  # pycocotools' block went to the log


def test_classify_ctrl_c_saves_the_step_and_resume_starts_there(tmp_path):
    """docs/classify.md: a checkpoint on Ctrl-C. MobileNetV2 x0.35 at 64 px from scratch (no
    download), as the classify demo trains; ~1 min here."""
    require(have_module("tensorflow"), "TensorFlow not installed (run scripts/setup.sh)")
    from odrun.tasks.classify import synth
    synth.generate(str(tmp_path / "images"), per_class=6, size=64, seed=3)
    data, run_dir = tmp_path / "data", tmp_path / "run"
    run_cli("odrun", "convert", tmp_path / "images", "--task", "classify", "--out", data, "--json", check=0)
    common = ["--task", "classify", "--workdir", run_dir, "--steps", 60]
    term = PtyRun([bin_path("odrun"), "train", "--data", data, "--model", "mobilenet_v2", "--image-size", 64,
                   "--set", "alpha=0.35", "--batch", 4] + common).start()
    assert term.wait_for(lambda text: re.search(r"\b([3-9]|[1-5]\d)/60\b", text), timeout=900), term.text()[-2000:]
    term.interrupt()
    rc, text = term.wait(300), term.text()
    assert rc == 130, text[-2000:]
    m = re.search(r"interrupted at step (\d+): saved checkpoint \S*ckpt-(\d+); continue with: odrun train "
                  r"--workdir \S+ --task classify --resume", text)
    assert m and m.group(1) == m.group(2), text[-2000:]
    assert (run_dir / "ckpt-{}.index".format(m.group(1))).exists()
    assert not [l for l in text.splitlines() if NOISE.search(l)]
    resumed = json.loads(run_cli("odrun", "train", "--resume", "--json", *common, check=0).stdout)
    assert resumed["start_step"] == int(m.group(1)) and resumed["end_step"] == 60
    # odrun predict on a terminal: TF's oneDNN/AVX start-up lines go to OUT/logs/predict.log
    run_cli("odrun", "export", "--workdir", run_dir, "--out", tmp_path / "model", "--json", check=0)
    rc, text = pty_run([bin_path("odrun"), "predict", "--model", tmp_path / "model", tmp_path / "images" / "red_circles",
                        "--out", tmp_path / "preds", "--top-k", 2])
    assert rc == 0 and "6 images ->" in text, text[-2000:]
    assert [l for l in text.splitlines() if NOISE.search(l) or "AVX" in l] == []
    assert (tmp_path / "preds" / "logs" / "predict.log").exists()


def test_detect_skips_an_unreadable_image_and_names_its_runtime(day):
    s = day["strict"]
    assert s.returncode == 2 and "broken.jpg" in s.stderr and not day["strict_out"], s.stderr
    summary = json.loads(day["detect"].stdout)
    assert summary["images"] == 3 and summary["runtime"] == "saved_model"
    assert [os.path.basename(x["file"]) for x in summary["skipped"]] == ["broken.jpg"]
    assert re.search(r"warning: skipped \S*broken\.jpg: cannot read image", day["detect"].stderr)
    images = json.loads((day["root"] / "det" / "images.json").read_text())
    assert sorted(os.path.basename(i["file_name"]) for i in images) == ["synth_0000.jpg", "synth_0001.jpg",
                                                                       "synth_0002.jpg"]
    text = day["detect_text"].stdout
    assert "3 images" in text and "saved_model runtime" in text, text
    assert "skipped 1 unreadable image(s): broken.jpg" in text
