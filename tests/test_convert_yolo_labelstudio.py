"""`odrun convert` reads YOLO text datasets: the records, read back with the OD API's own decoder,
hold the boxes and classes that globox (an independent YOLO reader) converts the same files to."""
import json
import shutil

import numpy as np
import pytest

from conftest import require, run_cli

FIXTURE = __import__("pathlib").Path(__file__).parent / "fixtures" / "yolo_real"


def _decode_all(out):
    import tensorflow as tf
    from test_convert import _tf_slim_fix
    _tf_slim_fix()
    from object_detection.core import standard_fields as fields
    from object_detection.data_decoders import tf_example_decoder

    decoder, got = tf_example_decoder.TfExampleDecoder(), {}
    for split in ("train", "test"):
        for raw in tf.data.TFRecordDataset(str(out / (split + ".record"))):
            d = decoder.decode(raw)
            h, w = d[fields.InputDataFields.image].shape[:2]
            boxes = d[fields.InputDataFields.groundtruth_boxes].numpy() * [h, w, h, w]  # ymin xmin ymax xmax px
            got[d[fields.InputDataFields.source_id].numpy().decode()] = (
                boxes, list(d[fields.InputDataFields.groundtruth_classes].numpy()))
    return got


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("yolo") / "data"
    proc = run_cli("odrun", "convert", FIXTURE, "--out", out, "--json", "--split", "0.5")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_yolo_format_detected_and_class_order_kept(converted):
    _, summary = converted
    assert summary["format"] == "yolo"
    names = (FIXTURE / "classes.txt").read_text().split()
    assert [(c["id"], c["name"]) for c in summary["classes"]] == [(i + 1, n) for i, n in enumerate(names)]


def test_yolo_records_match_globox_coco(converted, tmp_path):
    try:
        import globox
    except ImportError:
        require(False, "globox not installed (pip install globox)")
    out, summary = converted
    names = (FIXTURE / "classes.txt").read_text().split()
    labels = tmp_path / "labels"
    shutil.copytree(FIXTURE / "labels", labels)
    gt = globox.AnnotationSet.from_yolo_v5(labels, image_folder=FIXTURE / "images", image_extension=".jpg")
    gt = gt.map_labels({str(i): n for i, n in enumerate(names)})
    coco = tmp_path / "coco.json"
    gt.save_coco(coco, label_to_id={n: i + 1 for i, n in enumerate(names)}, auto_ids=True)
    data = json.loads(coco.read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    got = _decode_all(out)
    cats = {c["id"]: c["name"] for c in data["categories"]}
    ids = {c["name"]: c["id"] for c in summary["classes"]}
    assert sorted(got) == sorted(files.values())
    for image_id, fname in files.items():
        anns = [a for a in data["annotations"] if a["image_id"] == image_id]
        want = np.array([[a["bbox"][1], a["bbox"][0], a["bbox"][1] + a["bbox"][3], a["bbox"][0] + a["bbox"][2]]
                         for a in anns])
        boxes, classes = got[fname]
        np.testing.assert_allclose(boxes, want, atol=1.0)  # within 1 px
        assert classes == [ids[cats[a["category_id"]]] for a in anns]


def test_bad_yolo_line_exit_2_names_file_and_line(tmp_path):
    src = tmp_path / "ds"
    shutil.copytree(FIXTURE, src)
    with open(src / "labels" / "img_5.txt", "a") as f:
        f.write("0 0.5 0.5 1.7 0.2\n")
    n = len((src / "labels" / "img_5.txt").read_text().splitlines())
    out = tmp_path / "out"
    proc = run_cli("odrun", "convert", src, "--out", out)
    assert proc.returncode == 2
    assert "img_5.txt" in proc.stderr and "line {}".format(n) in proc.stderr and "normalised" in proc.stderr
    assert not out.exists()
