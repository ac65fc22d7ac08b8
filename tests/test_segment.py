"""Instance masks in `odrun convert` (issue 16), checked with the OD API's own parts: records are
decoded by `TfExampleDecoder(load_instance_masks=True, instance_mask_type=PNG_MASKS)` and compared
pixel for pixel with what pycocotools rasterises, with the exact painted masks, and with the OD API's
own `create_coco_tf_record.create_tf_example(..., include_masks=True)` on the same COCO file.

All datasets here are HAND-MADE (odrun/tasks/detect/masks/synth.py and the labelme/broken files below)."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import have_module, require, run_cli


def _tf_slim_fix():
    from tensorflow.python.ops import control_flow_ops
    if not hasattr(control_flow_ops, "case"):
        from tensorflow.python.ops import cond, control_flow_case
        control_flow_ops.case = control_flow_case.case
        control_flow_ops.cond = cond.cond


def decode_records(path):
    """{source_id: decoded tensors as numpy} through the OD API's decoder with masks."""
    import tensorflow as tf
    _tf_slim_fix()
    from object_detection.core import standard_fields as fields
    from object_detection.data_decoders import tf_example_decoder
    from object_detection.protos import input_reader_pb2
    decoder = tf_example_decoder.TfExampleDecoder(load_instance_masks=True,
                                                  instance_mask_type=input_reader_pb2.PNG_MASKS)
    out = {}
    for raw in tf.data.TFRecordDataset(str(path)):
        d = decoder.decode(raw)
        out[d[fields.InputDataFields.source_id].numpy().decode()] = {
            "masks": d[fields.InputDataFields.groundtruth_instance_masks].numpy().astype(np.uint8),
            "boxes": d[fields.InputDataFields.groundtruth_boxes].numpy(),
            "crowd": d[fields.InputDataFields.groundtruth_is_crowd].numpy(),
            "raw": raw.numpy()}
    return out


def coco_rasterise(ann, h, w):
    """What create_coco_tf_record.py computes for one annotation (frPyObjects, decode, amax),
    plus compressed RLE (which that script cannot read)."""
    from pycocotools import mask as mask_api
    seg = ann["segmentation"]
    if isinstance(seg, dict) and isinstance(seg["counts"], str):
        return mask_api.decode({"size": seg["size"], "counts": seg["counts"].encode()})
    m = mask_api.decode(mask_api.frPyObjects(seg, h, w))
    return m if m.ndim == 2 else np.amax(m, axis=2)


@pytest.fixture(scope="module")
def coco_masks(tmp_path_factory):
    require(have_module("tensorflow") and have_module("object_detection") and have_module("pycocotools"),
            "TensorFlow + OD API + pycocotools not installed (run scripts/setup.sh)")
    from odrun.convert import convert
    from odrun.tasks.detect.masks import synth
    base = tmp_path_factory.mktemp("segment")
    path, truth = synth.generate(str(base / "src"), count=14, width=96, height=80, seed=3,
                                 forms=("polygon", "rle", "crowd"))
    summary = convert(path, str(base / "out"), split=1.0, progress=False, workers=1)
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return {"base": base, "json": path, "doc": doc, "truth": truth, "summary": summary,
            "records": decode_records(base / "out" / "train.record")}


def test_masks_survive_convert_and_odapi_decoder(coco_masks):
    doc, recs = coco_masks["doc"], coco_masks["records"]
    assert coco_masks["summary"]["instance_masks"] is True
    forms = {"polygon": 0, "rle": 0, "crowd": 0}
    by_image = {im["id"]: im for im in doc["images"]}
    for ann_group in _group(doc):
        im = by_image[ann_group[0]["image_id"]]
        rec = recs[im["file_name"]]
        assert rec["masks"].shape == (len(ann_group), im["height"], im["width"])
        for k, ann in enumerate(ann_group):
            want = coco_rasterise(ann, im["height"], im["width"])
            np.testing.assert_array_equal(rec["masks"][k], want)
            assert rec["crowd"][k] == ann["iscrowd"]
            form = "polygon" if isinstance(ann["segmentation"], list) else (
                "crowd" if ann["iscrowd"] else "rle")
            forms[form] += 1
            if form != "polygon":  # RLE forms carry the exact painted pixels
                np.testing.assert_array_equal(rec["masks"][k], coco_masks["truth"][im["file_name"]][k])
    assert min(forms.values()) >= 3, forms  # every form really was exercised


def _group(doc):
    groups = {}
    for ann in doc["annotations"]:
        groups.setdefault(ann["image_id"], []).append(ann)
    return [groups[k] for k in sorted(groups)]


def test_masks_match_create_coco_tf_record(coco_masks):
    """The OD API's own converter on the same images: the same mask pixels and boxes, object by
    object. That script reads polygons (iscrowd 0) and uncompressed RLE (iscrowd 1) only, so its
    copy of a compressed-RLE annotation is the same mask uncompressed, marked crowd."""
    from tensorflow.core.example import example_pb2
    from object_detection.dataset_tools import create_coco_tf_record as peer
    from odrun.tasks.detect.masks.synth import _uncompressed
    doc, recs = coco_masks["doc"], coco_masks["records"]
    cats = {c["id"]: c for c in doc["categories"]}
    by_image = {im["id"]: im for im in doc["images"]}
    compared = 0
    for group in _group(doc):
        im = by_image[group[0]["image_id"]]
        anns, changed = [], []
        for ann in group:
            compressed = isinstance(ann["segmentation"], dict) and isinstance(ann["segmentation"]["counts"], str)
            if compressed:
                ann = dict(ann, iscrowd=1, segmentation=_uncompressed(coco_rasterise(ann, im["height"], im["width"])))
            anns.append(ann)
            changed.append(compressed)
        _, example, skipped, _, _ = peer.create_tf_example(im, anns, os.path.dirname(coco_masks["json"]), cats,
                                                           include_masks=True)
        assert skipped == 0
        theirs = example.features.feature
        ours = example_pb2.Example.FromString(recs[im["file_name"]]["raw"]).features.feature
        their_masks = [np.asarray(Image.open(_bytes_io(b))) for b in theirs["image/object/mask"].bytes_list.value]
        our_masks = [np.asarray(Image.open(_bytes_io(b))) for b in ours["image/object/mask"].bytes_list.value]
        assert len(their_masks) == len(our_masks) == len(anns)
        for a, b in zip(their_masks, our_masks):
            assert a.dtype == b.dtype == np.uint8 and a.shape == b.shape  # 8-bit grayscale PNG, values 0/1
            np.testing.assert_array_equal(a, b)
        for key in ("image/object/bbox/xmin", "image/object/bbox/xmax", "image/object/bbox/ymin",
                    "image/object/bbox/ymax"):
            np.testing.assert_allclose(theirs[key].float_list.value, ours[key].float_list.value, rtol=1e-6)
        crowd = [(a, b) for a, b, c in zip(theirs["image/object/is_crowd"].int64_list.value,
                                          ours["image/object/is_crowd"].int64_list.value, changed) if not c]
        assert all(a == b for a, b in crowd)
        compared += 1
    assert compared == len(doc["images"])


def _bytes_io(b):
    import io
    return io.BytesIO(b)


def _labelme_file(folder, name, size, shapes):
    w, h = size
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(str(folder / name), quality=95)
    doc = {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": name, "imageData": None,
           "imageHeight": h, "imageWidth": w}
    (folder / (os.path.splitext(name)[0] + ".json")).write_text(json.dumps(doc), encoding="utf-8")


def _shape(label, points, kind="polygon", group=None):
    return {"label": label, "points": points, "group_id": group, "shape_type": kind, "flags": {}}


def test_labelme_folder(tmp_path):
    require(have_module("tensorflow") and have_module("object_detection"), "TensorFlow + OD API not installed")
    from pycocotools import mask as mask_api
    from odrun.convert import convert
    src = tmp_path / "labelme"
    src.mkdir()
    tri = [[10, 10], [50, 12], [30, 40]]
    part_a, part_b = [[60, 5], [90, 5], [90, 20], [60, 20]], [[60, 30], [90, 30], [90, 45], [60, 45]]
    _labelme_file(src, "a.jpg", (100, 60), [
        _shape("leaf", tri), _shape("stem", part_a, group=1), _shape("stem", part_b, group=1),
        _shape("leaf", [[5, 45], [25, 58]], kind="rectangle"), _shape("tip", [[40, 50]], kind="point")])
    _labelme_file(src, "b.jpg", (100, 60), [_shape("leaf", [[50, 30], [60, 30]], kind="circle")])
    summary = convert(str(src), str(tmp_path / "out"), split=1.0, progress=False, workers=1)
    assert summary["format"] == "labelme" and summary["instance_masks"] is True
    assert [w["message"].split(" shape")[0] for w in summary["warnings"]] == ["point"]
    recs = decode_records(tmp_path / "out" / "train.record")
    a = recs["a.jpg"]["masks"]
    assert a.shape == (3, 60, 100)

    def poly(*parts):
        return np.amax(mask_api.decode(mask_api.frPyObjects([[float(v) for pt in p for v in pt] for p in parts], 60, 100)),
                       axis=2)
    np.testing.assert_array_equal(a[0], poly(tri))
    np.testing.assert_array_equal(a[1], poly(part_a, part_b))  # one object, two parts (group_id)
    np.testing.assert_array_equal(a[2], poly([[5, 45], [25, 45], [25, 58], [5, 58]]))
    b = recs["b.jpg"]["masks"][0]
    ys, xs = np.nonzero(b)
    assert abs(xs.mean() - 50) < 1 and abs(ys.mean() - 30) < 1 and 250 < b.sum() < 380  # r=10 disc: 314 px
    # boxes are the masks' extents
    ymin, xmin, ymax, xmax = recs["a.jpg"]["boxes"][1]
    assert (round(xmin * 100), round(ymin * 60), round(xmax * 100), round(ymax * 60)) == (60, 5, 90, 45)


def test_cvat_coco_export_layout(tmp_path):
    """CVAT's "COCO 1.0" export: annotations/instances_default.json beside images/; polygons with
    iscrowd 0 and masks as uncompressed RLE with iscrowd 1 (the layout CVAT writes)."""
    require(have_module("tensorflow") and have_module("object_detection"), "TensorFlow + OD API not installed")
    from odrun.convert import convert
    from odrun.tasks.detect.masks import synth
    export = tmp_path / "task_export"
    path, _ = synth.generate(str(export / "images"), count=4, width=64, height=64, seed=5,
                             forms=("polygon", "crowd"), json_name="instances_default.json")
    (export / "annotations").mkdir()
    os.replace(path, str(export / "annotations" / "instances_default.json"))
    summary = convert(str(export / "annotations" / "instances_default.json"), str(tmp_path / "out"),
                      split=1.0, progress=False, workers=1)
    assert summary["instance_masks"] is True and summary["images"]["total"] == 4


def test_no_masks_flag_writes_boxes_only(coco_masks, tmp_path):
    r = run_cli("odrun", "convert", coco_masks["json"], "--out", tmp_path / "out", "--no-masks", "--split", "1",
                "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["instance_masks"] is False
    from tensorflow.core.example import example_pb2
    import tensorflow as tf
    raw = next(iter(tf.data.TFRecordDataset(str(tmp_path / "out" / "train.record")))).numpy()
    assert "image/object/mask" not in example_pb2.Example.FromString(raw).features.feature


BROKEN = [  # (segmentation, bbox, the words the message must contain)
    ([[10, 10, 40, 40, 40, 10, 10, 40]], [10, 10, 30, 30], "Self-intersection"),
    ([[10, 10, 20, 20, 30, 30]], [10, 10, 20, 20], "zero area"),
    ([[200, 200, 220, 200, 220, 220]], [200, 200, 20, 20], "outside the 64x48 image"),
    ({"size": [40, 64], "counts": [2560]}, [0, 0, 64, 40], "RLE size is [40, 64]"),
    ({"size": [48, 64], "counts": [5, 10]}, [0, 0, 1, 10], "add up to 15 pixels"),
    ([[10, 10, 30, 10, 30, 30, 10, 30]], [40, 5, 10, 10], "does not match its mask"),
    ([[10, 10, 30, 10]], [10, 10, 20, 1], "needs at least 3"),
]


def test_broken_masks_listed_and_nothing_written(tmp_path):
    """Every broken mask is named (file + annotation id + class + image) and no output appears."""
    require(have_module("tensorflow"), "TensorFlow not installed")
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(str(src / "x.png"))
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": bbox, "iscrowd": int(isinstance(seg, dict)),
             "segmentation": seg, "area": 1.0} for i, (seg, bbox, _) in enumerate(BROKEN)]
    anns.append({"id": 99, "image_id": 1, "category_id": 1, "bbox": [1, 1, 20, 20], "iscrowd": 0, "area": 400.0,
                 "segmentation": [[1, 1, 21, 1, 21, 21, 1, 21]]})  # a good one
    doc = {"images": [{"id": 1, "file_name": "x.png", "width": 64, "height": 48}], "annotations": anns,
           "categories": [{"id": 1, "name": "thing"}]}
    (src / "coco.json").write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "out"
    r = run_cli("odrun", "convert", src / "coco.json", "--out", out)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "{} errors".format(len(BROKEN)) in r.stderr, r.stderr
    for i, (_, _, words) in enumerate(BROKEN):
        line = next((l for l in r.stderr.splitlines() if "annotation id {} 'thing' (x.png)".format(i + 1) in l), None)
        assert line and words in line and "coco.json" in line, (i, words, r.stderr)
    assert "annotation id 99" not in r.stderr
    assert not out.exists()


def test_mask_model_refuses_box_records(coco_masks, tmp_path):
    """A Mask R-CNN template on records without masks: exit 2 before TensorFlow builds anything."""
    r = run_cli("odrun", "convert", coco_masks["json"], "--out", tmp_path / "boxes",
                "--no-masks")
    assert r.returncode == 0, r.stderr
    r = run_cli("odrun", "train", "--task", "segment", "--data", tmp_path / "boxes", "--workdir", tmp_path / "run",
                "--steps", 1)
    assert r.returncode == 2 and "predicts instance masks but the records" in r.stderr, r.stderr
