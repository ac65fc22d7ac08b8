"""Mask R-CNN end to end on the real OD API (issue 16): the small TF2 template trains 2 steps on
HAND-MADE synthetic shapes with exact masks (odrun/tasks/detect/masks/synth.py), `odrun eval` reports
coco_mask_metrics next to the box metrics, `odrun export` returns detection_masks, and `odrun detect`
writes COCO RLE masks that decode to the image size (plus one PNG per instance).
The TF1 path (mask_rcnn_inception_v2_coco under odrun's compat layer) builds, trains 1 step and
exports frozen_inference_graph.pb with detection_masks, in its own process."""
import json
import os

import numpy as np
import pytest

from conftest import have_module, require, run_cli

SIZE = 128
pytestmark = [pytest.mark.tf, pytest.mark.slow]  # ~3 min of CPU (ResNet-50 Mask R-CNN build/trace/export, TF1 graph): 7 min under load


@pytest.fixture(scope="module")
def segment_data(tmp_path_factory):
    require(have_module("tensorflow") and have_module("object_detection") and have_module("pycocotools"),
            "TensorFlow + OD API + pycocotools not installed (run scripts/setup.sh)")
    from odrun.convert import convert
    from odrun.tasks.detect.masks import synth
    base = tmp_path_factory.mktemp("segment_model")
    path, _ = synth.generate(str(base / "src"), count=6, width=SIZE, height=SIZE, seed=2)
    convert(path, str(base / "data"), split=0.67, progress=False, workers=1)
    return base


@pytest.fixture(scope="module")
def segment_run(segment_data):
    base = segment_data
    r = run_cli("odrun", "train", "--task", "segment", "--data", base / "data", "--workdir", base / "run",
                "--steps", 2, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli("odrun", "eval", "--workdir", base / "run", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    metrics = json.loads(r.stdout)["metrics"]
    r = run_cli("odrun", "export", "--workdir", base / "run", "--out", base / "export", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    meta = json.loads(r.stdout)
    r = run_cli("odrun", "detect", "--model", base / "export", base / "src", "--out", base / "det",
                "--threshold", "0", "--mask-png", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    return {"base": base, "metrics": metrics, "meta": meta}


def test_train_eval_reports_mask_metrics(segment_run):
    run = segment_run["base"] / "run"
    train = json.loads((run / "train.json").read_text())
    assert train["end_step"] == 2 and "Loss/BoxClassifierLoss/mask_loss" in train["losses"]
    m = segment_run["metrics"]
    for key in ("DetectionBoxes_Precision/mAP", "DetectionMasks_Precision/mAP", "DetectionMasks_Precision/mAP@.50IOU",
                "DetectionMasks_Recall/AR@100"):
        assert key in m and -1.0 <= m[key] <= 1.0, key
    # eval's losses are training's (issue 25: the OD API's eval loop scores the mask head on the
    # model's detections, 0.0 when it has none, against 2.18 in training); its own numbers stay
    # under LossOnDetections/
    # Both second-stage losses are means over the proposals matched to a ground-truth box: a 2-step
    # model whose proposals overlap no object on the 2 eval images has none, and then both are 0.0
    # (seen once in CI). With matched proposals (a box loss) the mask loss is there too.
    mask = "BoxClassifierLoss/mask_loss"
    assert "Loss/" + mask in m and "LossOnDetections/" + mask in m
    if m["Loss/BoxClassifierLoss/localization_loss"] > 0:
        assert m["Loss/" + mask] > 0.1, m  # a mask loss of a 2-step model with matched proposals is not 0
    # and the pictures: PR curve, confusion matrices, results.png with the evaluation in results.csv
    for rel in ("eval/pr_curve.png", "eval/confusion_matrix.png", "eval/confusion_matrix_normalized.png",
                "results.png"):
        assert (run / rel).stat().st_size > 0, rel
    assert (run / "results.csv").read_text().splitlines()[-1].startswith("2,")


def test_export_returns_detection_masks(segment_run):
    meta = segment_run["meta"]
    assert meta["instance_masks"] is True and "detection_masks" in meta["signature"]["outputs"]


def test_detect_writes_rle_masks_of_image_size(segment_run):
    from pycocotools import mask as mask_api
    det = segment_run["base"] / "det"
    dets = json.loads((det / "detections.json").read_text())
    images = {im["id"]: im for im in json.loads((det / "images.json").read_text())}
    assert dets, "threshold 0 keeps every detection"
    for d in dets:
        seg = d["segmentation"]
        im = images[d["image_id"]]
        mask = mask_api.decode({"size": seg["size"], "counts": seg["counts"].encode()})
        assert mask.shape == (im["height"], im["width"]) == (SIZE, SIZE)
        assert set(np.unique(mask)) <= {0, 1}
    pngs = sorted(os.listdir(str(det / "masks")))
    assert len(pngs) == len(dets)
    from PIL import Image
    first = np.asarray(Image.open(str(det / "masks" / pngs[0])))
    assert first.shape == (SIZE, SIZE) and set(np.unique(first)) <= {0, 255}
    assert (det / "shapes_0000.png").exists()


@pytest.mark.long  # ~2 min (TF1 Mask R-CNN graph build + export under the compat layer)
def test_tf1_mask_rcnn_builds_and_exports_masks(segment_data, tmp_path):
    """TF1 path under odrun/compat: mask_rcnn_inception_v2_coco (small resizer) trains 1 step and
    exports; the frozen graph has detection_masks and the TF1 detector returns them."""
    base = segment_data
    run = tmp_path / "run1"
    r = run_cli("odrun", "train", "--api", "tf1", "--task", "segment", "--data", base / "data", "--workdir", run,
                "--steps", 1,
                "--set", "model.image_resizer.keep_aspect_ratio_resizer.min_dimension=128",
                "--set", "model.image_resizer.keep_aspect_ratio_resizer.max_dimension=128",
                "--set", "model.first_stage_max_proposals=16", "--set", "model.second_stage_batch_size=16", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli("odrun", "export", "--api", "tf1", "--workdir", run, "--out", tmp_path / "export1", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    meta = json.loads(r.stdout)
    assert meta["instance_masks"] is True and "detection_masks" in meta["signature"]["outputs"]
    from tensorflow.core.framework import graph_pb2
    graph = graph_pb2.GraphDef()
    graph.ParseFromString((tmp_path / "export1" / "frozen_inference_graph.pb").read_bytes())
    assert "detection_masks" in {n.name for n in graph.node}
    r = run_cli("odrun", "detect", "--api", "tf1", "--model", tmp_path / "export1", base / "src" / "shapes_0000.jpg",
                "--out", tmp_path / "det1", "--threshold", "0", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    dets = json.loads((tmp_path / "det1" / "detections.json").read_text())
    assert dets and all(d["segmentation"]["size"] == [SIZE, SIZE] for d in dets)
