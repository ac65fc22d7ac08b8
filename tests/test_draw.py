"""Annotated images tell the truth: the highest-scoring label is the visible one.

The cases are the ones seen in the demo's annotated images (hand-made detections with the same
geometry): three classes on one box (triangle 0.73, circle 0.52, square 0.40), two overlapping boxes
whose labels collide, boxes at the frame's edges, and small 160 px images.
"""
import numpy as np
import pytest

from odrun.tasks.detect import draw

NAMES = {1: "circle", 2: "square", 3: "triangle"}


def _rgb(hex_color):
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))


def _annotate(boxes, classes, scores, size=(160, 160), threshold=0.3, **kw):
    image = np.full((size[1], size[0], 3), 128, dtype=np.uint8)
    det = {"boxes": np.array(boxes, dtype=np.float32), "classes": np.array(classes), "scores": np.array(scores)}
    im, labels = draw.annotate(image, det, NAMES, threshold, **kw)
    return np.asarray(im), labels


def _fill_at(pixels, label):
    """The colour of the label's background (its left padding column, clear of the text)."""
    x0, y0, x1, y1 = [int(round(v)) for v in label.text_box]
    x, y = x0, min(pixels.shape[0] - 1, (y0 + y1) // 2)
    return tuple(int(v) for v in pixels[y, x])


def test_same_box_three_classes_shows_the_best_class():
    box = [0.2, 0.2, 0.6, 0.6]
    pixels, labels = _annotate([box, box, box], [2, 1, 3], [0.40, 0.52, 0.73])
    texts = [lab.text for lab in labels if lab.text]
    assert texts == ["triangle 73%"], texts
    assert _fill_at(pixels, labels[0]) == _rgb(draw.color_of(3))


def test_runner_up_is_named_in_brackets():
    box = [0.2, 0.2, 0.6, 0.6]
    _pixels, labels = _annotate([box, box], [1, 3], [0.52, 0.73], runner_up=True)
    assert [lab.text for lab in labels] == ["triangle 73% (circle 52%)"]


def test_agnostic_nms_keeps_the_runner_up_label():
    """#25: --agnostic-nms with --runner-up dropped the bracket (NMS removed the second class first);
    the other box, overlapping more than the IoU, still goes."""
    box, near = [0.2, 0.2, 0.6, 0.6], [0.22, 0.22, 0.62, 0.62]
    _pixels, labels = _annotate([box, box, near], [1, 3, 2], [0.52, 0.73, 0.45], runner_up=True, agnostic_iou=0.5)
    assert [lab.text for lab in labels] == ["triangle 73% (circle 52%)"]


def test_agnostic_filter_then_annotate_keeps_the_runner_up():
    """What `odrun detect --agnostic-nms 0.5 --runner-up` draws: the unfiltered detections, NMS in the plan."""
    from odrun.tasks.detect import detect

    box = [0.2, 0.2, 0.6, 0.6]
    det = {"boxes": np.array([box, box], dtype=np.float32), "classes": np.array([1, 3]),
           "scores": np.array([0.52, 0.73])}
    shown = detect.drawn(det, draw.agnostic_filter(det, 0.3, 0.5), 0.5, runner_up=True)
    image = np.full((160, 160, 3), 128, dtype=np.uint8)
    _im, labels = draw.annotate(image, shown[0], NAMES, 0.3, agnostic_iou=shown[1], runner_up=True)
    assert [lab.text for lab in labels] == ["triangle 73% (circle 52%)"]


def test_colliding_labels_best_one_is_visible_and_on_top():
    # two boxes with the same top-left corner region: their labels would land on the same spot
    boxes = [[0.30, 0.10, 0.80, 0.70], [0.32, 0.12, 0.85, 0.60]]
    pixels, labels = _annotate(boxes, [1, 3], [0.35, 0.52])
    best = labels[0]
    assert best.text == "triangle 52%" and best.score == pytest.approx(0.52)
    assert _fill_at(pixels, best) == _rgb(draw.color_of(3))
    other = labels[1]
    if other.text:  # placed elsewhere: it must not overlap the best label's text box
        assert not draw._overlap(other.text_box, best.text_box)


def test_painted_last_wins_where_labels_must_overlap():
    """render() paints worst-first: forcing two text boxes on the same spot, the best colour shows."""
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    spot = (10.0, 10.0, 60.0, 22.0)
    labels = [draw.Label((10, 10, 90, 90), draw.color_of(3), "triangle 90%", spot, 0.9, 3),
              draw.Label((10, 10, 80, 80), draw.color_of(1), "circle 20%", spot, 0.2, 1)]
    pixels = np.asarray(draw.render(image, labels, 10, 1))
    assert tuple(int(v) for v in pixels[16, 10]) == _rgb(draw.color_of(3))


def test_labels_stay_inside_the_frame():
    boxes = [[0.0, 0.0, 0.3, 0.3], [0.5, 0.85, 0.99, 1.0], [0.9, 0.1, 1.0, 0.4]]
    pixels, labels = _annotate(boxes, [1, 2, 3], [0.9, 0.8, 0.7])
    side = pixels.shape[0]
    for lab in labels:
        assert lab.text, lab
        x0, y0, x1, y1 = lab.text_box
        assert x0 >= 0 and y0 >= 0 and x1 <= side + 1e-6 and y1 <= side + 1e-6, lab


def test_font_and_line_scale_with_the_image():
    small_font, small_line = draw.sizes(160, 160)
    big_font, big_line = draw.sizes(1600, 1200)
    assert small_font == draw.FONT_MIN and small_line == 1
    assert big_font == draw.FONT_MAX and big_line == 6
    # a label on a 160 px image covers a small part of it
    pixels, labels = _annotate([[0.4, 0.4, 0.6, 0.6]], [1], [0.9])
    side = pixels.shape[0]
    x0, y0, x1, y1 = labels[0].text_box
    assert (y1 - y0) <= 0.1 * side and (x1 - x0) * (y1 - y0) <= 0.05 * side * side


@pytest.mark.parametrize("size, drawn", [((128, 128), (512, 512)), ((160, 120), (640, 480)),
                                         ((640, 480), (640, 480))])
def test_small_images_are_drawn_on_an_upscaled_copy(size, drawn):
    """128-160 px images (the demos') are enlarged by a whole factor to >= MIN_SIDE px, so the
    label covers a small part of the object; a large image keeps its size."""
    pixels, labels = _annotate([[0.25, 0.25, 0.75, 0.75]], [1], [0.9], size=size)
    assert (pixels.shape[1], pixels.shape[0]) == drawn
    x0, y0, x1, y1 = labels[0].text_box
    box = labels[0].box
    assert (y1 - y0) / float(box[3] - box[1]) < 0.25  # the label covers < a quarter of the box height
    # the box outline is at the scaled place: the box's top-left corner has its class colour
    assert tuple(int(v) for v in pixels[int(box[1]) + 1, int(box[0]) + 1]) == _rgb(draw.color_of(1))


def test_below_threshold_is_not_drawn():
    _pixels, labels = _annotate([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9]], [1, 2], [0.9, 0.2])
    assert [lab.class_id for lab in labels] == [1]


def test_agnostic_filter_keeps_the_best_of_overlapping_boxes_of_any_class():
    det = {"boxes": [[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.5, 0.52], [0.6, 0.6, 0.9, 0.9]],
           "classes": [1, 3, 2], "scores": [0.6, 0.8, 0.5], "num_detections": 3}
    out = draw.agnostic_filter(det, 0.3, 0.5)
    assert out["classes"] == [3, 2] and out["scores"] == [0.8, 0.5]
    assert out["num_detections"] == 3  # scalars pass through
