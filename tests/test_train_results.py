"""What a user sees and what a run leaves (#13, #18 "Silences"): ONE module-scoped
`odrun train --eval-every` run with its output captured through a pipe, then assertions on the
periodic progress lines, the quiet terminal, RUN/logs, results.csv, best/, the PNGs and JSONs.
Plus cheap in-process checks of odrun.ui.quiet and of convert without TensorFlow."""
import csv
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import bin_path, have_module, require, run_cli

STEPS, EVERY = 6, 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lines TensorFlow's C++ logging, its Python logger, absl, warnings and pycocotools print.
NOISE = [r"tensorflow/core/", r"oneDNN", r"^[IWEF]\d{4} \d\d:", r"WARNING:tensorflow", r"\babsl\b",
         r"(Deprecation|User|Future)Warning", r"Accumulating evaluation results", r"index created!",
         r"DONE \(t=", r"Average Precision +\(AP\)"]


def noisy(text):
    return [line for line in text.splitlines() if any(re.search(p, line) for p in NOISE)]


@pytest.fixture(scope="module")
def piped(tmp_path_factory):
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")
    from odrun.tasks.detect import synth
    root = tmp_path_factory.mktemp("evalrun")
    images, data, run = root / "images", root / "data", root / "run"
    synth.generate(str(images), count=16, seed=3)
    run_cli("odrun", "convert", images, "--out", data, "--json", check=0)
    env = dict(os.environ, ODRUN_PROGRESS_EVERY="2")
    env.pop("ODRUN_PROGRESS", None)
    proc = subprocess.run([bin_path("odrun"), "train", "--data", str(data), "--workdir", str(run),
                           "--steps", str(STEPS), "--batch", "2", "--eval-every", str(EVERY)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=900)
    return {"root": root, "data": data, "run": run, "images": images, "rc": proc.returncode,
            "out": proc.stdout.decode(errors="replace"), "err": proc.stderr.decode(errors="replace")}


@pytest.mark.tf  # the module's one training (piped)
def test_piped_train_prints_periodic_progress_lines(piped):
    assert piped["rc"] == 0, piped["err"][-3000:]
    lines = piped["out"].splitlines()
    steps = [l for l in lines if re.match(r"^train \d+/{} steps  loss [\d.]+  ".format(STEPS), l)]
    assert len(steps) >= 2, piped["out"]
    assert steps[-1].startswith("train {0}/{0} steps".format(STEPS)) and "ETA" in steps[-1]
    # the model build before the first step is not a silence either (ticks every 2 s)
    assert any("building the model" in l for l in lines), piped["out"]
    # issue #25: the evaluation between two steps says so (it froze the bar for 22 s)
    assert "train: evaluating step {} ...".format(EVERY) in lines, piped["out"]
    assert any(re.match(r"^train: evaluating step {}: done in [\d.]+s$".format(EVERY), l) for l in lines)
    assert [l for l in lines if l.startswith("eval at step ")][:2] == [
        l for l in lines if re.match(r"^eval at step ({}|{}): mAP@\.5 [\d.]+  mAP@\.5:\.95 [\d.]+".format(
            EVERY, STEPS), l)][:2]


@pytest.mark.tf  # the module's one training (piped)
def test_terminal_is_quiet_and_logs_keep_the_noise(piped):
    assert noisy(piped["out"] + piped["err"]) == []
    log = (piped["run"] / "logs" / "train.log").read_text(errors="replace")
    # TF's C++ start-up lines (fd 2) are there when TF prints them (not in every environment);
    # the Python warnings always are
    assert re.search(r"tensorflow/core/|oneDNN|py\.warnings|UserWarning", log), log[:2000]
    assert "Accumulating evaluation results" in log  # pycocotools' prints during --eval-every


@pytest.mark.tf  # the module's one training (piped)
def test_results_csv_has_one_row_per_evaluation_and_best_is_its_max(piped):
    with open(str(piped["run"] / "results.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(EVERY, STEPS + 1, EVERY))
    for r in rows:
        for col in ("total_loss", "lr", "mAP@.5", "mAP@.5:.95", "AP/circle", "AP/square", "AP/triangle"):
            assert r[col] != "", (col, r)
        assert 0.0 <= float(r["mAP@.5:.95"]) <= float(r["mAP@.5"]) <= 1.0
    best = json.loads((piped["run"] / "best" / "best.json").read_text())
    top = max(rows, key=lambda r: float(r["mAP@.5:.95"]))
    assert best["mAP@.5:.95"] == pytest.approx(float(top["mAP@.5:.95"]), abs=1e-5)
    assert best["step"] == int(top["step"])
    assert (piped["run"] / "best" / "ckpt-{}.index".format(best["step"])).exists()
    assert 'model_checkpoint_path: "ckpt-{}"'.format(best["step"]) in (piped["run"] / "best" / "checkpoint").read_text()
    summary = json.loads((piped["run"] / "train.json").read_text())
    assert [e["step"] for e in summary["results"]["evaluations"]] == [int(r["step"]) for r in rows]


@pytest.mark.tf  # the module's one training (piped)
def test_plots_are_valid_images_of_sensible_size(piped):
    from PIL import Image
    for rel in ("results.png", "eval/pr_curve.png", "eval/confusion_matrix.png"):
        path = str(piped["run"] / rel)
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG" and 300 <= im.size[0] <= 2000 and 300 <= im.size[1] <= 2000, (rel, im.size)
            assert len(set(im.convert("L").getdata())) > 20  # drawn, not blank


@pytest.mark.tf  # the module's one training (piped)
def test_confusion_matrix_counts_every_test_box(piped):
    cm = json.loads((piped["run"] / "eval" / "confusion_matrix.json").read_text())
    summary = json.loads((piped["data"] / "summary.json").read_text())
    names = [c["name"] for c in summary["classes"]]
    assert cm["labels"] == names + ["background"]
    m = cm["matrix"]
    assert len(m) == len(names) + 1 and all(len(r) == len(names) + 1 for r in m)
    for i, c in enumerate(summary["classes"]):  # rows = true: each true box is matched once or missed once
        assert sum(m[i]) == c["test_boxes"], (c, m)
    assert (piped["run"] / "eval" / "confusion_matrix_normalized.png").exists()
    pr = json.loads((piped["run"] / "eval" / "pr_curve.json").read_text())
    assert len(pr["recall"]) == 101 and set(pr["precision"]) <= set(names)


@pytest.mark.tf  # the module's one training (piped)
def test_eval_every_writes_map_events_for_tensorboard(piped):
    """TensorBoard's mAP curve: one scalar per evaluation under RUN/eval, the OD API's names."""
    import tensorflow as tf
    found = {}
    for path in (piped["run"] / "eval").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                found.setdefault(v.tag, []).append((event.step, float(tf.make_ndarray(v.tensor))))
    with open(str(piped["run"] / "results.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(found["DetectionBoxes_Precision/mAP"]) == [
        (int(r["step"]), pytest.approx(float(r["mAP@.5:.95"]), abs=1e-4)) for r in rows]
    assert [s for s, _ in sorted(found["DetectionBoxes_Precision/mAP@.50IOU"])] == [EVERY, STEPS]
    assert len(found["DetectionBoxes_PerformanceByCategory/mAP/circle"]) == 2


@pytest.mark.slow
@pytest.mark.long  # ~1.5 min (a SavedModel export + its load)
@pytest.mark.tf
def test_export_and_detect_show_progress_before_their_result(piped):
    env = dict(os.environ, ODRUN_PROGRESS_EVERY="2")
    export = subprocess.run([bin_path("odrun"), "export", "--workdir", str(piped["run"]),
                             "--out", str(piped["root"] / "export")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, timeout=900).stdout.decode(errors="replace")
    lines = export.splitlines()
    first = [i for i, l in enumerate(lines) if l.startswith("writing the export")]
    result = [i for i, l in enumerate(lines) if l.startswith("exported step")]
    assert first and result and first[0] < result[0], export
    assert noisy(export) == []
    detect = subprocess.run([bin_path("odrun"), "detect", "--model", str(piped["root"] / "export"),
                             str(piped["images"]), "--out", str(piped["root"] / "det")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, timeout=900).stdout.decode(errors="replace")
    lines = detect.splitlines()
    loading = [i for i, l in enumerate(lines) if l.startswith("loading the model")]
    bar = [i for i, l in enumerate(lines) if re.match(r"^detect \d+/16 images", l)]
    result = [i for i, l in enumerate(lines) if " detections (score >= " in l]
    assert loading and bar and result and loading[0] < bar[0] < result[0], detect
    assert noisy(detect) == []


QUIET_SCRIPT = r"""
import logging, os, sys, warnings
from odrun.ui import quiet
with quiet.session("probe", sys.argv[1], enabled=sys.argv[2] == "quiet"):
    os.write(2, b"2026-01-01 00:00:00.000000: I tensorflow/core/util/port.cc:113] oneDNN custom operations\n")
    logging.getLogger("tensorflow").warning("WARNING:tensorflow from the logger")
    warnings.warn("a DeprecationWarning-like message", UserWarning)
    with quiet.library_stdout():
        print("Accumulating evaluation results...")
    print("ours: a summary line")
    quiet.terminal().write("ours: a message on the terminal\n")
"""


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_quiet_session_routes_library_output(tmp_path, mode):
    proc = subprocess.run([sys.executable, "-c", QUIET_SCRIPT, str(tmp_path), mode], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "ours: a summary line" in proc.stdout and "ours: a message on the terminal" in proc.stderr
    log = tmp_path / "logs" / "probe.log"
    if mode == "quiet":
        assert noisy(proc.stdout + proc.stderr) == []
        text = log.read_text()
        for needle in ("oneDNN", "WARNING:tensorflow from the logger", "UserWarning", "Accumulating evaluation"):
            assert needle in text, (needle, text)
    else:  # -v: the raw stream, no log
        assert len(noisy(proc.stderr)) >= 3 and not log.exists()


def test_train_help_lists_eval_flags():
    out = run_cli("odrun", "train", "--help", check=0).stdout
    assert "--eval-every" in out and "--patience" in out and "--verbose" in out


def test_convert_never_imports_tensorflow(tmp_path):
    """Writing TFRecords needs only CRC32C (odrun/convert/tfrecord.py): no TF start-up in convert."""
    script = ("import sys\nfrom odrun.tasks.detect import synth\nfrom odrun.convert import pipeline\n"
              "synth.generate(sys.argv[1], count=6, seed=2)\n"
              "pipeline.convert(sys.argv[1], sys.argv[2], progress=False)\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'object_detection')))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "img"), str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "data" / "train.record").stat().st_size > 0


def test_tfrecord_framing_is_byte_identical_to_tensorflow(tmp_path):
    require(have_module("tensorflow"), "TensorFlow not installed")
    import tensorflow as tf
    from odrun.convert import tfrecord
    assert tfrecord.available()
    payloads = [b"", b"x", bytes(range(256)) * 40, os.urandom(70000)]
    with tfrecord.Writer(str(tmp_path / "ours.record")) as w:
        for p in payloads:
            w.write(p)
    with tf.io.TFRecordWriter(str(tmp_path / "tf.record")) as w:
        for p in payloads:
            w.write(p)
    assert (tmp_path / "ours.record").read_bytes() == (tmp_path / "tf.record").read_bytes()
    read = [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / "ours.record"))]
    assert read == payloads


def test_augment_maps_names_to_the_od_api_preprocessor_steps():
    require(have_module("object_detection"), "OD API not installed")
    from odrun.tasks.detect.config import augment, pipeline as pc
    config = pc.load(pc.template_path("tf2", "ssd_mobilenet_v2"))
    augment.apply(config, "flip, crop,brightness,random_rotation90,flip")
    chosen = [o.WhichOneof("preprocessing_step") for o in config.train_config.data_augmentation_options]
    assert chosen == ["random_horizontal_flip", "random_crop_image", "random_adjust_brightness", "random_rotation90"]
    text = pc.dumps(config) if hasattr(pc, "dumps") else str(config)
    assert "random_crop_image" in text
    from object_detection.protos import preprocessor_pb2
    fields = set(preprocessor_pb2.PreprocessingStep.DESCRIPTOR.fields_by_name)
    assert set(augment.names().values()) <= fields  # every short name in augment.yaml is a real step


def test_augment_unknown_name_is_refused_before_anything_is_written(tmp_path):
    out = run_cli("odrun", "train", "--data", tmp_path / "nodata", "--workdir", tmp_path / "run",
                  "--augment", "flip,flipp", "--api", "tf2", check=2)
    assert "--augment" in out.stderr and "flip" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()
    help_text = run_cli("odrun", "train", "--help", check=0).stdout
    assert "brightness" in help_text and "ssd_crop" in help_text


def test_convert_writes_a_report_and_check_writes_only_the_report(tmp_path):
    from PIL import Image
    from odrun.tasks.detect import synth
    synth.generate(str(tmp_path / "img"), count=10, seed=4)  # 160x160 pictures
    full = json.loads(run_cli("odrun", "convert", tmp_path / "img", "--out", tmp_path / "data", "--json",
                              check=0).stdout)
    with Image.open(full["report"]["path"]) as im:
        assert im.format == "PNG" and im.size[0] >= 800 and im.size[1] >= 600
        assert len(set(im.convert("L").getdata())) > 50
    assert any("smaller than the model input 300x300" in w for w in full["report"]["warnings"])
    assert (tmp_path / "data" / "train.record").exists()

    checked = run_cli("odrun", "convert", tmp_path / "img", "--out", tmp_path / "chk", "--check",
                      "--input-size", "20", "--json", check=0)
    rep = json.loads(checked.stdout)["report"]
    # the report and convert's own log (OUT/logs/convert.log): no records, CSVs or label map
    assert rep["check_only"] and sorted(os.listdir(str(tmp_path / "chk"))) == ["logs", "report.png"]
    assert os.listdir(str(tmp_path / "chk" / "logs")) == ["convert.log"]
    assert any("under 8 px on their shorter side at input size 20" in w for w in rep["warnings"])
    assert not any("smaller than the model input" in w for w in rep["warnings"])


def test_max_size_resizes_images_and_boxes(tmp_path):
    from odrun.tasks.detect import synth
    synth.make_voc(str(tmp_path / "voc"), 6, classes=("cat", "dog"), size=(640, 480), seed=1)
    src = {}
    import lxml.etree as ET
    for xml in (tmp_path / "voc").glob("*.xml"):
        root = ET.parse(str(xml)).getroot()
        src[root.findtext("filename")] = [[float(b.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
                                          for b in root.iter("bndbox")]
    run_cli("odrun", "convert", tmp_path / "voc", "--out", tmp_path / "data", "--max-size", "200", "--json", check=0)
    rows = []
    for split in ("train", "test"):
        with open(str(tmp_path / "data" / "{}_labels.csv".format(split)), newline="") as f:
            rows += list(csv.DictReader(f))
    assert rows and all((r["width"], r["height"]) == ("200", "150") for r in rows)
    for r in rows:  # every box scaled by 200/640, within rounding
        box = [float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
        assert any(all(abs(a - b * 200 / 640) < 0.01 for a, b in zip(box, s)) for s in src[r["filename"]]), r


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_max_size_applies_exif_orientation_to_pixels_and_boxes(orientation):
    """A red box drawn on the stored pixels must be red where the moved box says, once upright."""
    import io as _io
    from PIL import Image, ImageDraw
    from odrun.convert import images, resize
    im = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(im).rectangle([40, 20, 119, 59], fill="red")  # stored frame: x 40..120, y 20..60
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = _io.BytesIO()
    im.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    info = images.inspect("x.jpg", data=buf.getvalue())
    assert info["orientation"] == orientation
    new, (obj,) = resize.apply(info, [{"name": "r", "xmin": 40, "ymin": 20, "xmax": 120, "ymax": 60}], 100)
    out = Image.open(_io.BytesIO(new["data"])).convert("RGB")
    assert out.size == ((100, 50) if orientation == 3 else (50, 100)) == (new["width"], new["height"])
    cx, cy = (obj["xmin"] + obj["xmax"]) / 2, (obj["ymin"] + obj["ymax"]) / 2
    r, g, b = out.getpixel((int(cx), int(cy)))
    assert r > 180 and g < 90 and b < 90, (orientation, obj, (r, g, b))
    assert abs((obj["xmax"] - obj["xmin"]) * (obj["ymax"] - obj["ymin"]) - 80 * 40 / 16) < 1
