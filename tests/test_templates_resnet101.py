"""The tutorials' Faster R-CNN ResNet-101 templates (TF1 and TF2): they parse with the OD API's
pipeline_pb2, fill, validate and BUILD with its model_builder (TF2: the Keras model in eager
mode; TF1: the graph through the compat layer odrun ships), in one subprocess."""
import json
import os
import subprocess
import sys

import pytest

from conftest import have_module, require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = [pytest.mark.tf, pytest.mark.slow, pytest.mark.long]  # two ResNet-101 builds: ~50 s quiet, ~3 min under load

SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
api = sys.argv[2]
from odrun.tasks.detect.config import pipeline as pc
config = pc.fill(pc.load(pc.template_path(api, "faster_rcnn_resnet101")), num_classes=3)
out = {"arch": pc.arch(config), "extractor_type": config.model.faster_rcnn.feature_extractor.type}
if api == "tf2":
    from odrun.tasks.detect.backends import tf2
    tf2.prepare()
    from object_detection.builders import model_builder
    model = model_builder.build(config.model, is_training=False)
else:
    from odrun.tasks.detect.backends import tf1
    tf1.prepare()  # TF 1 code path under TF 2: the compat layer odrun ships
    import tensorflow.compat.v1 as tf
    from object_detection.builders import model_builder
    with tf.Graph().as_default():
        model = model_builder.build(config.model, is_training=False)
        image = tf.placeholder(tf.float32, [1, 200, 300, 3])
        prep, shapes = model.preprocess(image)
        dets = model.postprocess(model.predict(prep, shapes), shapes)
        out.update(outputs=sorted(dets), variables=len(tf.global_variables()))
out.update(cls=type(model).__name__, extractor=type(model._feature_extractor).__name__, classes=model.num_classes)
print(json.dumps(out))
"""


def build(api):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("ODRUN_API", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, ROOT, api], capture_output=True, text=True, timeout=600,
                          env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_resnet101_templates_parse_and_build():
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")
    out = {"tf2": build("tf2"), "tf1": build("tf1")}
    assert out["tf2"]["arch"] == out["tf1"]["arch"] == "faster_rcnn"
    assert out["tf2"]["extractor_type"] == "faster_rcnn_resnet101_keras"
    assert out["tf2"]["extractor"] == "FasterRCNNResnet101KerasFeatureExtractor" and out["tf2"]["classes"] == 3
    assert out["tf1"]["extractor"] == "FasterRCNNResnet101FeatureExtractor"
    assert "detection_boxes" in out["tf1"]["outputs"] and out["tf1"]["variables"] > 300
