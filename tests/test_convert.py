"""odrun convert on generated VOC data, checked against the OD API itself: its record decoder
(`tf_example_decoder.TfExampleDecoder`), its VOC converter (`create_pascal_tf_record.
dict_to_tf_example`) and its label map loader. TensorFlow is imported once per module."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import have_module, require, run_cli
from odrun.tasks.detect import synth

CLASSES = ("cat", "dog", "口罩", 'it\'s a "box"')
SIZE = (96, 72)


def _tf_slim_fix():
    """tf-slim 1.1.0 on TF >= 2.13 (measured-here.md): control_flow_ops.case/cond moved."""
    from tensorflow.python.ops import control_flow_ops
    if not hasattr(control_flow_ops, "case"):
        from tensorflow.python.ops import cond, control_flow_case
        control_flow_ops.case = control_flow_case.case
        control_flow_ops.cond = cond.cond


def read_records(paths):
    import tensorflow as tf
    from tensorflow.core.example import example_pb2

    out = []
    for p in paths:
        for raw in tf.data.TFRecordDataset(p):
            ex = example_pb2.Example()
            ex.ParseFromString(raw.numpy())
            out.append((raw.numpy(), ex))
    return out


def feat(ex, key):
    f = ex.features.feature[key]
    return list(getattr(f, f.WhichOneof("kind")).value) if f.WhichOneof("kind") else []


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")
    from odrun.convert import convert

    base = tmp_path_factory.mktemp("convert")
    src = base / "src"
    truth = synth.make_voc(str(src), 64, classes=CLASSES, size=SIZE, seed=1)
    summary = convert(str(src), str(base / "out"), progress=False, workers=2)
    return {"base": base, "src": src, "out": base / "out", "truth": truth, "summary": summary}


def test_outputs_summary_and_split(voc):
    s, out = voc["summary"], voc["out"]
    assert sorted(os.listdir(out)) == ["label_map.pbtxt", "summary.json", "test.record", "test_labels.csv",
                                       "train.record", "train_labels.csv"]
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == s
    assert s["images"] == {"train": 52, "test": 12, "total": 64, "negatives": 0}
    assert s["workers"] == 2 and s["warnings"] == [] and s["format"] == "voc"
    assert [c["name"] for c in s["classes"]] == sorted(CLASSES) and [c["id"] for c in s["classes"]] == [1, 2, 3, 4]
    for c in s["classes"]:  # stratified: every class in both splits, near the 80/20 ratio
        assert 0.12 <= c["test_boxes"] / float(c["train_boxes"] + c["test_boxes"]) <= 0.28, c
    total = sum(len(v) for v in voc["truth"].values())
    assert sum(c["train_boxes"] + c["test_boxes"] for c in s["classes"]) == total


def test_records_decode_with_odapi_decoder(voc):
    import tensorflow as tf
    _tf_slim_fix()
    from object_detection.core import standard_fields as fields
    from object_detection.data_decoders import tf_example_decoder

    ids = {c["name"]: c["id"] for c in voc["summary"]["classes"]}
    decoder = tf_example_decoder.TfExampleDecoder()
    seen = 0
    for split in ("train", "test"):
        for raw in tf.data.TFRecordDataset(str(voc["out"] / (split + ".record"))):
            d = decoder.decode(raw)
            name = d[fields.InputDataFields.source_id].numpy().decode()
            objs = voc["truth"][name]
            w, h = SIZE
            want = np.array([[o["ymin"] / h, o["xmin"] / w, o["ymax"] / h, o["xmax"] / w] for o in objs], np.float32)
            np.testing.assert_allclose(d[fields.InputDataFields.groundtruth_boxes].numpy(), want, rtol=1e-6)
            assert list(d[fields.InputDataFields.groundtruth_classes].numpy()) == [ids[o["name"]] for o in objs]
            assert list(d[fields.InputDataFields.groundtruth_difficult].numpy()) == [o["difficult"] for o in objs]
            assert tuple(d[fields.InputDataFields.image].shape) == (h, w, 3)
            seen += 1
    assert seen == 64


def test_records_match_create_pascal_tf_record(voc):
    """Record by record against the OD API's own VOC converter on the same XML + JPEGs."""
    from lxml import etree
    from object_detection.dataset_tools import create_pascal_tf_record as peer
    from object_detection.utils import dataset_util

    ids = {c["name"]: c["id"] for c in voc["summary"]["classes"]}
    ours = {ex.features.feature["image/source_id"].bytes_list.value[0].decode(): ex
            for _raw, ex in read_records([str(voc["out"] / "train.record"), str(voc["out"] / "test.record")])}
    assert len(ours) == 64
    keys = ["image/height", "image/width", "image/filename", "image/source_id", "image/key/sha256",
            "image/encoded", "image/format", "image/object/bbox/xmin", "image/object/bbox/xmax",
            "image/object/bbox/ymin", "image/object/bbox/ymax", "image/object/class/text",
            "image/object/class/label", "image/object/difficult", "image/object/truncated", "image/object/view"]
    for name in sorted(voc["truth"]):
        xml = etree.fromstring((voc["src"] / name.replace(".jpg", ".xml")).read_bytes())
        data = dataset_util.recursive_parse_xml_to_dict(xml)["annotation"]
        theirs = peer.dict_to_tf_example(data, str(voc["base"]), ids, image_subdirectory="")
        assert sorted(ours[name].features.feature) == sorted(theirs.features.feature) == sorted(keys)
        for key in keys:
            assert feat(ours[name], key) == feat(theirs, key), (name, key)


def test_label_map_loads_with_odapi(voc):
    from object_detection.utils import label_map_util

    loaded = label_map_util.get_label_map_dict(str(voc["out"] / "label_map.pbtxt"))
    assert loaded == {c["name"]: c["id"] for c in voc["summary"]["classes"]}
    assert "口罩" in loaded and 'it\'s a "box"' in loaded


def test_csv_as_in_the_seeds(voc):
    import pandas as pd

    df = pd.read_csv(voc["out"] / "train_labels.csv")
    assert list(df.columns) == ["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"]
    assert len(df) == sum(c["train_boxes"] for c in voc["summary"]["classes"])
    row = df.iloc[0]
    o = voc["truth"][row["filename"]][0]
    assert (row["class"], row["xmin"], row["ymax"], row["width"]) == (o["name"], o["xmin"], o["ymax"], SIZE[0])


def test_deterministic_seed_and_shards(voc, tmp_path):
    from odrun.convert import convert

    again = tmp_path / "again"
    convert(str(voc["src"]), str(again), progress=False, workers=1)
    for f in ("train.record", "test.record", "label_map.pbtxt", "train_labels.csv"):
        assert (again / f).read_bytes() == (voc["out"] / f).read_bytes(), f  # 1 worker == 2 workers
    other = convert(str(voc["src"]), str(tmp_path / "seed7"), seed=7, progress=False)
    assert (tmp_path / "seed7" / "test_labels.csv").read_bytes() != (voc["out"] / "test_labels.csv").read_bytes()
    assert abs(other["images"]["test"] - 13) <= 2
    # Re-run into `again` with 3 shards: the single-file records of the last run go away.
    # A user's file in it: refused (the set replaces --out as one: it would be lost), nothing changed.
    (again / "train.record.bak").write_bytes(b"a user's file")
    from odcore.errors import UserError
    with pytest.raises(UserError, match="train.record.bak"):
        convert(str(voc["src"]), str(again), shards=3, progress=False)
    assert (again / "train.record.bak").read_bytes() == b"a user's file" and (again / "train.record").exists()
    os.unlink(str(again / "train.record.bak"))
    sharded = convert(str(voc["src"]), str(again), shards=3, progress=False)
    names = sorted(os.listdir(again))
    assert "train.record" not in names and "train.record-00002-of-00003" in names
    assert sharded["outputs"]["test"][0].endswith("test.record-00000-of-00003")
    recs = read_records([str(p) for p in sorted(again.glob("train.record-*"))])
    assert sorted(r for r, _ in recs) == sorted(r for r, _ in read_records([str(voc["out"] / "train.record")]))


def test_train_test_folders_coco_and_csv_agree(voc, tmp_path):
    """The same images through --train/--test, COCO JSON and the seeds' CSV give the same boxes."""
    from odrun.convert import convert

    names = sorted(voc["truth"])
    for split, part in (("train", names[:48]), ("test", names[48:])):
        d = tmp_path / split
        d.mkdir()
        for n in part:
            shutil.copy(voc["src"] / n, d / n)
            shutil.copy(voc["src"] / n.replace(".jpg", ".xml"), d / n.replace(".jpg", ".xml"))
    s = convert(None, str(tmp_path / "dirs"), train_dir=str(tmp_path / "train"), test_dir=str(tmp_path / "test"),
                progress=False)
    assert (s["images"]["train"], s["images"]["test"], s["split"]) == (48, 16, "folders")

    cats = [{"id": 10 + i, "name": n} for i, n in enumerate(CLASSES)]
    cat_id = {c["name"]: c["id"] for c in cats}
    coco = {"images": [], "annotations": [], "categories": cats}
    rows = []
    for i, n in enumerate(names):
        coco["images"].append({"id": i, "file_name": n, "width": SIZE[0], "height": SIZE[1]})
        for o in voc["truth"][n]:
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i, "iscrowd": 0,
                                        "category_id": cat_id[o["name"]],
                                        "bbox": [o["xmin"], o["ymin"], o["xmax"] - o["xmin"], o["ymax"] - o["ymin"]]})
            rows.append("{},{},{},\"{}\",{},{},{},{}".format(n, SIZE[0], SIZE[1], o["name"].replace('"', '""'),
                                                            o["xmin"], o["ymin"], o["xmax"], o["ymax"]))
    (voc["src"] / "instances.json").write_text(json.dumps(coco), encoding="utf-8")
    (voc["src"] / "labels.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\n" + "\n".join(rows) + "\n",
                                           encoding="utf-8")
    want = {}
    for _raw, ex in read_records([str(voc["out"] / "train.record"), str(voc["out"] / "test.record")]):
        want[feat(ex, "image/source_id")[0]] = [feat(ex, k) for k in ("image/object/bbox/xmin",
                                                                      "image/object/bbox/ymax",
                                                                      "image/object/class/label")]
    for src, fmt in (("instances.json", "coco"), ("labels.csv", "csv")):
        out = tmp_path / fmt
        s = convert(str(voc["src"] / src), str(out), progress=False)
        assert s["format"] == fmt and s["images"]["total"] == 64
        got = {}
        for _raw, ex in read_records([str(out / "train.record"), str(out / "test.record")]):
            got[feat(ex, "image/source_id")[0]] = [feat(ex, k) for k in ("image/object/bbox/xmin",
                                                                         "image/object/bbox/ymax",
                                                                         "image/object/class/label")]
            if fmt == "coco":
                assert feat(ex, "image/object/is_crowd") == [0] * len(feat(ex, "image/object/class/label"))
        assert got == want, fmt


def test_png_exif_and_size_warnings(voc, tmp_path):
    from odrun.convert import convert

    src = tmp_path / "src"
    synth.make_voc(str(src), 3, classes=("cat",), size=SIZE, seed=2)
    # PNG bytes under a .jpg name: image/format must come from the bytes.
    Image.new("RGB", SIZE, (9, 9, 9)).save(src / "img_00000.jpg", "PNG")
    # EXIF orientation 6 (rotated 90 CW) on a JPEG.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", SIZE, (1, 2, 3)).save(src / "img_00001.jpg", "JPEG", exif=exif)
    # An XML <size> that disagrees with the real image (real one wins).
    Image.new("RGB", (120, 90), (4, 5, 6)).save(src / "img_00002.jpg", "JPEG")
    s = convert(str(src), str(tmp_path / "out"), split=1.0, progress=False)
    msgs = "\n".join(w["file"] + ": " + w["message"] for w in s["warnings"])
    assert "PNG data with a .jpg extension: image/format set to 'png'" in msgs
    assert "img_00001.jpg: EXIF orientation 6 (rotated 90 CW)" in msgs
    assert "img_00002.xml: annotation says the image is 96x72 but img_00002.jpg is 120x90: using the real size" in msgs
    assert s["exif_orientation"] == [{"file": str(src / "img_00001.jpg"), "orientation": 6}]
    assert s["image_formats"] == {"png": 1, "jpeg": 2}
    recs = {feat(ex, "image/source_id")[0]: ex for _r, ex in read_records([str(tmp_path / "out" / "train.record")])}
    assert feat(recs[b"img_00000.jpg"], "image/format") == [b"png"]
    assert (feat(recs[b"img_00002.jpg"], "image/width"), feat(recs[b"img_00002.jpg"], "image/height")) == ([120], [90])


def test_cli_json_and_error_exit(voc, tmp_path):
    out = tmp_path / "cli"
    proc = run_cli("odrun", "convert", voc["src"], "--out", out, "--json", "--seed", "42", check=0)
    s = json.loads(proc.stdout)
    assert s["images"]["total"] == 64 and (out / "train.record").read_bytes() == (voc["out"] / "train.record").read_bytes()
    bad = run_cli("odrun", "convert", tmp_path / "nope", "--out", tmp_path / "x", check=2)
    assert "nope: no such file or folder" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()


def test_wire_encoding_equals_protobuf_classes(voc):
    """records.build_example writes the wire format by hand (speed); it must parse to exactly the
    message TensorFlow's example_pb2 builds, including empty lists (a negative image) and
    non-ASCII / negative values."""
    from tensorflow.core.example import example_pb2

    from odrun.convert import images, records

    name = sorted(voc["truth"])[0]
    info = images.inspect(str(voc["src"] / name))
    item = {"filename": "口罩 " + name, "image": str(voc["src"] / name)}
    objs = [dict(o, crowd=1) for o in voc["truth"][name]] + [
        {"name": "口罩", "xmin": -0.0, "ymin": 1e-9, "xmax": 95.5, "ymax": 71, "difficult": -1, "truncated": 2 ** 40,
         "pose": "Left"}]
    labels = {"cat": 1, "dog": 2, "口罩": 3, 'it\'s a "box"': 4}
    for objects in (objs, []):
        ours, ref = example_pb2.Example(), example_pb2.Example()
        ours.ParseFromString(records.build_example(info, item, objects, labels))
        ref.ParseFromString(records.build_example_pb(info, item, objects, labels))
        assert ours == ref
        assert len(ours.features.feature["image/object/bbox/xmin"].float_list.value) == len(objects)
        assert ours.features.feature["image/object/bbox/xmin"].WhichOneof("kind") == "float_list"
    # A negative example (no objects) decodes with the OD API's decoder to zero boxes.
    _tf_slim_fix()
    from object_detection.core import standard_fields as fields
    from object_detection.data_decoders import tf_example_decoder

    d = tf_example_decoder.TfExampleDecoder().decode(records.build_example(info, item, [], labels))
    assert d[fields.InputDataFields.groundtruth_boxes].shape == (0, 4)
    assert d[fields.InputDataFields.groundtruth_classes].shape == (0,)
    assert d[fields.InputDataFields.source_id].numpy().decode() == "口罩 " + name


def test_stratified_split_keeps_rare_classes_in_both():
    from odrun.convert import split

    def item(i, *names):
        return {"filename": "f{:03d}.jpg".format(i), "objects": [{"name": n} for n in names]}

    items = [item(i, "common") for i in range(40)] + [item(40, "rare", "common"), item(41, "rare"),
                                                      item(42, "once"), item(43), item(44)]
    train, test = split.stratified(items, 0.8, seed=5)
    assert abs(len(test) - 9) <= 1 and len(train) + len(test) == 45
    names = lambda part: {o["name"] for it in part for o in it["objects"]}  # noqa: E731
    assert {"rare", "common", "once"} <= names(train) and {"rare", "common"} <= names(test)
    assert "once" not in names(test)  # a class in one image stays in train
    again = split.stratified(list(reversed(items)), 0.8, seed=5)  # input order does not matter
    assert [i["filename"] for i in again[1]] == [i["filename"] for i in test]
    assert [i["filename"] for i in split.stratified(items, 0.8, seed=6)[1]] != [i["filename"] for i in test]


def test_cvat_layout_and_given_label_map(voc, tmp_path):
    """CVAT's 'PASCAL VOC 1.1' export: Annotations/ + JPEGImages/, float coordinates, <occluded>;
    a given label map (the seeds' order, not sorted) keeps its ids."""
    from lxml import etree

    from odrun.convert import convert

    root = tmp_path / "cvat"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for n in sorted(voc["truth"])[:6]:
        shutil.copy(voc["src"] / n, root / "JPEGImages" / n)
        xml = etree.fromstring((voc["src"] / n.replace(".jpg", ".xml")).read_bytes())
        xml.find("folder").text = "JPEGImages"
        xml.remove(xml.find("path"))
        for obj in xml.iter("object"):
            etree.SubElement(obj, "occluded").text = "0"
            for c in obj.find("bndbox"):
                c.text = "{:.2f}".format(float(c.text) + 0.25)
        (root / "Annotations" / n.replace(".jpg", ".xml")).write_bytes(etree.tostring(xml))
    lm = tmp_path / "label_map.pbtxt"
    lm.write_text("item {\n  id: 7\n  name: 'dog'\n}\nitem {\n  id: 3\n  name: \"cat\"\n}\n"
                  "item {\n  id: 5\n  name: \"口罩\"\n}\nitem {\n  id: 9\n  name: 'it\\'s a \"box\"'\n}\n",
                  encoding="utf-8")
    s = convert(str(root), str(tmp_path / "out"), label_map=str(lm), split=1.0, progress=False)
    assert s["images"]["total"] == 6 and s["warnings"] == []
    assert {c["name"]: c["id"] for c in s["classes"]} == {"dog": 7, "cat": 3, "口罩": 5, 'it\'s a "box"': 9}
    ids = {"dog": 7, "cat": 3, "口罩": 5, 'it\'s a "box"': 9}
    for _raw, ex in read_records([str(tmp_path / "out" / "train.record")]):
        name = feat(ex, "image/source_id")[0].decode()
        objs = voc["truth"][name]
        assert feat(ex, "image/object/class/label") == [ids[o["name"]] for o in objs]
        np.testing.assert_allclose(feat(ex, "image/object/bbox/xmin"), [(o["xmin"] + 0.25) / SIZE[0] for o in objs],
                                   rtol=1e-6)
    assert "id: 7" in (tmp_path / "out" / "label_map.pbtxt").read_text(encoding="utf-8")


def test_voc_with_separate_image_folder(voc, tmp_path):
    """labelImg set to save XML in another folder: annotations/ beside images/, or --images DIR."""
    from odrun.convert import convert

    names = sorted(voc["truth"])[:5]
    for sub in ("annotations", "images", "elsewhere"):
        (tmp_path / sub).mkdir()
    for n in names:
        xml = (voc["src"] / n.replace(".jpg", ".xml")).read_text(encoding="utf-8")
        # labelImg's <path> from the annotator's machine: useless here
        xml = re.sub(r"<path>.*</path>", lambda m: "<path>C:\\Users\\me\\Pictures\\{}</path>".format(n), xml)
        (tmp_path / "annotations" / n.replace(".jpg", ".xml")).write_text(xml, encoding="utf-8")
        shutil.copy(voc["src"] / n, tmp_path / "images")
    s = convert(str(tmp_path / "annotations"), str(tmp_path / "out1"), split=1.0, progress=False)
    assert s["images"]["total"] == 5
    shutil.move(str(tmp_path / "images"), str(tmp_path / "elsewhere" / "pics"))
    s = convert(str(tmp_path / "annotations"), str(tmp_path / "out2"), split=1.0, progress=False,
                image_dir=str(tmp_path / "elsewhere" / "pics"))
    assert s["images"]["total"] == 5
    assert (tmp_path / "out1" / "train.record").read_bytes() == (tmp_path / "out2" / "train.record").read_bytes()


def test_cli_uses_the_seeds_train_test_folders(voc, tmp_path):
    """Seed 000's layout (my_test/train, my_test/test with images + labelImg XML) is used as is."""
    names = sorted(voc["truth"])
    for split, part in (("train", names[:4]), ("test", names[4:6])):
        (tmp_path / "my_test" / split).mkdir(parents=True)
        for n in part:
            for f in (n, n.replace(".jpg", ".xml")):
                shutil.copy(voc["src"] / f, tmp_path / "my_test" / split / f)
    proc = run_cli("odrun", "convert", tmp_path / "my_test", "--out", tmp_path / "data", "--json", check=0)
    s = json.loads(proc.stdout)
    assert (s["split"], s["images"]["train"], s["images"]["test"]) == ("folders", 4, 2)
    assert "using the existing train/ and test/ folders" in proc.stderr
    proc = run_cli("odrun", "convert", tmp_path / "my_test", "--out", tmp_path / "data2", "--split", "0.5",
                   "--json", check=0)
    assert json.loads(proc.stdout)["images"] == {"train": 3, "test": 3, "total": 6, "negatives": 0}


def test_convert_imports_no_tensorflow_pandas_numpy_matplotlib(tmp_path):
    """The whole `odrun convert` of a VOC folder, report.png included, loads none of them (they were
    most of a short convert's time: bench/README.md, convert_cli)."""
    synth.generate(str(tmp_path / "img"), count=6, seed=3)
    code = ("import sys; from odrun import cli\n"
            "try:\n    cli.main(['convert', sys.argv[1], '--out', sys.argv[2], '--json', '--workers', '1'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = [m for m in ('tensorflow', 'pandas', 'numpy', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "img"), str(tmp_path / "out")], check=True,
                   timeout=300, stdout=subprocess.DEVNULL)
    with Image.open(str(tmp_path / "out" / "report.png")) as im:
        assert im.size == (1280, 960) and len(set(im.convert("L").getdata())) > 50


def test_report_without_a_truetype_font(tmp_path, monkeypatch):
    """No DejaVu Sans (no matplotlib, no system fonts): the report is drawn with Pillow's bitmap font."""
    from odrun.convert import plot, report
    synth.generate(str(tmp_path / "img"), count=6, seed=5)
    summary = json.loads(run_cli("odrun", "convert", tmp_path / "img", "--out", tmp_path / "out", "--json",
                                 check=0).stdout)
    monkeypatch.setattr(plot, "_font_path", lambda: None)
    monkeypatch.setattr(plot, "_FONTS", {})
    path, warnings = report.write(str(tmp_path / "out"), summary, out_path=str(tmp_path / "r.png"))
    with Image.open(path) as im:
        assert im.size == (1280, 960) and len(set(im.convert("L").getdata())) > 50
    assert warnings == summary["report"]["warnings"]
