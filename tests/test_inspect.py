"""`odrun inspect` on records that other tools made, run here for real: the OD API's own
`create_pascal_tf_record.py` (python -m, VOCdevkit layout) and tutorial 000's
`generate_tfrecord.py` (tests/fixtures/inspect/, copied from the tutorial text). Clean, they pass
(exit 0); each defect injected alone (TensorFlow's own reader/writer and example_pb2 rewrite one
example) is found, naming the record file and the example index. TF is imported once per module.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import FIXTURES, have_module, require, run_cli
from odcore.errors import UserError
from odrun.convert import inspect as odinspect
from odrun.convert.inspect import records as R
from odrun.tasks.detect import synth

# tensorflow/models research/object_detection/data/pascal_label_map.pbtxt: the 20 VOC classes, ids 1..20
# in this order (the pip wheel of the OD API leaves data/ out, so the test writes it).
VOC = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
       "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
PASCAL_USED = ("cat", "dog", "person")
TUTORIAL_USED = ("nine", "ten", "jack")  # of the six in tutorial 000's class_text_to_int
SIZE = (96, 72)
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=str(cwd), capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, "{} failed:\n{}".format(cmd, proc.stderr[-3000:])


def _pascal(base):
    """36 images through create_pascal_tf_record.py: --set train (24) and --set val (12)."""
    voc = base / "VOCdevkit" / "VOC2012"
    src = base / "pascal_src"
    synth.make_voc(str(src), 36, classes=PASCAL_USED, size=SIZE, seed=1)
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / d).mkdir(parents=True)
    names = sorted(p.stem for p in src.glob("*.xml"))
    for n in names:
        xml = (src / (n + ".xml")).read_text(encoding="utf-8")
        (voc / "Annotations" / (n + ".xml")).write_text(re.sub(r"<folder>[^<]*</folder>", "<folder>VOC2012</folder>",
                                                               xml), encoding="utf-8")
        shutil.copy(str(src / (n + ".jpg")), str(voc / "JPEGImages" / (n + ".jpg")))
    for split, part in (("train", names[:24]), ("val", names[24:])):
        (voc / "ImageSets" / "Main" / ("aeroplane_" + split + ".txt")).write_text("".join(n + "  1\n" for n in part))
    out = base / "pascal"
    out.mkdir()
    lm = out / "pascal_label_map.pbtxt"
    lm.write_text("".join("item {{\n  id: {}\n  name: '{}'\n}}\n".format(i + 1, n) for i, n in enumerate(VOC)))
    for split in ("train", "val"):
        _run([sys.executable, "-m", "object_detection.dataset_tools.create_pascal_tf_record",
              "--data_dir", str(base / "VOCdevkit"), "--year", "VOC2012", "--set", split,
              "--label_map_path", str(lm), "--output_path", str(out / "pascal_{}.record".format(split))], base)
    return out


def _tutorial(base):
    """30 images through tutorial 000's generate_tfrecord.py, run as the tutorial says: once per folder."""
    work = base / "my_test"
    src = base / "tutorial_src"
    truth = synth.make_voc(str(src), 30, classes=TUTORIAL_USED, size=SIZE, seed=2)
    names = sorted(truth)
    for split, part in (("train", names[:24]), ("test", names[24:])):
        (work / split).mkdir(parents=True)
        rows = ["filename,width,height,class,xmin,ymin,xmax,ymax"]  # xml_to_csv.py's columns
        for n in part:
            shutil.copy(str(src / n), str(work / split / n))
            rows += ["{},{},{},{},{},{},{},{}".format(n, SIZE[0], SIZE[1], o["name"], o["xmin"], o["ymin"],
                                                      o["xmax"], o["ymax"]) for o in truth[n]]
        (work / (split + "_labels.csv")).write_text("\n".join(rows) + "\n")
    shutil.copy(str(FIXTURES / "inspect" / "generate_tfrecord.py.txt"), str(work / "generate_tfrecord.py"))
    out = work / "data"
    out.mkdir()
    shutil.copy(str(FIXTURES / "inspect" / "tutorial000_label_map.pbtxt"), str(out / "label_map.pbtxt"))
    for split in ("train", "test"):
        _run([sys.executable, "generate_tfrecord.py", "--csv_input={}_labels.csv".format(split),
              "--image_dir=" + split, "--output_path=data/{}.record".format(split)], work)
    return out


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")
    base = tmp_path_factory.mktemp("inspect")
    return {"pascal": _pascal(base), "tutorial": _tutorial(base)}


def inject(src, dst, name, change, index=None):
    """Copy the records folder src to dst, with example `index` (None: every example) of record
    file `name` rewritten by change(example) through TensorFlow's reader, example_pb2 and writer."""
    import tensorflow as tf
    from tensorflow.core.example import example_pb2

    shutil.copytree(str(src), str(dst))
    path = str(dst / name)
    raws = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    with tf.io.TFRecordWriter(path) as w:
        for i, raw in enumerate(raws):
            if index is None or i == index:
                ex = example_pb2.Example()
                ex.ParseFromString(raw)
                change(ex)
                raw = ex.SerializeToString()
            w.write(raw)
    return dst


def feature(ex, key):
    return ex.features.feature[key]


def errors(result):
    return [f for f in result["findings"] if f["level"] == "error"]


def one_error(result, check, name, index):
    found = errors(result)
    assert not result["ok"] and len(found) == 1, json.dumps(found, indent=1)
    f = found[0]
    assert (f["check"], os.path.basename(f["file"]), f["index"]) == (check, name, index), f
    return f


# clean peer records pass


def test_clean_create_pascal_tf_record(peers):
    proc = run_cli("odrun", "inspect", peers["pascal"], "--json", check=0)
    r = json.loads(proc.stdout)
    assert r["ok"] and r["errors"] == 0 and r["examples"] == 36 and r["decoded"]
    assert [(f["split"], f["examples"]) for f in r["files"]] == [("train", 24), ("test", 12)]
    used = {c["name"]: c for c in r["classes"] if c["train_boxes"] or c["test_boxes"]}
    assert sorted(used) == sorted(PASCAL_USED) and all(c["test_boxes"] for c in used.values())
    assert {c["name"]: c["id"] for c in used.values()} == {n: VOC.index(n) + 1 for n in PASCAL_USED}
    assert [f["check"] for f in r["findings"]] == ["balance", "size"]  # 17 VOC classes unused; 96x72 < 300
    assert os.path.getsize(r["report"]) > 10000 and r["report"] == str(peers["pascal"] / "report.png")


def test_clean_generate_tfrecord(peers, tmp_path):
    d = peers["tutorial"]
    proc = run_cli("odrun", "inspect", d / "train.record", d / "test.record", "--label-map", d / "label_map.pbtxt",
                   "--report", tmp_path / "r.png", "--image-size", "64", check=0)
    assert "OK" in proc.stdout and "30 examples" in proc.stdout and (tmp_path / "r.png").exists()
    assert "error" not in proc.stderr
    assert "3 of the label map's 6 classes no box has: 'queen' (id 4), 'king' (id 5), 'ace' (id 6)" in proc.stderr


def test_tf_free_reader_matches_example_pb2(peers):
    """records.py's frames + parse_example give what TensorFlow's reader and example_pb2 give."""
    import tensorflow as tf
    from tensorflow.core.example import example_pb2

    for path in (peers["pascal"] / "pascal_train.record", peers["tutorial"] / "test.record"):
        buf = R.open_map(str(path))
        ours = [R.parse_example(buf, s, e) for _i, s, e in R.frames(buf)]
        theirs = []
        for raw in tf.data.TFRecordDataset(str(path)):
            ex = example_pb2.Example()
            ex.ParseFromString(raw.numpy())
            theirs.append(ex)
        assert len(ours) == len(theirs) > 0
        for mine, ex in zip(ours, theirs):
            assert sorted(mine) == sorted(ex.features.feature)
            for key, (kind, values) in mine.items():
                want = list(getattr(feature(ex, key), kind + "_list").value)
                got = [bytes(buf[a:b]) for a, b in values] if kind == "bytes" else values
                assert got == want, key


# each defect alone


def test_label_id_zero(peers, tmp_path):
    d = inject(peers["tutorial"], tmp_path / "d", "train.record",
               lambda ex: feature(ex, "image/object/class/label").int64_list.value.__setitem__(0, 0), index=3)
    f = one_error(odinspect.inspect([str(d)]), "class", "train.record", 3)
    assert "class id 0" in f["message"] and "background" in f["message"] and f["object"] == "box #0"


def test_id_text_disagreement(peers, tmp_path):
    def change(ex):
        labels = feature(ex, "image/object/class/label").int64_list.value
        labels[0] = VOC.index("person") + 1 if labels[0] != VOC.index("person") + 1 else VOC.index("cat") + 1
    d = inject(peers["pascal"], tmp_path / "d", "pascal_val.record", change, index=5)
    f = one_error(odinspect.inspect([str(d)]), "class", "pascal_val.record", 5)
    assert "the record says" in f["message"] and "text's id" in f["message"]


def test_unnormalised_boxes(peers, tmp_path):
    def change(ex):
        for key, scale in (("xmin", SIZE[0]), ("xmax", SIZE[0]), ("ymin", SIZE[1]), ("ymax", SIZE[1])):
            values = feature(ex, "image/object/bbox/" + key).float_list.value
            values[:] = [v * scale for v in values]
    d = inject(peers["tutorial"], tmp_path / "d", "test.record", change, index=2)
    found = errors(odinspect.inspect([str(d)]))
    assert found and all((f["check"], os.path.basename(f["file"]), f["index"]) == ("box", "test.record", 2)
                         for f in found)
    assert "not normalised" in found[0]["message"] and "pixel" in found[0]["message"]


def test_flipped_boxes(peers, tmp_path):
    def change(ex):
        xmin, xmax = (feature(ex, "image/object/bbox/" + k).float_list.value for k in ("xmin", "xmax"))
        xmin[0], xmax[0] = xmax[0], xmin[0]
    d = inject(peers["pascal"], tmp_path / "d", "pascal_train.record", change, index=7)
    f = one_error(odinspect.inspect([str(d)]), "box", "pascal_train.record", 7)
    assert f["message"].startswith("flipped") and f["object"] == "box #0"


def test_degenerate_and_outside_boxes(peers, tmp_path):
    def change(ex):
        xmin, xmax = (feature(ex, "image/object/bbox/" + k).float_list.value for k in ("xmin", "xmax"))
        xmax[0] = xmin[0]
    d = inject(peers["tutorial"], tmp_path / "d", "train.record", change, index=0)
    assert "degenerate" in one_error(odinspect.inspect([str(d)]), "box", "train.record", 0)["message"]
    d = inject(peers["tutorial"], tmp_path / "e", "train.record",
               lambda ex: feature(ex, "image/object/bbox/ymax").float_list.value.__setitem__(0, 1.2), index=1)
    assert "outside the image" in one_error(odinspect.inspect([str(d)]), "box", "train.record", 1)["message"]


def test_undecodable_image(peers, tmp_path):
    """A truncated JPEG (as a partial download leaves it): its header reads, only the OD API's decoder fails."""
    def change(ex):
        data = feature(ex, "image/encoded").bytes_list.value[0]
        sos = data.index(b"\xff\xda")  # start of scan: the header is whole, the pixel data cut
        feature(ex, "image/encoded").bytes_list.value[0] = data[:sos + (len(data) - sos) // 2]
    d = inject(peers["tutorial"], tmp_path / "d", "test.record", change, index=4)
    f = one_error(odinspect.inspect([str(d)]), "image", "test.record", 4)
    assert "does not decode with the OD API's decoder" in f["message"] and "function_node" not in f["message"]
    d = inject(peers["pascal"], tmp_path / "e", "pascal_val.record",
               lambda ex: feature(ex, "image/encoded").bytes_list.value.__setitem__(0, b"not an image"), index=0)
    assert "not an image" in one_error(odinspect.inspect([str(d)]), "image", "pascal_val.record", 0)["message"]


def test_class_missing_from_test(peers, tmp_path):
    def change(ex):  # every dog in the val set becomes a cat (text and id)
        texts = feature(ex, "image/object/class/text").bytes_list.value
        labels = feature(ex, "image/object/class/label").int64_list.value
        for i, t in enumerate(texts):
            if t == b"dog":
                texts[i], labels[i] = b"cat", VOC.index("cat") + 1
    d = inject(peers["pascal"], tmp_path / "d", "pascal_val.record", change)
    f = one_error(odinspect.inspect([str(d)]), "balance", "pascal_label_map.pbtxt", None)
    assert re.search(r"class 'dog' has \d+ boxes in train and none in test", f["message"])


def test_duplicate_image(peers, tmp_path):
    import tensorflow as tf
    first = next(iter(tf.data.TFRecordDataset(str(peers["tutorial"] / "train.record")))).numpy()
    from tensorflow.core.example import example_pb2
    ex0 = example_pb2.Example()
    ex0.ParseFromString(first)
    image = feature(ex0, "image/encoded").bytes_list.value[0]
    d = inject(peers["tutorial"], tmp_path / "d", "test.record",
               lambda ex: feature(ex, "image/encoded").bytes_list.value.__setitem__(0, image), index=1)
    f = one_error(odinspect.inspect([str(d)]), "duplicate", "train.record", 0)
    assert "test.record[1]" in f["message"] and "in train and in test" in f["message"]


def test_empty_image(peers, tmp_path):
    d = inject(peers["tutorial"], tmp_path / "d", "train.record",
               lambda ex: feature(ex, "image/encoded").bytes_list.value.__setitem__(0, b""), index=6)
    assert "image/encoded is empty" in one_error(odinspect.inspect([str(d)]), "image", "train.record", 6)["message"]

    def no_boxes(ex):
        for key in ("bbox/xmin", "bbox/xmax", "bbox/ymin", "bbox/ymax", "class/text", "class/label"):
            del ex.features.feature["image/object/" + key]
    d = inject(peers["tutorial"], tmp_path / "e", "train.record", no_boxes, index=8)
    r = odinspect.inspect([str(d)])  # a negative example: a warning, an error with --strict
    assert r["ok"] and [(f["check"], f["index"]) for f in r["findings"] if f["check"] == "empty"] == [("empty", 8)]
    strict = odinspect.inspect([str(d)], strict=True)
    assert not strict["ok"] and [f["level"] for f in strict["findings"] if f["check"] == "empty"] == ["error"]


def test_damaged_record_file_and_label_map(peers, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(str(peers["tutorial"]), str(d))
    size = os.path.getsize(str(d / "train.record"))
    with open(str(d / "train.record"), "r+b") as f:
        f.truncate(size - 100)  # as a partial copy leaves it
    (d / "label_map.pbtxt").write_text((d / "label_map.pbtxt").read_text() + "item {\n  id: 0\n  name: 'joker'\n}\n")
    r = odinspect.inspect([str(d)])
    got = sorted((f["check"], os.path.basename(f["file"]), f["index"]) for f in errors(r))
    assert got == [("label_map", "label_map.pbtxt", None), ("record", "train.record", 23)], got


# the command: exit codes, and `odrun train` refusing before TensorFlow starts


def test_cli_exit_1_names_file_and_index(peers, tmp_path):
    d = inject(peers["tutorial"], tmp_path / "d", "train.record",
               lambda ex: feature(ex, "image/object/class/label").int64_list.value.__setitem__(0, 0), index=3)
    proc = run_cli("odrun", "inspect", d, "--no-decode", check=1)
    assert re.search(r"error: \S*train\.record\[3\]: box #0: class id 0", proc.stderr), proc.stderr
    assert "NOT OK" in proc.stdout


def test_cli_bad_input_exit_2(peers, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no record files" in run_cli("odrun", "inspect", tmp_path / "empty", check=2).stderr
    assert "not found" in run_cli("odrun", "inspect", tmp_path / "nope", check=2).stderr
    rec = tmp_path / "train.record"
    shutil.copy(str(peers["tutorial"] / "train.record"), str(rec))
    assert "--label-map" in run_cli("odrun", "inspect", rec, check=2).stderr
    jpeg = tmp_path / "x.record"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    assert "not a TFRecord file" in run_cli("odrun", "inspect", jpeg, "--label-map",
                                            peers["tutorial"] / "label_map.pbtxt", check=2).stderr


def test_train_refuses_bad_records_before_tensorflow(peers, tmp_path):
    d = inject(peers["tutorial"], tmp_path / "d", "test.record",
               lambda ex: feature(ex, "image/object/bbox/xmax").float_list.value.__setitem__(0, 80.0), index=2)
    proc = run_cli("odrun", "train", "--data", d, "--workdir", tmp_path / "run", "--steps", "1", check=2)
    assert re.search(r"test\.record\[2\]: box #0: not normalised", proc.stderr), proc.stderr
    assert "odrun inspect" in proc.stderr and not (tmp_path / "run" / "pipeline.config").exists()


def test_before_training_is_tf_free(peers):
    """The cheap pass passes clean records, and imports neither TensorFlow nor reads the images."""
    d = peers["tutorial"]
    code = ("import sys; from odrun.convert import inspect as i; i.before_training([{!r}, {!r}], {!r}, 'x'); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'".format(
                str(d / "train.record"), str(d / "test.record"), str(d / "label_map.pbtxt")))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    with pytest.raises(UserError) as err:
        odinspect.before_training([str(d / "train.record")], str(peers["pascal"] / "pascal_label_map.pbtxt"), "x")
    assert "class text 'nine' is not in the label map" in err.value.message


def test_label_map_gaps_duplicates_and_ids_not_in_it(peers, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(str(peers["tutorial"]), str(d))
    text = (d / "label_map.pbtxt").read_text()
    text = text.replace("item {\n  id: 3\n  name: 'jack'\n}\n", "")  # the tutorial's ids 1, 2, 4, 5, 6 remain
    (d / "label_map.pbtxt").write_text(text + "item {\n  id: 2\n  name: 'ten of hearts'\n}\n")
    r = odinspect.inspect([str(d)], decode_images=False)
    lm = [(f["level"], f["message"]) for f in r["findings"] if f["check"] == "label_map"]
    assert ("error", "id 2 is used twice ('ten' and 'ten of hearts'): the OD API keeps the last") in lm
    assert any(level == "warning" and msg.startswith("id 3 is missing: num_classes is the largest id (6)") for level, msg in lm), lm
    jack = [f for f in errors(r) if f["check"] == "class"]
    assert jack and all("not in the label map" in f["message"] for f in jack)
    assert {"class id 3 is not in the label map", "class text 'jack' is not in the label map"} <= {
        f["message"].split(" (")[0] for f in jack}
