"""End to end on the real TF2 OD API (TF 2.15 CPU): ONE run of the CLI
synth -> convert -> train (killed with SIGKILL after its first checkpoint) -> train --resume
-> eval -> export -> detect, then many assertions on what each stage left on disk. The run is the
session's shared SSD TF2 run (tests/_shared.py), whose export test_export_serve checks too."""
import csv
import glob
import json
import os
import signal

import pytest

from _shared import SSD_EVERY, SSD_STEPS
from conftest import run_cli

STEPS, EVERY = SSD_STEPS, SSD_EVERY
pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(ssd_tf2):
    """tests/_shared.py's SSD run: synth -> convert -> train (SIGKILLed as soon as the first
    checkpoint is listed) -> train --resume to exactly STEPS -> eval -> export -> detect."""
    return ssd_tf2


def test_kill_left_a_usable_run_dir(run):
    assert run["killed_rc"] == -signal.SIGKILL, run["killed_err"][-2000:]
    assert "pipeline.config" in run["after_kill"]
    assert 'model_checkpoint_path: "ckpt-{}"'.format(EVERY) in run["ckpt_file_after_kill"] or \
        'model_checkpoint_path: "ckpt-{}"'.format(2 * EVERY) in run["ckpt_file_after_kill"]


def test_resume_reaches_exactly_n_steps(run):
    t = run["train"]
    assert t["start_step"] in (EVERY, 2 * EVERY)  # continued from the checkpoint, not from 0
    assert t["end_step"] == STEPS and t["num_steps"] == STEPS
    # the resumed run kept the interrupted run's --checkpoint-every (run.json)
    expected = ["ckpt-{}".format(s) for s in range(t["start_step"] + EVERY, STEPS + 1, EVERY)]
    assert [os.path.basename(c) for c in t["checkpoints"]] == expected
    assert t["losses"]["Loss/total_loss"] > 0 and "learning_rate" in t["losses"]


def test_checkpoints_intact_and_step_exact(run):
    import tensorflow as tf
    run_dir = str(run["run"])
    state = tf.train.get_checkpoint_state(run_dir)
    assert os.path.basename(state.model_checkpoint_path) == "ckpt-{}".format(STEPS)
    for prefix in state.all_model_checkpoint_paths:
        step = int(prefix.rsplit("-", 1)[1])
        assert step % EVERY == 0 or step == STEPS
        # every listed checkpoint is complete and readable, and holds the step its name says
        assert tf.train.load_variable(prefix, "step/.ATTRIBUTES/VARIABLE_VALUE") == step
    assert not glob.glob(os.path.join(run_dir, "*temp*"))


def test_tensorboard_events_and_config(run):
    assert glob.glob(str(run["run"] / "train" / "events.out.tfevents.*"))
    from odrun.tasks.detect.config import pipeline as pc
    config = pc.load(str(run["run"] / "pipeline.config"))
    assert config.model.ssd.num_classes == 3 and config.train_config.batch_size == 4
    assert config.train_config.num_steps == STEPS


def test_eval_json(run):
    printed = json.loads(run["eval_stdout"])  # stdout is pure JSON (pycocotools went to stderr)
    saved = json.load(open(str(run["run"] / "eval.json")))
    assert printed == saved
    assert saved["step"] == STEPS and saved["checkpoint"].endswith("ckpt-{}".format(STEPS))
    m = saved["metrics"]
    for key in ("DetectionBoxes_Precision/mAP", "DetectionBoxes_Precision/mAP@.50IOU",
                "DetectionBoxes_Recall/AR@100", "Loss/total_loss"):
        assert key in m
    for key, value in m.items():
        if key.startswith("Detection"):
            assert value == -1.0 or 0.0 <= value <= 1.0, (key, value)
    assert m["Loss/total_loss"] > 0
    # odrun eval's pictures (issue 25): PR curve, confusion matrices, results.png showing it
    for key in ("pr_curve", "confusion_matrix", "confusion_matrix_normalized", "results_png"):
        assert os.path.getsize(saved["files"][key]) > 0, key
    import csv
    with open(str(run["run"] / "results.csv"), newline="") as f:
        last = list(csv.DictReader(f))[-1]
    assert int(last["step"]) == STEPS and last["mAP@.5:.95"] != "" and last["total_loss"] != ""
    assert abs(float(last["mAP@.5:.95"]) - max(m["DetectionBoxes_Precision/mAP"], 0.0)) < 0.02  # the same COCOeval


def test_export_metadata_and_signature(run):
    meta = json.load(open(str(run["export"] / "metadata.json")))
    assert meta == run["export_meta"]
    assert meta["step"] == STEPS and meta["api"] == "tf2" and meta["arch"] == "ssd"
    assert [c["name"] for c in meta["classes"]] == ["circle", "square", "triangle"]
    assert meta["tf_version"].startswith("2.")
    spec = meta["signature"]["inputs"]["input_tensor"]
    assert spec == {"dtype": "float32", "shape": [None, None, None, 3]}  # batch dimension free
    export = run["root"] / "export"
    for name in ("saved_model/saved_model.pb", "label_map.pbtxt", "pipeline.config", "checkpoint"):
        assert (export / name).exists(), name
    assert not (run["root"] / "export.partial").exists()


def test_detections_coco_format(run):
    det = run["det"]
    summary = run["detect"]
    assert summary["images"] == 11 and summary["batches"] == 3  # 11 images in batches of 4
    results = json.load(open(str(det / "detections.json")))
    images = json.load(open(str(det / "images.json")))
    assert len(images) == 11 and len(results) == summary["detections"] > 0
    ids = {im["id"] for im in images}
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"}
        assert r["image_id"] in ids and r["category_id"] in (1, 2, 3) and 0.0 <= r["score"] <= 1.0
        x, y, w, h = r["bbox"]
        assert w >= 0 and h >= 0 and -1 <= x <= 160 and -1 <= y <= 160
    # pycocotools accepts the file as detection results for these images
    from pycocotools.coco import COCO
    gt = COCO()
    gt.dataset = {"images": [{"id": i} for i in ids], "annotations": [],
                  "categories": [{"id": i} for i in (1, 2, 3)]}
    gt.createIndex()
    assert len(gt.loadRes(str(det / "detections.json")).getAnnIds()) == len(results)
    with open(str(det / "detections.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(results)
    assert set(rows[0]) == {"filename", "width", "height", "class", "class_id", "score", "xmin", "ymin", "xmax", "ymax"}
    assert {r["class"] for r in rows} <= {"circle", "square", "triangle"}


def test_annotated_images_differ_from_input(run):
    import numpy as np
    from PIL import Image
    images = json.load(open(str(run["det"] / "images.json")))
    for im in images[:3]:
        annotated = np.asarray(Image.open(im["annotated"]).convert("RGB")).astype(int)
        from odrun.tasks.detect import draw
        original = draw.upscaled(np.asarray(Image.open(im["file_name"]).convert("RGB"))).astype(int)
        assert annotated.shape == original.shape and min(annotated.shape[:2]) >= draw.MIN_SIDE  # drawn enlarged
        assert (np.abs(annotated - original).sum(axis=2) > 60).mean() > 0.01  # boxes + labels drawn


def test_eval_and_detect_errors_are_clear(run, tmp_path):
    proc = run_cli("odrun", "eval", "--workdir", tmp_path, check=2)
    assert "no pipeline.config" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("odrun", "detect", "--model", run["export"], str(tmp_path / "*.jpg"), "--out", tmp_path / "o",
                   check=2)
    assert "no image matches" in proc.stderr
