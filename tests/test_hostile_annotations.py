"""Issue 22: annotation files checked against a schema per format (odrun/convert/schemas/*.json)
before any field is read. Every malformed COCO and labelme variant from the issue's probe is
exit 2 naming the file (and the COCO annotation id), never exit 1 / a traceback, nothing written.

Fixtures are HAND-MADE: 100x60 gray PNGs (Pillow) and COCO / labelme JSON written here; the RLE
strings are pycocotools' own `mask.encode` output, edited where a case needs damaged counts.
"""
import base64
import copy
import io
import json

import pytest

from conftest import have_module, require
from test_hostile_input import cli, refused

W, H = 100, 60


@pytest.fixture(autouse=True)
def _needs_odapi():
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")


def _convert_refused(capsys, tmp_path, source, *fragments):
    """`odrun convert SOURCE` is exit 2 naming FRAGMENTS, and no output folder is left behind."""
    out = tmp_path / "out"
    code, err = cli(capsys, "odrun", "convert", source, "--out", out)
    refused(code, err, *fragments)
    assert not out.exists()


def _image(path, size=(W, H)):
    from PIL import Image
    Image.new("RGB", size, (90, 90, 90)).save(str(path))


def _rle(height=H, width=W):
    import numpy as np
    from pycocotools import mask as mask_api
    m = np.zeros((height, width), dtype=np.uint8)
    m[10:30, 20:50] = 1
    rle = mask_api.encode(np.asfortranarray(m))
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _coco(tmp_path, change):
    src = tmp_path / "coco"
    src.mkdir()
    for i in (1, 2):
        _image(src / "{}.png".format(i))
    data = {"images": [{"id": i, "file_name": "{}.png".format(i), "width": W, "height": H} for i in (1, 2)],
            "categories": [{"id": 1, "name": "leaf"}],
            "annotations": [{"id": 10 + i, "image_id": i, "category_id": 1, "bbox": [20, 10, 30, 20],
                             "segmentation": [[20, 10, 50, 10, 50, 30, 20, 30]], "iscrowd": 0} for i in (1, 2)]}
    change(data["annotations"][1])
    (src / "instances.json").write_text(json.dumps(data))
    return src / "instances.json"


def _damaged_counts(ann):
    """pycocotools' string with one run's character changed: the runs no longer add up to H*W."""
    rle = _rle()
    counts = rle["counts"]
    ann["segmentation"] = dict(rle, counts=counts[:2] + ("5" if counts[2] != "5" else "6") + counts[3:])
    ann.pop("bbox")


COCO_CASES = {
    "bbox-string": (lambda a: a.update(bbox=["10", 10, 30, 20]), ["annotations[1].bbox", "annotation id 12", "four numbers"]),
    "bbox-true": (lambda a: a.update(bbox=[True, 10, 30, 20]), ["annotations[1].bbox", "annotation id 12", "not true/false"]),
    "rle-counts-do-not-add-up": (_damaged_counts, ["annotation id 12", "add up to"]),
    "rle-size-1e400": (lambda a: a.update(segmentation=dict(_rle(), size=[1e400, W]), bbox=[20, 10, 30, 20]),
                       ["annotations[1].segmentation", "annotation id 12", "positive whole numbers"]),
    "rle-size-null": (lambda a: a.update(segmentation=dict(_rle(), size=[None, None])),
                      ["annotations[1].segmentation", "annotation id 12"]),
    "rle-size-strings": (lambda a: a.update(segmentation=dict(_rle(), size=["a", "b"])),
                         ["annotations[1].segmentation", "annotation id 12"]),
    "rle-for-a-larger-image": (lambda a: a.update(segmentation=_rle(H * 2, W * 2)),
                               ["annotation id 12", "mask was made for another image"]),
}


@pytest.mark.parametrize("case", sorted(COCO_CASES))
def test_malformed_coco_is_exit_2_naming_file_and_annotation(case, capsys, tmp_path):
    change, expect = COCO_CASES[case]
    _convert_refused(capsys, tmp_path, _coco(tmp_path, change), "instances.json", *expect)


def _mask_png(width, height):
    from PIL import Image
    buf = io.BytesIO()
    Image.new("L", (width, height), 255).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


GOOD_SHAPE = {"label": "leaf", "points": [[10, 10], [50, 10], [50, 40]], "group_id": None, "shape_type": "polygon",
              "flags": {}}


def _labelme(tmp_path, change):
    src = tmp_path / "labelme"
    src.mkdir()
    _image(src / "a.png")
    data = {"version": "5.3.1", "flags": {}, "shapes": [copy.deepcopy(GOOD_SHAPE)], "imagePath": "a.png",
            "imageData": None, "imageHeight": H, "imageWidth": W}
    change(data)
    (src / "a.json").write_text(json.dumps(data))
    return src


def _shape(**fields):
    return lambda d: d["shapes"][0].update(fields)


LABELME_CASES = {
    "shape-not-an-object": (lambda d: d["shapes"].append("leaf"), "shapes[1] must be a shape object"),
    "group-id-list": (_shape(group_id=[1]), "shapes[0].group_id must be a whole number"),
    "group-id-dict": (_shape(group_id={"a": 1}), "shapes[0].group_id must be a whole number"),
    "flat-points": (_shape(points=[10, 10, 50, 10, 50, 40]), "shapes[0].points[0] must be a point [x, y]"),
    "string-points": (_shape(points="10,10 50,10 50,40"), "shapes[0].points must be a list of [x, y] points"),
    "one-point-rectangle": (_shape(shape_type="rectangle", points=[[10, 10]]), "rectangle shape with 1 point"),
    "string-width": (lambda d: d.update(imageWidth="100"), "imageWidth must be a positive whole number"),
    "infinite-width": (lambda d: d.update(imageWidth=1e400), "imageWidth must be a positive whole number"),
    "mask-larger-than-image": (lambda d: d["shapes"].__setitem__(0, {
        "label": "leaf", "points": [[60, 20], [99, 59]], "group_id": None, "shape_type": "mask",
        "mask": _mask_png(80, 50), "flags": {}}), "reaches past the 100x60 image"),
}


@pytest.mark.parametrize("case", sorted(LABELME_CASES))
def test_malformed_labelme_is_exit_2_naming_the_file(case, capsys, tmp_path):
    change, expect = LABELME_CASES[case]
    _convert_refused(capsys, tmp_path, _labelme(tmp_path, change), "a.json", expect)


def test_the_good_files_convert(capsys, tmp_path):
    """The controls: the same files unchanged convert (exit 0)."""
    code, err = cli(capsys, "odrun", "convert", _coco(tmp_path, lambda a: None), "--out", tmp_path / "out1")
    assert code == 0, err
    code, err = cli(capsys, "odrun", "convert", _labelme(tmp_path, lambda d: None), "--out", tmp_path / "out2")
    assert code == 0, err


def test_the_fallback_checker_agrees_with_jsonschema(tmp_path, monkeypatch):
    """The TF images may lack jsonschema: odrun/convert/schema.py's own walk reports the same fields."""
    import builtins
    from odrun.convert import schema
    samples = []
    for case, (change, _e) in sorted(LABELME_CASES.items()):
        data = {"shapes": [copy.deepcopy(GOOD_SHAPE)], "imagePath": "a.png", "imageHeight": H, "imageWidth": W}
        change(data)
        samples.append(("labelme", data))
    for case, (change, _e) in sorted(COCO_CASES.items()):
        path = _coco(tmp_path / case, change) if (tmp_path / case).mkdir() is None else None
        samples.append(("coco", json.loads(path.read_text())))
    with_lib = [schema.problems(name, data) for name, data in samples]
    real_import = builtins.__import__

    def no_jsonschema(name, *args, **kwargs):
        if name == "jsonschema":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_jsonschema)
    without = [schema.problems(name, data) for name, data in samples]
    assert [[schema.where(p) for p, _t in found] for found in without] == \
        [[schema.where(p) for p, _t in found] for found in with_lib]
    assert [[t for _p, t in found] for found in without] == [[t for _p, t in found] for found in with_lib]
    assert sum(1 for found in with_lib if found) >= 10
