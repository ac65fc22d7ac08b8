"""pipeline_config: templates parse with the OD API's pipeline_pb2, --set reaches any field,
and the seeds' traps are refused with a message naming the field and the fix. No TensorFlow."""
import os

import pytest

from odrun.tasks.detect.config import checks  # the config traps (pipeline.py: read/fill/write)

from conftest import have_module, require, run_cli


@pytest.fixture(scope="module")
def pc():
    require(have_module("object_detection"), "OD API not installed (run scripts/setup.sh)")
    from odrun.tasks.detect.config import pipeline as pipeline_config
    return pipeline_config


@pytest.fixture
def data_dir(tmp_path):
    """A convert-like output folder: 2-class label map and non-empty record files (beside, not around,
    the tests' run folders: the output guard refuses a --workdir inside --data)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "label_map.pbtxt").write_text("item { id: 1 name: 'cat' }\nitem { id: 2 name: 'dog' }\n")
    (data / "train.record").write_bytes(b"\0" * 16)
    (data / "test.record").write_bytes(b"\0" * 16)
    return data


def filled(pc, data_dir, model="ssd_mobilenet_v2", **kw):
    config = pc.load(pc.template_path("tf2", model))
    args = dict(num_classes=2, train_record=str(data_dir / "train.record"),
                eval_record=str(data_dir / "test.record"), label_map=str(data_dir / "label_map.pbtxt"))
    args.update(kw)
    return pc.fill(config, **args)


def test_templates_parse_and_need_filling(pc):
    models = pc.list_models("tf2")
    assert {"ssd_mobilenet_v2", "faster_rcnn_resnet50", "ssd_mobilenet_v2_fpnlite_320"} <= set(models)
    archs = {m: pc.arch(pc.load(pc.template_path("tf2", m))) for m in models}
    assert archs["faster_rcnn_resnet50"] == "faster_rcnn" and archs["ssd_mobilenet_v2"] == "ssd"
    assert pc.image_size(pc.load(pc.template_path("tf2", "ssd_mobilenet_v2_fpnlite_320"))) == 320
    # An unfilled template still has placeholders: validation names them.
    found = checks.problems(pc.load(pc.template_path("tf2", "ssd_mobilenet_v2")), check_files=False)
    assert any("PATH_TO_BE_CONFIGURED" in msg for _, msg, _ in found)


def test_unknown_template_suggests(pc):
    with pytest.raises(pc.UserError) as e:
        pc.template_path("tf2", "ssd_mobilenet_v3")
    assert "did you mean 'ssd_mobilenet_v2'" in e.value.message


def test_fill_sets_fields_and_round_trips(pc, data_dir, tmp_path):
    config = filled(pc, data_dir, batch_size=4, image_size=128, num_steps=50)
    assert config.model.ssd.num_classes == 2
    assert config.model.ssd.image_resizer.fixed_shape_resizer.height == 128
    assert config.train_config.batch_size == 4 and config.train_config.num_steps == 50
    cos = config.train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    assert cos.total_steps == 50 and cos.warmup_steps <= 5  # schedule shrunk to fit
    assert list(config.eval_input_reader[0].tf_record_input_reader.input_path) == [str(data_dir / "test.record")]
    assert checks.problems(config) == []
    path = str(tmp_path / "out" / "pipeline.config")
    pc.save(config, path)
    assert pc.load(path) == config


def test_set_overrides(pc, data_dir):
    config = filled(pc, data_dir, overrides=[
        "model.num_classes=2",
        "train_config.optimizer.momentum_optimizer.momentum_optimizer_value=0.5",
        "eval_input_reader.label_map_path=/elsewhere/map.pbtxt",
        "train_config.data_augmentation_options[1]=random_adjust_brightness {}",
        "model.ssd.post_processing.score_converter=SOFTMAX",
        "train_config.use_bfloat16=false",
    ])
    assert config.train_config.optimizer.momentum_optimizer.momentum_optimizer_value == 0.5
    assert config.eval_input_reader[0].label_map_path == "/elsewhere/map.pbtxt"
    assert config.train_config.data_augmentation_options[1].HasField("random_adjust_brightness")
    assert config.model.ssd.post_processing.score_converter == 2  # SOFTMAX


@pytest.mark.parametrize("override, needle", [
    ("train_config.batch_sise=2", "did you mean 'batch_size'"),
    ("model.faster_rcnn.num_classes=2", "is a ssd block"),
    ("train_config.batch_size=two", "bad value 'two'"),
    ("model.ssd.post_processing.score_converter=TANH", "expected one of"),
    ("train_config.batch_size", "needs key.path=value"),
])
def test_bad_set_is_clear(pc, data_dir, override, needle):
    with pytest.raises(pc.UserError) as e:
        filled(pc, data_dir, overrides=[override])
    assert needle in e.value.message


def test_trap_keep_aspect_ratio_with_batch(pc, data_dir):
    config = filled(pc, data_dir, model="faster_rcnn_resnet50", batch_size=4, overrides=[
        "model.image_resizer.keep_aspect_ratio_resizer.pad_to_max_dimension=false"])
    with pytest.raises(pc.UserError) as e:
        checks.validate(config)
    assert "Cannot add tensor to the batch" in e.value.message
    assert "fixed_shape_resizer" in e.value.fix and "--batch 1" in e.value.fix
    # padded (the template's default) or batch 1: fine
    assert checks.problems(filled(pc, data_dir, model="faster_rcnn_resnet50", batch_size=4)) == []


def test_trap_missing_fine_tune_checkpoint_lists_files(pc, data_dir, tmp_path):
    prefix = str(tmp_path / "zoo" / "checkpoint" / "ckpt-0")
    config = filled(pc, data_dir, fine_tune_checkpoint=prefix)
    with pytest.raises(pc.UserError) as e:
        checks.validate(config)
    assert prefix + ".index" in e.value.message and prefix + ".data-00000-of-00001" in e.value.message
    assert config.train_config.fine_tune_checkpoint_type == "detection"
    os.makedirs(os.path.dirname(prefix))
    for f in checks.checkpoint_files(prefix):
        open(f, "wb").close()
    assert checks.problems(config) == []


def test_trap_num_classes_vs_label_map(pc, data_dir):
    config = filled(pc, data_dir, num_classes=5)
    with pytest.raises(pc.UserError) as e:
        checks.validate(config)
    assert "num_classes is 5" in e.value.message and "ids up to 2" in e.value.message
    assert "model.num_classes=2" in e.value.fix


def test_trap_missing_and_empty_records(pc, data_dir):
    (data_dir / "test.record").write_bytes(b"")
    config = filled(pc, data_dir, train_record=str(data_dir / "nope-?????-of-00002"))
    msgs = [m for _, m, _ in checks.problems(config)]
    assert any("no record file matches" in m and "nope-" in m for m in msgs)
    assert any("is empty" in m and "test.record" in m for m in msgs)


def test_cli_refuses_trap_before_tensorflow(data_dir, tmp_path):
    require(have_module("object_detection"), "OD API not installed")
    env = dict(os.environ, ODRUN_API="tf2")
    proc = run_cli("odrun", "train", "--data", data_dir, "--workdir", tmp_path / "run", "--model",
                   "faster_rcnn_resnet50", "--batch", "2", "--set",
                   "model.image_resizer.keep_aspect_ratio_resizer.pad_to_max_dimension=false",
                   check=2, env=env, timeout=120)
    assert "Cannot add tensor to the batch" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "pipeline.config").exists()
    proc = run_cli("odrun", "train", "--data", tmp_path / "missing", "--workdir", tmp_path / "run",
                   check=2, env=env, timeout=120)
    assert "data directory not found" in proc.stderr
    proc = run_cli("odrun", "train", "--workdir", tmp_path / "run", "--resume", check=2, env=env, timeout=120)
    assert "nothing to resume" in proc.stderr
