"""`odrun convert` reads YOLO text datasets: the records, read back with the OD API's own decoder,
hold the boxes and classes that globox (YOLO) and label-studio-converter (Label Studio JSON) convert
the same real exports to, within 1 px."""
import json
import re
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


LS_FIXTURE = FIXTURE.parent / "labelstudio_real"


def _ls_dataset(tmp_path, export):
    """The export's images are not in its repository: blank JPEGs of its original_width x height."""
    from PIL import Image
    src = tmp_path / "ls"
    src.mkdir()
    shutil.copy(LS_FIXTURE / export, src / "export.json")
    for task in json.loads((LS_FIXTURE / export).read_text()):
        r = task["annotations"][0]["result"][0]
        name = task["data"]["image"].strip("/") + ".jpg"
        Image.new("RGB", (r["original_width"], r["original_height"]), (90, 120, 150)).save(src / name, quality=80)
    return src


@pytest.mark.parametrize("export,config", [("data.json", "label_config.xml"),
                                           ("data_polygons.json", "label_config_polygons.xml")])
def test_labelstudio_records_match_label_studio_converter(tmp_path, export, config):
    try:
        from label_studio_converter import Converter
    except ImportError:
        require(False, "label-studio-converter not installed")
    src = _ls_dataset(tmp_path, export)
    out = tmp_path / "data"
    proc = run_cli("odrun", "convert", src / "export.json", "--out", out, "--json", "--split", "1.0")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["format"] == "labelstudio"
    ref = tmp_path / "ref"
    Converter(config=(LS_FIXTURE / config).read_text(), project_dir=None, download_resources=False).convert_to_coco(
        str(src / "export.json"), str(ref), is_dir=False)
    data = json.loads((ref / "result.json").read_text())
    cats = {c["id"]: c["name"] for c in data["categories"]}
    ids = {c["name"]: c["id"] for c in summary["classes"]}
    got = {name.split(".")[0]: v for name, v in _decode_all(out).items()}
    stem = {im["id"]: im["file_name"].strip("/").split("/")[-1].split(".")[0] for im in data["images"]}
    assert sorted(got) == sorted(set(stem.values()))  # (it lists an image once more per annotation pass)
    for name in got:
        anns = [a for a in data["annotations"] if stem[a["image_id"]] == name]
        want = np.array([[a["bbox"][1], a["bbox"][0], a["bbox"][1] + a["bbox"][3], a["bbox"][0] + a["bbox"][2]]
                         for a in anns])
        boxes, classes = got[name]
        # label-studio-converter writes every annotation of a task, the most recent first; odrun reads that one
        task = next(t for t in json.loads((LS_FIXTURE / export).read_text()) if t["data"]["image"].strip("/") == name)
        latest = max(task["annotations"], key=lambda a: a.get("created_at", ""))
        assert len(boxes) == len(latest["result"]) > 0
        np.testing.assert_allclose(boxes, want[:len(boxes)], atol=1.0)
        assert classes == [ids[cats[a["category_id"]]] for a in anns[:len(boxes)]]


def test_yolo_data_yaml_dict_names_and_splits_kept(tmp_path):
    """Ultralytics layout: images/{train,val} + labels/{train,val} + data.yaml (names as a dict)."""
    src = tmp_path / "ds"
    for split, stem in (("train", "img_1"), ("val", "img_5")):
        (src / "images" / split).mkdir(parents=True)
        (src / "labels" / split).mkdir(parents=True)
        shutil.copy(FIXTURE / "images" / (stem + ".jpg"), src / "images" / split)
        shutil.copy(FIXTURE / "labels" / (stem + ".txt"), src / "labels" / split)
    names = (FIXTURE / "classes.txt").read_text().split()
    (src / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n" +
                                   "".join("  {}: {}\n".format(i, n) for i, n in enumerate(names)))
    out = tmp_path / "out"
    proc = run_cli("odrun", "convert", src, "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert (s["format"], s["split"], s["images"]["train"], s["images"]["test"]) == ("yolo", 0.8, 1, 1)
    got = _decode_all(out)
    assert sorted(got) == ["img_1.jpg", "img_5.jpg"]
    assert [c["name"] for c in s["classes"]] == names


def test_yolo_data_yaml_image_lists_and_folder_lists(tmp_path):
    """Ultralytics' other forms of train/val: a .txt list of image paths (`./x` relative to the list,
    as its coco.yaml's train2017.txt) and a list of folders; a listed image that is missing is exit 2
    naming the list file and its line."""
    src = tmp_path / "ds"
    for sub in ("a", "b"):
        (src / "images" / sub).mkdir(parents=True)
        (src / "labels" / sub).mkdir(parents=True)
    for stem, sub in (("img_1", "a"), ("img_5", "b")):
        shutil.copy(FIXTURE / "images" / (stem + ".jpg"), src / "images" / sub)
        shutil.copy(FIXTURE / "labels" / (stem + ".txt"), src / "labels" / sub)
    (src / "train.txt").write_text("./images/a/img_1.jpg\n")
    (src / "val.txt").write_text("images/b/img_5.jpg\n\n")
    names = (FIXTURE / "classes.txt").read_text().split()
    yaml_head = "path: .\nnames: [{}]\n".format(", ".join(names))
    (src / "data.yaml").write_text(yaml_head + "train: train.txt\nval: [val.txt]\n")
    out = tmp_path / "out"
    s = json.loads(run_cli("odrun", "convert", src, "--out", out, "--json", check=0).stdout)
    assert (s["format"], s["images"]["train"], s["images"]["test"]) == ("yolo", 1, 1)
    got = _decode_all(out)
    assert sorted(got) == ["img_1.jpg", "img_5.jpg"]
    assert [len(got["img_1.jpg"][0]), len(got["img_5.jpg"][0])] == [
        sum(1 for line in (FIXTURE / "labels" / (stem + ".txt")).read_text().splitlines() if line.strip())
        for stem in ("img_1", "img_5")]

    (src / "images" / "c").mkdir()
    (src / "labels" / "c").mkdir()
    shutil.copy(FIXTURE / "images" / "img_1.jpg", src / "images" / "c" / "img_9.jpg")
    shutil.copy(FIXTURE / "labels" / "img_1.txt", src / "labels" / "c" / "img_9.txt")
    (src / "data.yaml").write_text(yaml_head + "train: [images/a, images/c]\nval: images/b\n")
    s = json.loads(run_cli("odrun", "convert", src, "--out", tmp_path / "out2", "--json", check=0).stdout)
    assert (s["images"]["train"], s["images"]["test"]) == (2, 1)

    (src / "val.txt").write_text("images/b/img_5.jpg\n./images/b/gone.jpg\n")
    (src / "data.yaml").write_text(yaml_head + "train: train.txt\nval: val.txt\n")
    err = run_cli("odrun", "convert", src, "--out", tmp_path / "out3", check=2).stderr
    assert re.search(r"val\.txt: line 2: image './images/b/gone\.jpg' not found", err), err
    assert not (tmp_path / "out3").exists()

    (src / "data.yaml").write_text(yaml_head + "train: images/a/img_1.jpg\nval: images/nope\n")
    err = run_cli("odrun", "convert", src, "--out", tmp_path / "out3", check=2).stderr
    assert "data.yaml: train: 'images/a/img_1.jpg' is neither a folder nor a .txt list" in err, err
    assert "data.yaml: val: 'images/nope' not found" in err, err


def test_bad_labelstudio_json_exit_2_names_file_and_line(tmp_path):
    """A syntax error and a bad result in the real export: exit 2, the file and its line named."""
    src = _ls_dataset(tmp_path, "data.json")
    export = src / "export.json"
    lines = export.read_text().splitlines(keepends=True)
    bad_line = next(n for n, line in enumerate(lines, start=1) if '"width"' in line)
    broken = list(lines)
    broken[bad_line - 1] = broken[bad_line - 1].replace('"width"', '"width" "x"')
    export.write_text("".join(broken))
    out = tmp_path / "out"
    err = run_cli("odrun", "convert", export, "--out", out, check=2).stderr
    assert re.search(r"export\.json: line {} column \d+: cannot parse Label Studio JSON".format(bad_line), err), err

    tasks = json.loads("".join(lines))
    tasks[1]["annotations"][0]["result"][0]["value"]["x"] = "left"
    export.write_text(json.dumps(tasks, indent=4))
    at = next(n for n, line in enumerate(export.read_text().splitlines(), start=1) if '"left"' in line)
    err = run_cli("odrun", "convert", export, "--out", out, check=2).stderr
    m = re.search(r"export\.json: line (\d+): task #2 \(id 2\) result #1: rectanglelabels needs numeric", err)
    assert m and int(m.group(1)) < at < int(m.group(1)) + 20, err  # the line of that result's `{`
    assert not out.exists()
