"""explain's shape resolver (odcore/shapes.py, texts in odcore/data/shapes.yaml): two printed shapes or sizes are
compared, so the answer names the channel / axis mismatch. Texts are real, copied from the public threads in
tests/fixtures/explain/dev8b3.yaml (issue #24 round 5c)."""
import pathlib

import yaml

from odcore import explain as core
from odcore import shapes

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "explain"
DEV = dict((e["source"], e["text"]) for e in yaml.safe_load(
    (FIXTURES / "dev8b3.yaml").read_text(encoding="utf-8"))["entries"])
GH = "https://github.com/"


def test_fed_channels_differ():
    top = core.explain(DEV[GH + "deep-diver/Soccer-Ball-Detection-YOLOv2/issues/4"])[0]
    assert top["id"] == "shape-resolved" and "has 3 channel(s)" in top["title"] and "wants 1" in top["title"]


def test_grayscale_image_without_channel_axis():
    text = DEV[GH + "tensorflow/models/issues/3369"]
    for matches in (core.explain(text), core.explain_lines(text)):
        top = matches[0]
        assert "lacks the channel axis" in top["title"] and "cv2.COLOR_GRAY2RGB" in top["fix"]


def test_reshape_three_times_the_values_rides_on_the_signature():
    top = core.explain(DEV[GH + "songhengyang/face_landmark_factory/issues/21"])[0]
    assert top["id"] == "reshape-values-mismatch" and top["fix"].startswith("Write and read with the same channel")


def test_shapes_that_say_nothing_are_not_answered():
    assert shapes.resolve("Input to reshape is a tensor with 1000 values, but the requested shape has 7") is None
    assert shapes.resolve("Cannot feed value of shape (2, 5) for Tensor 'x:0', which has shape '(?, 5)'") is None
    assert shapes.resolve("a line without any of the messages") is None
