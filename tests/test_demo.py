"""`odrun demo` end to end (the README's main job), kept small: 2 steps on 10 images.
The full default (300 steps, 80 images) is measured in bench/README.md (< 10 min)."""
import json
import os

import pytest

from conftest import have_module, require, run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def test_demo_runs_every_stage(tmp_path):
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")
    work = tmp_path / "demo"
    proc = run_cli("odrun", "demo", "--steps", "2", "--images", "10", "--workdir", work, "--threshold", "0",
                   "--json", check=0, timeout=900)
    summary = json.loads(proc.stdout)  # stdout is one JSON document
    assert summary == json.load(open(str(work / "demo.json")))
    assert [s["stage"] for s in summary["stages"]] == ["synth", "convert", "train", "eval", "export", "detect"]
    assert summary["steps"] == 2 and "DetectionBoxes_Precision/mAP" in summary["metrics"]
    assert os.path.exists(summary["annotated_image"]) and summary["annotated_image"].endswith(".png")
    # every picture where people look for it (issue 25): convert's report, eval's PR curve,
    # confusion matrix and results.png (showing that evaluation)
    for key, path in (("report", work / "data" / "report.png"), ("results_png", work / "run" / "results.png"),
                      ("pr_curve", work / "run" / "eval" / "pr_curve.png"),
                      ("confusion_matrix", work / "run" / "eval" / "confusion_matrix.png")):
        assert summary[key] == str(path) and path.stat().st_size > 0, key
    assert (work / "run" / "eval" / "confusion_matrix_normalized.png").exists()
    import csv
    rows = list(csv.DictReader(open(str(work / "run" / "results.csv"))))
    assert rows[-1]["step"] == "2" and rows[-1]["mAP@.5"] != ""
    assert json.load(open(str(work / "run" / "train.json")))["end_step"] == 2
    assert json.load(open(str(work / "export" / "metadata.json")))["step"] == 2
    assert json.load(open(str(work / "detections" / "detections.json")))  # threshold 0: boxes everywhere
    assert len(os.listdir(str(work / "images"))) == 20  # 10 JPEG + 10 VOC XML
    # quiet by default (#13): no TF / absl / pycocotools line on the terminal, all of them in the log
    from test_train_results import noisy
    assert noisy(proc.stdout + proc.stderr) == []
    log = (work / "logs" / "demo.log").read_text(errors="replace")
    assert "tensorflow/core/" in log or "oneDNN" in log or "UserWarning" in log  # TF's C++ lines or its warnings
    assert "Accumulating evaluation results" in log  # pycocotools, from the eval stage
    # issue #25: a rerun into the same folder with fewer steps is a new demo (was refused: "past the 2 steps")
    again = run_cli("odrun", "demo", "--steps", "1", "--images", "10", "--workdir", work, "--threshold", "0",
                    "--json", timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "an earlier demo is in {}: training a new 1-step one from scratch".format(work) in again.stderr
    assert json.load(open(str(work / "run" / "train.json")))["start_step"] == 0
    assert json.load(open(str(work / "export" / "metadata.json")))["step"] == 1


def test_demo_rejects_bad_flags(tmp_path):
    proc = run_cli("odrun", "demo", "--steps", "0", "--workdir", tmp_path, check=2)
    assert "--steps" in proc.stderr and "Traceback" not in proc.stderr
