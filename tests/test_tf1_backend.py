"""The OD API's TF1 code path (`odrun ... --api tf1`, odrun.tasks.detect.backends.tf1) under TF 2.15 through
odrun.tasks.detect.backends.compat.tf1_on_tf2, end to end with the real CLI on a small synthetic dataset:
odrun convert -> odrun train --api tf1, kill -9 after its first checkpoint -> odrun train --resume
(to exactly 5 steps) ->
odrun eval -> odrun export (frozen_inference_graph.pb + SavedModel) -> odrun detect; then one
Python process loads the frozen graph with load_detector (mixed image sizes) and builds the
Faster R-CNN Inception V2 template with model_builder in TF1 mode. Each TF1 step runs in its
own process (the layer switches the process to graph mode, which must not leak into the TF2
tests). The tests assert on what those runs wrote.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KILLED_STEPS, STEPS_TOTAL, CKPT_EVERY, SIZE, BATCH, N_IMAGES = 50, 5, 2, 128, 2, 8
pytestmark = [pytest.mark.tf, pytest.mark.slow]


# --------------------------------------------------------------------------- driver (subprocess)
def driver(work):
    """Frozen-graph detector on mixed sizes + the Faster R-CNN template; writes work/driver.json."""
    sys.path.insert(0, ROOT)
    import numpy as np
    from odrun.tasks.detect.backends import tf1

    res = {"fixes": tf1.prepare()}
    run_dir = os.path.join(work, "run")
    state = tf1._tf().train.get_checkpoint_state(run_dir)
    res["ckpt_steps"] = {os.path.basename(p): tf1.checkpoint_step(p) for p in state.all_model_checkpoint_paths}

    detect = tf1.load_detector(os.path.join(work, "export"))
    rng = np.random.RandomState(1)
    images = [rng.randint(0, 255, (SIZE, SIZE, 3)).astype("uint8") for _ in range(3)]
    images.append(rng.randint(0, 255, (90, 150, 3)).astype("uint8"))  # a different shape
    res["detections"] = [{k: np.asarray(v).tolist() for k, v in d.items()} for d in detect(images)]

    # The seeds' model: the Faster R-CNN Inception V2 template builds in TF1 mode.
    import tensorflow.compat.v1 as tf
    from object_detection.builders import model_builder
    from odrun.tasks.detect.config import pipeline as pc
    config = pc.load(pc.template_path("tf1", "faster_rcnn_inception_v2"))
    pc.fill(config, num_classes=2)
    model = model_builder.build(config.model, is_training=False)
    with tf.Graph().as_default():
        image = tf.placeholder(tf.float32, [1, 200, 300, 3])
        prep, shapes = model.preprocess(image)
        dets = model.postprocess(model.predict(prep, shapes), shapes)
        res["frcnn"] = {"class": type(model).__name__,
                        "extractor": type(model._feature_extractor).__name__,
                        "outputs": sorted(dets), "variables": len(tf.global_variables())}
    with open(os.path.join(work, "driver.json"), "w") as fh:
        json.dump(res, fh, indent=1, default=str)


# --------------------------------------------------------------------------- the run
def _require_tf():
    from conftest import have_module, require
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")


def _odrun(*args):
    from conftest import run_cli
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("ODRUN_API", None)
    proc = run_cli("odrun", *args, timeout=600, env=env)
    assert proc.returncode == 0, "odrun {} -> exit {}\n{}".format(
        " ".join(map(str, args)), proc.returncode, (proc.stdout + proc.stderr)[-6000:])
    return json.loads(proc.stdout) if "--json" in args else proc


def _train_and_kill(args, run_dir, timeout=600):
    """Start `odrun train`, SIGKILL it as soon as model.ckpt-CKPT_EVERY.index exists."""
    from conftest import bin_path
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([bin_path("odrun")] + [str(a) for a in args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = os.path.join(run_dir, "model.ckpt-{}.index".format(CKPT_EVERY))
    deadline = time.time() + timeout
    try:
        while not os.path.exists(marker):
            assert proc.poll() is None, "odrun train exited ({}) before its first checkpoint".format(proc.returncode)
            assert time.time() < deadline, "no checkpoint after {} s".format(timeout)
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return {"returncode": proc.returncode}


@pytest.fixture(scope="module")
def tf1_run(tmp_path_factory):
    _require_tf()
    from odrun.tasks.detect import synth
    work = str(tmp_path_factory.mktemp("tf1"))
    src, data, run_dir = (os.path.join(work, d) for d in ("src", "data", "run"))
    export_dir, det_dir = os.path.join(work, "export"), os.path.join(work, "det")
    synth.generate(src, count=N_IMAGES, width=SIZE, height=SIZE, seed=3, classes=("circle", "square"))
    res = {"work": work}
    res["convert"] = _odrun("convert", src, "--out", data, "--json", "--workers", "1")
    # Fault test: a run to KILLED_STEPS is kill -9'd once its first periodic checkpoint exists ...
    res["killed"] = _train_and_kill(["train", "--api", "tf1", "--data", data, "--workdir", run_dir,
                                     "--model", "ssd_mobilenet_v2", "--steps", KILLED_STEPS, "--batch", BATCH,
                                     "--image-size", SIZE, "--checkpoint-every", CKPT_EVERY,
                                     "--set", "model.ssd.feature_extractor.depth_multiplier=0.25"], run_dir)
    res["files1"] = sorted(os.listdir(run_dir))
    # ... then --resume trains to exactly STEPS_TOTAL from the newest checkpoint.
    res["train2"] = _odrun("train", "--api", "tf1", "--workdir", run_dir, "--resume",
                           "--steps", STEPS_TOTAL, "--checkpoint-every", CKPT_EVERY, "--json")
    res["eval"] = _odrun("eval", "--api", "tf1", "--workdir", run_dir, "--json")
    res["export"] = _odrun("export", "--api", "tf1", "--workdir", run_dir, "--out", export_dir, "--json")
    res["detect"] = _odrun("detect", "--api", "tf1", "--model", export_dir, src, "--out", det_dir,
                           "--threshold", "0.0", "--json")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), work], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert proc.returncode == 0, "tf1 driver failed:\n" + proc.stdout.decode("utf-8", "replace")[-6000:]
    with open(os.path.join(work, "driver.json")) as fh:
        res.update(json.load(fh))
    return res


# --------------------------------------------------------------------------- tests
def test_compat_layer_applied(tf1_run):
    fixes = " | ".join(tf1_run["fixes"])
    for needle in ("disable_v2_behavior", "contrib", "nets", "numpy", "control_flow_ops", "tf_keras"):
        assert needle in fixes


def test_killed_run_left_a_checkpoint(tf1_run):
    assert tf1_run["killed"]["returncode"] == -signal.SIGKILL
    files = tf1_run["files1"]
    assert "checkpoint" in files and "pipeline.config" in files
    assert "model.ckpt-{}.index".format(CKPT_EVERY) in files
    assert any(name.startswith("events.out.tfevents") for name in files), "no TensorBoard events"


def test_resume_after_kill_reaches_exact_total(tf1_run):
    second = tf1_run["train2"]
    assert second["api"] == "tf1" and second["arch"] == "ssd"
    assert second["start_step"] in (0, CKPT_EVERY, 2 * CKPT_EVERY), second  # newest checkpoint at the kill
    assert second["end_step"] == STEPS_TOTAL
    names = [os.path.basename(c) for c in second["checkpoints"]]
    assert names[-1] == "model.ckpt-{}".format(STEPS_TOTAL), names
    assert all(int(n.rsplit("-", 1)[1]) > second["start_step"] for n in names), names
    # nothing corrupted: every checkpoint the state file lists loads, and its stored step matches its name
    steps = tf1_run["ckpt_steps"]
    assert steps["model.ckpt-{}".format(STEPS_TOTAL)] == STEPS_TOTAL
    assert all(int(name.rsplit("-", 1)[1]) == step for name, step in steps.items())
    losses = second["losses"]
    for key in ("Loss/total_loss", "Loss/localization_loss", "Loss/classification_loss"):
        assert key in losses and losses[key] == losses[key] and losses[key] >= 0, losses


def test_eval_coco_metrics(tf1_run):
    result = tf1_run["eval"]
    assert result["step"] == STEPS_TOTAL
    metrics = result["metrics"]
    for key in ("DetectionBoxes_Precision/mAP", "DetectionBoxes_Precision/mAP@.50IOU",
                "DetectionBoxes_Recall/AR@100"):
        assert key in metrics and -1.0 <= metrics[key] <= 1.0, key
    assert os.path.isfile(os.path.join(tf1_run["work"], "run", "eval.json"))


def test_export_frozen_graph_and_saved_model(tf1_run):
    meta = tf1_run["export"]
    export_dir = os.path.join(tf1_run["work"], "export")
    assert meta["api"] == "tf1" and meta["step"] == STEPS_TOTAL
    assert meta["signature"]["inputs"]["image_tensor"] == {"dtype": "uint8", "shape": [None, None, None, 3]}
    for name in ("frozen_inference_graph.pb", "pipeline.config", "label_map.pbtxt"):
        assert name in meta["files"], name
    for name in ("frozen_inference_graph.pb", "pipeline.config", "label_map.pbtxt", "metadata.json"):
        assert os.path.isfile(os.path.join(export_dir, name)), name
    assert os.path.getsize(os.path.join(export_dir, "frozen_inference_graph.pb")) > 100000
    assert os.path.isfile(os.path.join(export_dir, "saved_model", "saved_model.pb"))
    leftovers = [n for n in os.listdir(tf1_run["work"]) if n.startswith(".export") or n.endswith(".partial")]
    assert not leftovers, "temp export dir left behind: {}".format(leftovers)


def test_detect_cli_on_frozen_graph(tf1_run):
    det_dir = os.path.join(tf1_run["work"], "det")
    with open(os.path.join(det_dir, "detections.json")) as fh:
        dets = json.load(fh)
    assert dets, "no detections at threshold 0"
    assert {d["category_id"] for d in dets} <= {1, 2}
    assert all(len(d["bbox"]) == 4 and 0.0 <= d["score"] <= 1.0 for d in dets)
    assert len(glob.glob(os.path.join(det_dir, "*.png"))) == N_IMAGES


def test_frozen_graph_detector_results(tf1_run):
    dets = tf1_run["detections"]
    assert len(dets) == 4  # three 128x128 in one batch, one 90x150 alone
    for d in dets:
        n = len(d["scores"])
        assert 0 < n <= 100 and len(d["boxes"]) == n and len(d["classes"]) == n
        assert all(len(b) == 4 and 0.0 <= min(b) and max(b) <= 1.0 for b in d["boxes"])
        assert all(b[0] <= b[2] and b[1] <= b[3] for b in d["boxes"])
        assert set(d["classes"]) <= {1, 2}
        assert d["scores"] == sorted(d["scores"], reverse=True)
        assert all(0.0 <= s <= 1.0 for s in d["scores"])


def test_faster_rcnn_inception_v2_template_builds_in_tf1_mode(tf1_run):
    frcnn = tf1_run["frcnn"]
    assert frcnn["class"] == "FasterRCNNMetaArch"
    assert frcnn["extractor"] == "FasterRCNNInceptionV2FeatureExtractor"
    assert {"detection_boxes", "detection_scores", "detection_classes", "num_detections"} <= set(frcnn["outputs"])
    assert frcnn["variables"] > 100


def test_guards_name_the_fix(tmp_path):
    """Process already in TF2 mode -> clear UserError; use_moving_average (contrib-only) -> caught
    before any graph is built."""
    _require_tf()
    code = r"""
import sys, json
sys.path.insert(0, %r)
from odcore.errors import UserError
from odrun.tasks.detect.backends import tf1
out = {}
try:
    tf1._check_config(sys.argv[1])
except UserError as exc:
    out["ema"] = exc.render()
import object_detection.builders.model_builder  # TF2 mode: registers the Keras extractors
try:
    tf1.prepare()
except UserError as exc:
    out["mode"] = exc.render()
print(json.dumps(out))
""" % ROOT
    config = os.path.join(ROOT, "odrun", "data", "templates", "tf1", "ssd_mobilenet_v2.config")
    bad = tmp_path / "ema.config"
    bad.write_text(open(config).read().replace("use_moving_average: false", "use_moving_average: true"))
    proc = subprocess.run([sys.executable, "-c", code, str(bad)], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert "train_config.optimizer.use_moving_average" in out["ema"]
    assert "use_moving_average=false" in out["ema"]
    assert "TF2 mode" in out["mode"] and "fix:" in out["mode"]


def test_first_ctrl_c_saves_the_current_step(tf1_run, tmp_path):
    """Issue #25, TF1 path: the first Ctrl-C (through a pty, as a user presses it) stops after the
    step under way, saves model.ckpt-STEP and says so; exit 130 (it used to save nothing)."""
    import csv
    import re
    from conftest import bin_path
    from ptyrun import PtyRun
    run_dir = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("ODRUN_API", None)
    term = PtyRun([bin_path("odrun"), "train", "--api", "tf1", "--data", os.path.join(tf1_run["work"], "data"),
                   "--workdir", run_dir, "--model", "ssd_mobilenet_v2", "--steps", 200, "--batch", BATCH,
                   "--image-size", SIZE, "--checkpoint-every", 100,
                   "--set", "model.ssd.feature_extractor.depth_multiplier=0.25"], env=env).start()

    def logged(_):
        path = run_dir / "losses.csv"
        return path.exists() and len(path.read_text().splitlines()) >= 4  # header + 3 steps

    assert term.wait_for(logged, timeout=600), term.text()[-3000:]
    term.interrupt()
    rc = term.wait(600)
    text = term.text()
    assert rc == 130, text[-3000:]
    with open(str(run_dir / "losses.csv"), newline="") as f:
        step = [int(r["step"]) for r in csv.DictReader(f)][-1]
    assert 3 <= step < 100 and (run_dir / "model.ckpt-{}.index".format(step)).exists(), os.listdir(str(run_dir))
    assert "saving a checkpoint at the current step" in text
    assert re.search(r"interrupted at step {}: saved checkpoint \S*model\.ckpt-{}; continue with".format(step, step),
                     text), text[-2000:]


if __name__ == "__main__":
    driver(sys.argv[1])
