"""The OD API's TF1 code path (odrun.backends.tf1) under TF 2.15 through odrun.compat.tf1_on_tf2.

One module-scoped run in a separate process (the TF1 layer switches the whole process to graph
mode, which must not leak into the TF2 tests): tiny records -> train a small SSD for a few
steps -> resume to more steps -> COCO eval -> export_inference_graph -> frozen-graph detection,
plus the Faster R-CNN Inception V2 template built by model_builder in TF1 mode. The tests
assert on what that run wrote (results.json and the files themselves).
"""
import json
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STEPS_FIRST, STEPS_TOTAL, CKPT_EVERY, SIZE, BATCH = 3, 5, 2, 128, 2
CLASSES = ["square", "bar"]
pytestmark = [pytest.mark.tf, pytest.mark.slow]


# --------------------------------------------------------------------------- driver (subprocess)
def _tiny_records(out_dir, n_train=8, n_test=4, seed=0):
    """Hand-made tiny dataset (coloured rectangles on noise) as OD API tf.train.Examples."""
    import io

    import numpy as np
    import tensorflow as tf
    from PIL import Image

    rng = np.random.RandomState(seed)
    feat = tf.train.Feature

    def b(v):
        return feat(bytes_list=tf.train.BytesList(value=v))

    def f(v):
        return feat(float_list=tf.train.FloatList(value=v))

    def i(v):
        return feat(int64_list=tf.train.Int64List(value=v))

    def example(k):
        img = rng.randint(0, 80, (SIZE, SIZE, 3)).astype("uint8")
        boxes, labels = [], []
        for _ in range(1 + k % 2):
            cls = int(rng.randint(1, len(CLASSES) + 1))
            w = int(rng.randint(30, 60))
            h = w if cls == 1 else w // 3
            x0, y0 = int(rng.randint(0, SIZE - w)), int(rng.randint(0, SIZE - h))
            img[y0:y0 + h, x0:x0 + w] = (230, 40, 40) if cls == 1 else (40, 40, 230)
            boxes.append((x0 / SIZE, y0 / SIZE, (x0 + w) / SIZE, (y0 + h) / SIZE))
            labels.append(cls)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG")
        name = "img{}.jpg".format(k).encode()
        return tf.train.Example(features=tf.train.Features(feature={
            "image/encoded": b([buf.getvalue()]), "image/format": b([b"jpeg"]),
            "image/filename": b([name]), "image/source_id": b([name]),
            "image/height": i([SIZE]), "image/width": i([SIZE]),
            "image/object/bbox/xmin": f([x[0] for x in boxes]), "image/object/bbox/ymin": f([x[1] for x in boxes]),
            "image/object/bbox/xmax": f([x[2] for x in boxes]), "image/object/bbox/ymax": f([x[3] for x in boxes]),
            "image/object/class/label": i(labels),
            "image/object/class/text": b([CLASSES[c - 1].encode() for c in labels]),
        }))

    os.makedirs(out_dir, exist_ok=True)
    for split, count, start in (("train", n_train, 0), ("test", n_test, 100)):
        with tf.io.TFRecordWriter(os.path.join(out_dir, split + ".record")) as w:
            for k in range(count):
                w.write(example(start + k).SerializeToString())
    with open(os.path.join(out_dir, "label_map.pbtxt"), "w") as fh:
        for k, name in enumerate(CLASSES, 1):
            fh.write("item {{\n  id: {}\n  name: '{}'\n}}\n".format(k, name))


def _fill(template, data, out_path, overrides):
    """Fill a TF1 template for the tiny dataset with pipeline_pb2 (protobuf only)."""
    from google.protobuf import text_format
    from object_detection.protos import pipeline_pb2

    config = pipeline_pb2.TrainEvalPipelineConfig()
    with open(template) as fh:
        text_format.Merge(fh.read(), config)
    overrides(config)
    config.train_input_reader.tf_record_input_reader.input_path[:] = [os.path.join(data, "train.record")]
    config.train_input_reader.label_map_path = os.path.join(data, "label_map.pbtxt")
    for reader in config.eval_input_reader:
        reader.tf_record_input_reader.input_path[:] = [os.path.join(data, "test.record")]
        reader.label_map_path = os.path.join(data, "label_map.pbtxt")
        reader.num_epochs = 1
    with open(out_path, "w") as fh:
        fh.write(text_format.MessageToString(config))
    return out_path


def _small_ssd(config):
    ssd = config.model.ssd
    ssd.num_classes = len(CLASSES)
    ssd.image_resizer.fixed_shape_resizer.height = ssd.image_resizer.fixed_shape_resizer.width = SIZE
    ssd.feature_extractor.depth_multiplier = 0.25  # fast on 2 shared cores
    config.train_config.batch_size = BATCH
    config.eval_config.num_examples = 4
    config.eval_config.num_visualizations = 0


def _frcnn(config):
    config.model.faster_rcnn.num_classes = len(CLASSES)


def driver(work):
    """Runs in its own process; writes work/results.json."""
    sys.path.insert(0, ROOT)
    from odrun.backends import tf1

    timings, res = {}, {}
    t = time.time()
    res["fixes"] = tf1.prepare()
    templates = os.path.join(ROOT, "odrun", "data", "templates", "tf1")
    data, run_dir, export_dir = (os.path.join(work, d) for d in ("data", "run", "export"))
    _tiny_records(data)
    config = _fill(os.path.join(templates, "ssd_mobilenet_v2.config"), data,
                   os.path.join(work, "pipeline.config"), _small_ssd)

    steps = []
    res["train1"] = tf1.train(config, run_dir, STEPS_FIRST, CKPT_EVERY,
                              on_step=lambda step, losses: steps.append([step, losses]))
    timings["train1"] = time.time() - t
    res["steps1"] = steps[:]
    res["ckpts1"] = sorted(os.listdir(run_dir))
    del steps[:]
    t = time.time()
    res["train2"] = tf1.train(config, run_dir, STEPS_TOTAL, CKPT_EVERY,
                              on_step=lambda step, losses: steps.append([step, losses]))
    timings["train2"] = time.time() - t
    res["steps2"] = steps

    t = time.time()
    res["eval"] = tf1.evaluate(config, run_dir)
    timings["eval"] = time.time() - t

    t = time.time()
    res["export"] = tf1.export(config, run_dir, export_dir)
    timings["export"] = time.time() - t

    import numpy as np
    t = time.time()
    detect = tf1.load_detector(export_dir)
    rng = np.random.RandomState(1)
    images = [rng.randint(0, 255, (SIZE, SIZE, 3)).astype("uint8") for _ in range(3)]
    images.append(rng.randint(0, 255, (90, 150, 3)).astype("uint8"))  # a different shape
    out = detect(images)
    res["detections"] = [{k: np.asarray(v).tolist() for k, v in d.items()} for d in out]
    timings["detect"] = time.time() - t

    # The seeds' model: the Faster R-CNN Inception V2 template builds in TF1 mode.
    t = time.time()
    frcnn = _fill(os.path.join(templates, "faster_rcnn_inception_v2.config"), data,
                  os.path.join(work, "frcnn.config"), _frcnn)
    import tensorflow.compat.v1 as tf
    from object_detection.builders import model_builder
    from object_detection.utils import config_util
    configs = config_util.get_configs_from_pipeline_file(frcnn)
    model = model_builder.build(configs["model"], is_training=False)
    with tf.Graph().as_default():
        image = tf.placeholder(tf.float32, [1, 200, 300, 3])
        prep, shapes = model.preprocess(image)
        pred = model.predict(prep, shapes)
        dets = model.postprocess(pred, shapes)
        res["frcnn"] = {"class": type(model).__name__,
                        "extractor": type(model._feature_extractor).__name__,
                        "outputs": sorted(dets),
                        "variables": len(tf.global_variables())}
    timings["frcnn"] = time.time() - t
    res["timings"] = timings
    with open(os.path.join(work, "results.json"), "w") as fh:
        json.dump(res, fh, indent=1, default=str)


# --------------------------------------------------------------------------- tests
def _require_tf():
    from conftest import have_module, require
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")


@pytest.fixture(scope="module")
def tf1_run(tmp_path_factory):
    _require_tf()
    work = str(tmp_path_factory.mktemp("tf1"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), work], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    log = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, "tf1 driver failed:\n" + log[-6000:]
    with open(os.path.join(work, "results.json")) as fh:
        res = json.load(fh)
    res["work"] = work
    return res


def test_compat_layer_applied(tf1_run):
    fixes = " | ".join(tf1_run["fixes"])
    for needle in ("disable_v2_behavior", "contrib", "nets", "numpy", "control_flow_ops"):
        assert needle in fixes


def test_train_exact_steps_and_checkpoints(tf1_run):
    assert tf1_run["train1"]["step"] == STEPS_FIRST
    assert [s for s, _ in tf1_run["steps1"]] == list(range(1, STEPS_FIRST + 1))
    ckpts = tf1_run["ckpts1"]
    assert "checkpoint" in ckpts
    # every CKPT_EVERY steps and at the end
    for step in (CKPT_EVERY, STEPS_FIRST):
        assert "model.ckpt-{}.index".format(step) in ckpts, ckpts
    assert any(name.startswith("events.out.tfevents") for name in ckpts), "no TensorBoard events"
    losses = tf1_run["steps1"][0][1]
    assert "Loss/total_loss" in losses and len(losses) >= 3, losses
    assert all(v == v and v >= 0 for v in losses.values())  # finite, non-negative


def test_resume_continues_to_exact_total(tf1_run):
    assert [s for s, _ in tf1_run["steps2"]] == list(range(STEPS_FIRST + 1, STEPS_TOTAL + 1))
    assert tf1_run["train2"]["step"] == STEPS_TOTAL
    assert tf1_run["train2"]["checkpoint"].endswith("model.ckpt-{}".format(STEPS_TOTAL))


def test_eval_coco_metrics(tf1_run):
    metrics = tf1_run["eval"]
    assert metrics["global_step"] == STEPS_TOTAL
    for key in ("DetectionBoxes_Precision/mAP", "DetectionBoxes_Precision/mAP@.50IOU",
                "DetectionBoxes_Recall/AR@100"):
        assert key in metrics and -1.0 <= metrics[key] <= 1.0, key


def test_export_frozen_graph_and_saved_model(tf1_run):
    info = tf1_run["export"]
    export_dir = os.path.join(tf1_run["work"], "export")
    assert info["step"] == STEPS_TOTAL
    assert info["frozen_graph"] == os.path.join(export_dir, "frozen_inference_graph.pb")
    assert os.path.getsize(info["frozen_graph"]) > 100000
    assert os.path.isfile(os.path.join(export_dir, "saved_model", "saved_model.pb"))
    assert os.path.isfile(os.path.join(export_dir, "pipeline.config"))
    leftovers = [n for n in os.listdir(tf1_run["work"]) if n.startswith(".export")]
    assert not leftovers, "temp export dir left behind: {}".format(leftovers)


def test_frozen_graph_detector_results(tf1_run):
    dets = tf1_run["detections"]
    assert len(dets) == 4
    for d in dets:
        n = len(d["scores"])
        assert 0 < n <= 100 and len(d["boxes"]) == n and len(d["classes"]) == n
        assert all(len(b) == 4 and 0.0 <= min(b) and max(b) <= 1.0 for b in d["boxes"])
        assert all(b[0] <= b[2] and b[1] <= b[3] for b in d["boxes"])
        assert set(d["classes"]) <= set(range(1, len(CLASSES) + 1))
        assert d["scores"] == sorted(d["scores"], reverse=True)
        assert all(0.0 <= s <= 1.0 for s in d["scores"])


def test_faster_rcnn_inception_v2_template_builds_in_tf1_mode(tf1_run):
    frcnn = tf1_run["frcnn"]
    assert frcnn["class"] == "FasterRCNNMetaArch"
    assert frcnn["extractor"] == "FasterRCNNInceptionV2FeatureExtractor"
    assert {"detection_boxes", "detection_scores", "detection_classes", "num_detections"} <= set(frcnn["outputs"])
    assert frcnn["variables"] > 100


def test_guards_name_the_fix(tmp_path):
    """Process already in TF2 mode -> clear UserError; use_moving_average (contrib-only) -> caught
    before any graph is built."""
    _require_tf()
    code = r"""
import sys, json
sys.path.insert(0, %r)
from odrun.errors import UserError
from odrun.backends import tf1
out = {}
try:
    tf1._check_config(sys.argv[1])
except UserError as exc:
    out["ema"] = exc.render()
import object_detection.builders.model_builder  # TF2 mode: registers the Keras extractors
try:
    tf1.prepare()
except UserError as exc:
    out["mode"] = exc.render()
print(json.dumps(out))
""" % ROOT
    config = os.path.join(ROOT, "odrun", "data", "templates", "tf1", "ssd_mobilenet_v2.config")
    bad = tmp_path / "ema.config"
    bad.write_text(open(config).read().replace("use_moving_average: false", "use_moving_average: true"))
    proc = subprocess.run([sys.executable, "-c", code, str(bad)], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert "train_config.optimizer.use_moving_average" in out["ema"]
    assert "use_moving_average=false" in out["ema"]
    assert "TF2 mode" in out["mode"] and "fix:" in out["mode"]


if __name__ == "__main__":
    driver(sys.argv[1])
