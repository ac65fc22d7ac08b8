"""Issue 11: hostile and broken input, one test per defect (each failed on the main before the
fix). The CLI runs in-process (odcore.cli.run with odrun's/provision's real parsers), so one
TensorFlow import serves the module; nothing here trains a model.

Fixtures are HAND-MADE: synthetic VOC images from odrun.tasks.detect.synth, a real `odrun convert` output,
and run/export directories laid out as `odrun train`/`odrun export` leave them, with FAKE
checkpoint files (a 48-byte table footer with TensorFlow's magic number, no tensors): every case
is refused before TensorFlow would read them.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import have_module, require
from odrun.tasks.detect import synth

INDEX_MAGIC = bytes.fromhex("57fb808b247547db")  # kTableMagicNumber, tensorflow/core/lib/io/format.h


@pytest.fixture(autouse=True)
def _needs_odapi():
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")


def snapshot(path):
    """{relative path: sha256 or 'dir'} of everything under path (symlinks not followed)."""
    out = {}
    path = str(path)
    if not os.path.exists(path):
        return None
    for root, dirs, files in os.walk(path):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), path)] = "dir"
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = hashlib.sha256(fh.read()).hexdigest()
    return out


_PARSERS = {}


def cli(capsys, prog, *argv):
    """(exit code, stderr) of `prog ARGV` run in-process through the real parser."""
    from odcore.cli import run
    if prog not in _PARSERS:
        mod = __import__(prog + ".cli", fromlist=["build_parser"])
        _PARSERS[prog] = mod.build_parser()
    capsys.readouterr()
    code = run(_PARSERS[prog], [str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def refused(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err
    for frag in fragments:
        assert str(frag) in err, "{!r} not in:\n{}".format(frag, err)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def voc_src(base):
    synth.make_voc(str(base / "src"), 6, classes=("cat", "dog"), seed=3)
    return base / "src"


@pytest.fixture(scope="module")
def data(base, voc_src):
    from odrun.convert import convert
    convert(str(voc_src), str(base / "data"), progress=False, split=0.5)
    return base / "data"


def fake_checkpoint(run_dir, step, prefix="ckpt"):
    """HAND-MADE checkpoint files: a well-formed (empty) table footer, a few data bytes."""
    name = "{}-{}".format(prefix, step)
    (run_dir / (name + ".index")).write_bytes(b"\0" * 40 + INDEX_MAGIC)
    (run_dir / (name + ".data-00000-of-00001")).write_bytes(b"\0" * 16)
    (run_dir / "checkpoint").write_text('model_checkpoint_path: "{0}"\nall_model_checkpoint_paths: "{0}"\n'
                                        .format(name))


@pytest.fixture
def ssd_run(tmp_path, data):
    """A run directory as `odrun train --model ssd_mobilenet_v2` leaves it after 2 steps (old
    layout: run.json without an identity), with fake checkpoint files."""
    from odrun.tasks.detect.config import pipeline as pc
    run = tmp_path / "run"
    run.mkdir()
    config = pc.load(pc.template_path("tf2", "ssd_mobilenet_v2"))
    pc.fill(config, num_classes=2, train_record=[str(data / "train.record")], eval_record=[str(data / "test.record")],
            label_map=str(data / "label_map.pbtxt"), batch_size=2, num_steps=2)
    pc.save(config, str(run / "pipeline.config"))
    (run / "run.json").write_text(json.dumps({"api": "tf2", "checkpoint_every": 100, "num_steps": 2}))
    (run / "train").mkdir()
    (run / "train" / "events.out.tfevents.1.host").write_bytes(b"\0" * 8)
    fake_checkpoint(run, 2)
    return run


@pytest.fixture
def export_dir(tmp_path):
    """An export directory's metadata.json as `odrun export` writes it (no SavedModel: every
    case below is refused before the model is loaded)."""
    exp = tmp_path / "export"
    exp.mkdir()
    (exp / "metadata.json").write_text(json.dumps({"api": "tf2", "arch": "ssd", "step": 2,
                                                   "classes": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}))
    return exp


# ----------------------------------------------------------------------------- 1-4 data loss
def test_1_export_over_its_run_dir_is_refused(capsys, ssd_run):
    before = snapshot(ssd_run)
    code, err = cli(capsys, "odrun", "export", "--workdir", ssd_run, "--out", ssd_run, "--api", "tf2")
    refused(code, err, "--out", "is the same location as", str(ssd_run), "fix:")
    code, err = cli(capsys, "odrun", "export", "--workdir", ssd_run, "--out", ssd_run / "export", "--api", "tf2")
    refused(code, err, "lies inside")
    code, err = cli(capsys, "odrun", "export", "--workdir", ssd_run, "--out", ssd_run.parent, "--api", "tf2")
    refused(code, err, "contains")
    assert snapshot(ssd_run) == before


def test_2_convert_csv_into_its_own_folder_is_refused(capsys, tmp_path, voc_src, data):
    some = tmp_path / "some"
    some.mkdir()
    for f in voc_src.glob("*.jpg"):
        shutil.copy(str(f), str(some))
    shutil.copy(str(data / "train_labels.csv"), str(some))
    before = snapshot(some)
    code, err = cli(capsys, "odrun", "convert", some / "train_labels.csv", "--out", some)
    refused(code, err, "--out", "train_labels.csv", "fix:")
    link = tmp_path / "link"
    link.symlink_to(some)  # the same folder through a symlink
    code, err = cli(capsys, "odrun", "convert", some / "train_labels.csv", "--out", link)
    refused(code, err, "--out")
    assert snapshot(some) == before


def test_3_detect_into_its_photo_folder_is_refused(capsys, tmp_path, export_dir):
    photos = tmp_path / "photos"
    synth.make_voc(str(photos), 2, fmt="PNG", seed=5)
    before = snapshot(photos)
    code, err = cli(capsys, "odrun", "detect", "--model", export_dir, photos, "--out", photos)
    refused(code, err, "--out", str(photos))
    code, err = cli(capsys, "odrun", "detect", "--model", export_dir, photos / "img_00000.png",
                    "--out", photos)
    refused(code, err, "contains", "img_00000.png")
    assert snapshot(photos) == before


def test_4_train_another_model_into_a_run_is_refused(capsys, ssd_run, data):
    before = snapshot(ssd_run)
    code, err = cli(capsys, "odrun", "train", "--data", data, "--workdir", ssd_run, "--model", "faster_rcnn_resnet50",
                    "--steps", "4", "--api", "tf2")
    refused(code, err, "different training", "--new-run", str(ssd_run))
    assert snapshot(ssd_run) == before


def test_4_identity_recorded_and_new_run_moves_the_old_run_aside(tmp_path, ssd_run, data):
    import argparse
    from odrun.tasks.detect.config import pipeline as pc
    from odrun.workdir import rundir
    from odcore.errors import UserError
    config = pc.load(pc.template_path("tf2", "faster_rcnn_resnet50"))
    pc.fill(config, num_classes=2, train_record=[str(data / "train.record")], eval_record=[str(data / "test.record")],
            label_map=str(data / "label_map.pbtxt"))
    args = argparse.Namespace(workdir=str(ssd_run), data=str(data), config=None, model="faster_rcnn_resnet50",
                              resume=False, new_run=False)
    with pytest.raises(UserError):
        rundir.prepare_train(args, "tf2", config)
    args.new_run = True
    before = snapshot(ssd_run)
    previous, settings = rundir.prepare_train(args, "tf2", config)
    assert previous is None and not ssd_run.exists()
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(moved) == 1 and snapshot(moved[0]) == before  # nothing deleted
    ident = settings["identity"]
    assert ident["model"] == "faster_rcnn_resnet50" and ident["api"] == "tf2"
    assert ident["label_map_sha256"] == hashlib.sha256((data / "label_map.pbtxt").read_bytes()).hexdigest()


def _real_checkpoint(run_dir, step, names):
    """A REAL (tiny) TF2 checkpoint whose variables carry the names an OD API meta-arch gives them
    (tf.train.Checkpoint(model=...) as model_lib_v2 saves it; see odrun/data/checkpoint_arch.yaml)."""
    import tensorflow as tf
    model = tf.train.Checkpoint()
    for attr in names:
        setattr(model, attr, tf.train.Checkpoint(kernel=tf.Variable(tf.zeros([3]))))
    name = "ckpt-{}".format(step)
    tf.train.Checkpoint(model=model).write(str(run_dir / name))
    (run_dir / "checkpoint").write_text('model_checkpoint_path: "{0}"\nall_model_checkpoint_paths: "{0}"\n'
                                        .format(name))


def test_4_checkpoints_alone_are_evidence_of_another_model(capsys, tmp_path, data):
    """SSD checkpoints, run.json and pipeline.config gone: `--model faster_rcnn_resnet50` must not
    "resume" them (it wrote a Faster R-CNN ckpt-301 beside the SSD ones, exit 0)."""
    from odrun.workdir import rundir
    run = tmp_path / "run"
    run.mkdir()
    _real_checkpoint(run, 300, ["_box_predictor", "_feature_extractor"])
    assert rundir.checkpoint_arch(str(run / "ckpt-300")) == "ssd"
    before = snapshot(run)
    code, err = cli(capsys, "odrun", "train", "--data", data, "--workdir", run, "--model", "faster_rcnn_resnet50",
                    "--steps", "301", "--api", "tf2")
    refused(code, err, "checkpoints of a ssd model", "builds a faster_rcnn model", "ckpt-300", "--new-run")
    assert snapshot(run) == before
    other = tmp_path / "frcnn"
    other.mkdir()
    _real_checkpoint(other, 5, ["_first_stage_box_predictor", "_feature_extractor"])
    assert rundir.checkpoint_arch(str(other / "ckpt-5")) == "faster_rcnn"


def test_one_step_parser():
    from odrun.workdir.rundir import step_of
    assert [step_of(p) for p in ("/r/ckpt-12", "/r/model.ckpt-300", "/r/model.ckpt", "/r/ckpt-0", None)] == \
        [12, 300, None, 0, None]


# ----------------------------------------------------------------------------- 5-8 bad data
def _voc_one(folder, xmin="5", size=("96", "72"), difficult="0", filename="img_00000.jpg", image=True):
    folder.mkdir(parents=True, exist_ok=True)
    if image:
        synth.make_voc(str(folder / "_img"), 1, seed=1)
        shutil.move(str(folder / "_img" / "img_00000.jpg"), str(folder / "img_00000.jpg"))
        shutil.rmtree(str(folder / "_img"))
    (folder / "a.xml").write_text(
        "<annotation><filename>{}</filename><size><width>{}</width><height>{}</height></size>"
        "<object><name>cat</name><difficult>{}</difficult><bndbox><xmin>{}</xmin><ymin>5</ymin>"
        "<xmax>40</xmax><ymax>30</ymax></bndbox></object></annotation>".format(filename, size[0], size[1],
                                                                             difficult, xmin))
    return folder


def _coco(folder, images=None, annotations=None, categories=None, raw=None):
    folder.mkdir(parents=True, exist_ok=True)
    synth.make_voc(str(folder / "_img"), 1, seed=1)
    shutil.move(str(folder / "_img" / "img_00000.jpg"), str(folder / "img_00000.jpg"))
    shutil.rmtree(str(folder / "_img"))
    doc = {"images": [{"id": 1, "file_name": "img_00000.jpg", "width": 96, "height": 72}] if images is None else images,
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 30, 20]}]
           if annotations is None else annotations,
           "categories": [{"id": 1, "name": "cat"}] if categories is None else categories}
    (folder / "instances.json").write_text(raw if raw is not None else json.dumps(doc))
    return folder / "instances.json"


def _csv(folder, rows, image=True):
    folder.mkdir(parents=True, exist_ok=True)
    if image:
        synth.make_voc(str(folder / "_img"), 1, seed=1)
        shutil.move(str(folder / "_img" / "img_00000.jpg"), str(folder / "img_00000.jpg"))
        shutil.rmtree(str(folder / "_img"))
    lines = ["filename,width,height,class,xmin,ymin,xmax,ymax"] + rows
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder / "labels.csv"


def test_5_nan_coordinates_are_refused_in_every_format(capsys, tmp_path):
    voc = _voc_one(tmp_path / "voc", xmin="nan")
    coco = _coco(tmp_path / "coco", raw=json.dumps({
        "images": [{"id": 1, "file_name": "img_00000.jpg", "width": 96, "height": 72}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [float("nan"), 5, 30, 20]}],
        "categories": [{"id": 1, "name": "cat"}]}))
    csv = _csv(tmp_path / "csv", ["img_00000.jpg,96,72,cat,nan,5,40,30"])
    for source, where in ((voc, "a.xml: object #1 'cat'"), (coco, "instances.json: annotation id 7"),
                          (csv, "labels.csv: line 2 'cat'")):
        for extra in ((), ("--strict",)):
            out = tmp_path / ("out-" + source.parent.name)
            code, err = cli(capsys, "odrun", "convert", source, "--out", out, *extra)
            refused(code, err, where, "must be finite numbers", "nan")
            assert not out.exists()


def test_5_inf_in_size_difficult_and_csv_width_is_no_traceback(capsys, tmp_path):
    for i, (source, extra) in enumerate((
            (_voc_one(tmp_path / "v1", size=("inf", "72")), ()),
            (_voc_one(tmp_path / "v2", difficult="inf"), ()),
            (_csv(tmp_path / "c1", ["img_00000.jpg,inf,72,cat,5,5,40,30"]), ()))):
        out = tmp_path / "out{}".format(i)
        code, err = cli(capsys, "odrun", "convert", source, "--out", out, "--split", "1.0", *extra)
        assert code == 0, err  # the image header gives the real size; a non-number flag is 0
        assert "Traceback" not in err and (out / "train.record").exists()


def test_6_train_refuses_a_label_map_with_a_duplicate_id(capsys, tmp_path, data):
    bad = tmp_path / "data"
    shutil.copytree(str(data), str(bad))
    (bad / "label_map.pbtxt").write_text("item {\n  id: 1\n  name: 'cat'\n}\nitem {\n  id: 1\n  name: 'dog'\n}\n")
    run = tmp_path / "run"
    code, err = cli(capsys, "odrun", "train", "--data", bad, "--workdir", run, "--steps", "1", "--api", "tf2")
    refused(code, err, "label_map.pbtxt", "id 1 is used twice")
    assert not run.exists()
    # the same validator as convert --label-map
    code, err = cli(capsys, "odrun", "convert", data.parent / "src", "--out", tmp_path / "o", "--label-map",
                    bad / "label_map.pbtxt")
    refused(code, err, "id 1 is used twice")


def test_7_image_paths_outside_the_dataset_are_refused(capsys, tmp_path):
    outside = tmp_path / "outside"
    synth.make_voc(str(outside), 1, seed=2)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    cases = {
        "voc_dotdot": _voc_one(tmp_path / "d1", filename="../outside/img_00000.jpg", image=False),
        "voc_absolute": _voc_one(tmp_path / "d2", filename=str(outside / "img_00000.jpg"), image=False),
        "coco_dotdot": _coco(tmp_path / "d3", images=[{"id": 1, "file_name": "../outside/img_00000.jpg",
                                                       "width": 96, "height": 72}]),
        "csv_absolute": _csv(tmp_path / "d4", ["{},96,72,cat,5,5,40,30".format(outside / "img_00000.jpg")],
                             image=False),
    }
    link_dir = _voc_one(tmp_path / "d5", image=False)
    (link_dir / "img_00000.jpg").symlink_to(outside / "img_00000.jpg")
    cases["voc_symlink"] = link_dir
    for name, source in sorted(cases.items()):
        out = tmp_path / ("out-" + name)
        code, err = cli(capsys, "odrun", "convert", source, "--out", out)
        refused(code, err, "leads outside the dataset folders", "--allow-outside-images")
        assert not out.exists(), name
        code, err = cli(capsys, "odrun", "convert", source, "--out", out, "--split", "1.0", "--allow-outside-images")
        assert code == 0, (name, err)
    # an annotation pointing at a non-image file: the message never shows its bytes
    leak = _voc_one(tmp_path / "d6", filename="../secret.txt", image=False)
    code, err = cli(capsys, "odrun", "convert", leak, "--out", tmp_path / "o6", "--allow-outside-images")
    refused(code, err, "not a JPEG or PNG")
    assert "root:x" not in err and "b'" not in err


def test_8_csv_formula_cells_are_neutralised(capsys, tmp_path):
    src = _csv(tmp_path / "c", ["img_00000.jpg,96,72,=cmd|' /C calc'!A0,5,5,40,30",
                                "img_00000.jpg,96,72,@SUM(1),6,6,41,31"])
    out = tmp_path / "out"
    code, err = cli(capsys, "odrun", "convert", src, "--out", out, "--split", "1.0")
    assert code == 0, err
    import csv
    with open(str(out / "train_labels.csv"), newline="") as f:
        classes = [r["class"] for r in csv.DictReader(f)]
    assert sorted(classes) == ["'=cmd|' /C calc'!A0", "'@SUM(1)"]
    assert "=cmd|' /C calc'!A0" in (out / "label_map.pbtxt").read_text()  # the class itself is unchanged


# ----------------------------------------------------------------------------- 9 bad input up front
def _not_a_record(data, tmp_path):
    bad = tmp_path / "notrec"
    shutil.copytree(str(data), str(bad))
    jpg = next((data.parent / "src").glob("*.jpg"))
    shutil.copy(str(jpg), str(bad / "train.record"))  # e.g. a JPEG renamed
    return bad


def _truncate_index(run):
    idx = run / "ckpt-2.index"
    idx.write_bytes(idx.read_bytes()[:20])


CASES_9 = {
    # convert: COCO structure types
    "coco_annotations_dict": ("convert", lambda t, d, r, e: [_coco(t / "c", annotations={"id": 1}), "--out", t / "o"],
                              ["instances.json", "field annotations must be a list"], "o"),
    "coco_categories_strings": ("convert", lambda t, d, r, e: [_coco(t / "c", categories=["cat"]), "--out", t / "o"],
                                ["instances.json", "field categories[0] must be an object"], "o"),
    "coco_images_ints": ("convert", lambda t, d, r, e: [_coco(t / "c", images=[1, 2]), "--out", t / "o"],
                         ["instances.json", "field images[0] must be an object"], "o"),
    "coco_list_id": ("convert", lambda t, d, r, e: [_coco(t / "c", images=[
        {"id": [1], "file_name": "img_00000.jpg", "width": 96, "height": 72}]), "--out", t / "o"],
        ["instances.json", "field images[0].id must be an integer or a string"], "o"),
    "coco_width_abc": ("convert", lambda t, d, r, e: [_coco(t / "c", images=[
        {"id": 1, "file_name": "img_00000.jpg", "width": "abc", "height": 72}]), "--out", t / "o"],
        ["instances.json", "field images[0].width must be a positive finite number"], "o"),
    "coco_width_inf": ("convert", lambda t, d, r, e: [_coco(t / "c", raw=json.dumps({
        "images": [{"id": 1, "file_name": "img_00000.jpg", "width": float("inf"), "height": 72}],
        "annotations": [], "categories": []})), "--out", t / "o"],
        ["instances.json", "field images[0].width must be a positive finite number"], "o"),
    "convert_out_is_a_file": ("convert", lambda t, d, r, e: [d.parent / "src", "--out", d / "summary.json"],
                              ["--out", "is a file, not a folder"], None),
    # train
    "train_set_batch_size_negative": ("train", lambda t, d, r, e: [
        "--data", d, "--workdir", t / "new", "--steps", "1", "--api", "tf2", "--set", "train_config.batch_size=-5"],
        ["--set train_config.batch_size", "cannot be -5"], "new"),
    "train_batch_0": ("train", lambda t, d, r, e: ["--data", d, "--workdir", t / "new", "--batch", "0", "--api", "tf2"],
                      ["--batch must be >= 1, got 0"], "new"),
    "train_set_batch_size_zero": ("train", lambda t, d, r, e: [
        "--data", d, "--workdir", t / "new", "--steps", "1", "--api", "tf2", "--set", "train_config.batch_size=0"],
        ["train_config.batch_size must be >= 1, got 0"], "new"),
    "train_workdir_is_a_file": ("train", lambda t, d, r, e: [
        "--data", d, "--workdir", (t / "afile").write_text("x") and t / "afile", "--steps", "1", "--api", "tf2"],
        ["--workdir", "afile is a file, not a folder"], None),
    "export_out_is_a_file": ("export", lambda t, d, r, e: [
        "--workdir", r, "--out", d / "summary.json", "--api", "tf2"], ["--out", "is a file, not a folder"], None),
    "train_image_size_negative": ("train", lambda t, d, r, e: [
        "--data", d, "--workdir", t / "new", "--image-size", "-3", "--api", "tf2"],
        ["--image-size must be >= 32, got -3"], "new"),
    "train_records_not_tfrecords": ("train", lambda t, d, r, e: [
        "--data", _not_a_record(d, t), "--workdir", t / "new", "--steps", "1", "--api", "tf2"],
        ["train.record is not a TFRecord file"], "new"),
    "resume_truncated_index": ("train", lambda t, d, r, e: (_truncate_index(r), [
        "--workdir", r, "--resume", "--api", "tf2"])[1], ["ckpt-2.index", "truncated"], "run"),
    "resume_broken_run_json": ("train", lambda t, d, r, e: ((r / "run.json").write_text("{\"api\": "), [
        "--workdir", r, "--resume", "--api", "tf2"])[1], ["run.json", "damaged"], "run"),
    "resume_non_utf8_checkpoint_file": ("train", lambda t, d, r, e: ((r / "checkpoint").write_bytes(b"\xff\xfe\x00bad"), [
        "--workdir", r, "--resume", "--api", "tf2"])[1], ["checkpoint", "not UTF-8"], "run"),
    # detect
    "detect_metadata_not_json": ("detect", lambda t, d, r, e: ((e / "metadata.json").write_text("{oops"), [
        "--model", e, d.parent / "src", "--out", t / "det"])[1], ["metadata.json", "cannot be read as JSON"], "det"),
    "detect_metadata_bad_classes": ("detect", lambda t, d, r, e: ((e / "metadata.json").write_text(
        json.dumps({"api": "tf2", "classes": [{"id": "one", "name": 3}]})), [
        "--model", e, d.parent / "src", "--out", t / "det"])[1], ["metadata.json", "classes[0]"], "det"),
    # predict (classifiers) reads metadata.json through the same checks as detect
    "predict_metadata_not_json": ("predict", lambda t, d, r, e: ((e / "metadata.json").write_text("{oops"), [
        "--model", e, d.parent / "src", "--out", t / "pred"])[1], ["metadata.json", "cannot be read as JSON"], "pred"),
    "predict_on_a_detector": ("predict", lambda t, d, r, e: [
        "--model", e, d.parent / "src", "--out", t / "pred"], ["detector, not a classifier", "odrun detect"], "pred"),
    # out of range (item 10)
    "detect_threshold_2": ("detect", lambda t, d, r, e: ["--model", e, d.parent / "src", "--out", t / "det",
                                                         "--threshold", "2"],
                           ["--threshold must be between 0 and 1, got 2"], "det"),
}


@pytest.mark.parametrize("case", sorted(CASES_9))
def test_9_bad_input_is_exit_2_naming_the_field_and_writes_nothing(case, capsys, tmp_path, data, ssd_run,
                                                                   export_dir):
    verb, make_argv, fragments, created = CASES_9[case]
    argv = make_argv(tmp_path, data, ssd_run, export_dir)
    watched = [data, export_dir] + ([ssd_run] if "resume" not in case else [])
    before = {str(p): snapshot(p) for p in watched}
    run_before = snapshot(ssd_run)
    code, err = cli(capsys, "odrun", verb, *argv)
    refused(code, err, *fragments)
    if created == "run" and "resume" in case:
        assert snapshot(ssd_run) == run_before  # the damaged run is left as it was
    elif created:
        assert not (tmp_path / created).exists(), case  # no output folder, no logs/ in it
    for p in watched:
        assert snapshot(p) == before[str(p)], p


# ----------------------------------------------------------------------------- 9/10 provision side
PROVISION_CASES = {
    "doctor_root_bad_yaml": (["doctor", "--root", "{root}", "--no-tf"], "commands: [1, 2\n  x",
                             ["commands.yaml", "not valid YAML at line 2"]),
    "doctor_root_yaml_list": (["doctor", "--root", "{root}", "--no-tf"], "- a\n- b\n",
                              ["commands.yaml", "field (top level) must be of type object"]),
    "doctor_root_entry_not_a_mapping": (["doctor", "--root", "{root}", "--no-tf"], 'commands:\n  "uname -r": 5\n',
                                        ["commands.yaml", "field commands/uname -r must be of type object"]),
    "image_build_wheelhouse_missing": (["image", "build", "cpu", "--wheelhouse", "{root}/nonexistent"], None,
                                       ["--wheelhouse", "wheelhouse folder not found"]),
    "doctor_tf_timeout_negative": (["doctor", "--tf-timeout", "-1", "--no-tf"], None,
                                   ["--tf-timeout", "must be > 0, got -1"]),
    "matrix_cc_zero": (["matrix", "check", "--tf", "2.15", "--cc", "0.0"], None,
                       ["--cc", "0.0 is below 1.0"]),
    "recommend_gpu_empty": (["matrix", "recommend", "--gpu", ""], None, ["--gpu", "must not be empty"]),
}


@pytest.mark.parametrize("case", sorted(PROVISION_CASES))
def test_9_10_provision_bad_input(case, capsys, tmp_path):
    argv, commands_yaml, fragments = PROVISION_CASES[case]
    root = tmp_path / "root"
    root.mkdir()
    if commands_yaml is not None:
        (root / "commands.yaml").write_text(commands_yaml)
    before = snapshot(tmp_path)
    code, err = cli(capsys, "provision", *[a.format(root=root) for a in argv])
    refused(code, err, *fragments)
    assert snapshot(tmp_path) == before


def test_10_resume_without_a_checkpoint_says_so(ssd_run):
    import argparse
    from odrun.tasks.detect.config import pipeline as pc
    from odrun.workdir import rundir
    for f in ssd_run.glob("ckpt-*"):
        f.unlink()
    (ssd_run / "checkpoint").unlink()
    config = pc.load(str(ssd_run / "pipeline.config"))
    args = argparse.Namespace(workdir=str(ssd_run), data=None, config=None, model=None, resume=True, new_run=False)
    import io
    err, saved = io.StringIO(), sys.stderr
    sys.stderr = err
    try:
        previous, _ = rundir.prepare_train(args, "tf2", config)
    finally:
        sys.stderr = saved
    assert previous is None
    assert "--resume: no checkpoint in {} yet, so training starts from step 0".format(ssd_run) in err.getvalue()


def test_9_convert_out_read_only(voc_src):
    """A read-only --out parent: as root, the convert runs as nobody (setpriv), for whom it is."""
    import tempfile
    prefix = [] if os.geteuid() != 0 else ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if prefix and not shutil.which("setpriv"):
        pytest.skip("root without setpriv: cannot make a folder read-only for this process")
    top = tempfile.mkdtemp(prefix="odstack-ro-")  # pytest's tmp_path parents are 0700 (root's)
    try:
        os.chmod(top, 0o755)
        src, ro = os.path.join(top, "src"), os.path.join(top, "ro")
        shutil.copytree(str(voc_src), src)
        os.mkdir(ro)
        os.chmod(ro, 0o555)
        env = dict(os.environ, HOME=top)
        proc = subprocess.run(prefix + [sys.executable, "-m", "odrun", "convert", src, "--out",
                                        os.path.join(ro, "data")],
                              capture_output=True, text=True, env=env, cwd=top, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert "not writable" in proc.stderr and ro in proc.stderr and "Traceback" not in proc.stderr
        assert os.listdir(ro) == []
    finally:
        os.chmod(os.path.join(top, "ro"), 0o755)
        shutil.rmtree(top, ignore_errors=True)


# ----------------------------------------------------------------------------- 11 stale temps
def test_11_stale_temps_of_a_killed_convert_are_removed(capsys, tmp_path, voc_src):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".train.record.k2j3h4.tmp").write_bytes(b"\0" * 1000)  # what a kill -9 leaves
    (out / ".label_map.pbtxt.a1b2c3.tmp").write_text("x")
    (out / ".parts-x8y9z0").mkdir()
    (out / ".parts-x8y9z0" / "000000.record").write_bytes(b"\0" * 10)
    (out / ".my-notes.tmp").write_text("not ours")  # a user's file with a similar name is kept
    before = sorted(os.listdir(str(out)))
    code, err = cli(capsys, "odrun", "convert", voc_src, "--out", out)
    assert code == 2 and ".my-notes.tmp" in err, err  # a user's file: the folder is not replaced
    assert sorted(os.listdir(str(out))) == before
    (out / ".my-notes.tmp").unlink()
    code, err = cli(capsys, "odrun", "convert", voc_src, "--out", out)
    assert code == 0, err
    assert sorted(f for f in os.listdir(str(out)) if f.startswith(".")) == []
