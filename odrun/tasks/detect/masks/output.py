"""Masks in `odrun detect`: `detection_masks` (box-relative, mask_height x mask_width floats)
reframed to the image with the OD API's `utils.ops.reframe_box_masks_to_image_masks` and
thresholded at 0.5 (what the inference script of the COCO tutorial does), then written as COCO
RLE `segmentation` (pycocotools.mask.encode) and, on request, one PNG per instance."""
import os

from odcore.errors import UserError
from odcore.fileio import atomic_path
from odrun.tasks.detect.masks import draw

MASK_THRESHOLD = 0.5  # the tutorial's tf.greater(detection_masks_reframed, 0.5)

_GRAPH = {}  # graph-mode (TF1 path) reframe: one graph + session, fed per image


def _reframe_graph_mode(masks, boxes, height, width):
    import tensorflow.compat.v1 as tf
    from object_detection.utils import ops as utils_ops
    if "session" not in _GRAPH:
        graph = tf.Graph()
        with graph.as_default():
            m = tf.placeholder(tf.float32, [None, None, None])
            b = tf.placeholder(tf.float32, [None, 4])
            hw = tf.placeholder(tf.int32, [2])
            out = utils_ops.reframe_box_masks_to_image_masks(m, b, hw[0], hw[1])
            out = tf.cast(tf.greater(out, MASK_THRESHOLD), tf.uint8)
        _GRAPH.update(session=tf.Session(graph=graph), fetch=out, feeds=(m, b, hw))
    m, b, hw = _GRAPH["feeds"]
    return _GRAPH["session"].run(_GRAPH["fetch"], {m: masks, b: boxes, hw: [height, width]})


def reframe(masks, boxes, height, width):
    """[N, mh, mw] box masks + [N, 4] normalised boxes -> [N, height, width] uint8 0/1."""
    import numpy as np
    import tensorflow as tf
    masks = np.asarray(masks, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float32)
    if not len(masks):
        return np.zeros((0, height, width), dtype=np.uint8)
    if not tf.executing_eagerly():
        return _reframe_graph_mode(masks, boxes, height, width)
    from object_detection.utils import ops as utils_ops
    out = utils_ops.reframe_box_masks_to_image_masks(tf.constant(masks), tf.constant(boxes), height, width)
    return tf.cast(tf.greater(out, MASK_THRESHOLD), tf.uint8).numpy()


def keep(det, threshold):
    """The detections at or above `threshold` (all arrays filtered alike), with `image_masks`
    added when the model returned masks."""
    import numpy as np
    idx = np.flatnonzero(np.asarray(det["scores"]) >= threshold)
    return {k: (np.asarray(v)[idx] if k in ("boxes", "classes", "scores", "masks") else v) for k, v in det.items()}


def add_image_masks(det, height, width, threshold):
    """det with only the kept detections and `image_masks` [N, H, W] (no-op without masks)."""
    if det.get("masks") is None:
        return det
    det = keep(det, threshold)
    det["image_masks"] = reframe(det["masks"], det["boxes"], height, width)
    return det


def rle(mask):
    """COCO RLE of one HxW 0/1 mask, JSON-ready (counts as text)."""
    import numpy as np
    from pycocotools import mask as mask_api
    r = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(r["size"][0]), int(r["size"][1])], "counts": str(r["counts"], "ascii")}


def write_pngs(det, out_dir, stem):
    """OUT_DIR/masks/<stem>_<k>.png (0/255) for each instance; returns the paths."""
    from PIL import Image
    folder = os.path.join(out_dir, "masks")
    os.makedirs(folder, exist_ok=True)
    paths = []
    for k, mask in enumerate(det.get("image_masks", ())):
        path = os.path.join(folder, "{}_{:03d}.png".format(stem, k))
        with atomic_path(path) as tmp:
            Image.fromarray(mask * 255).save(tmp, format="PNG")
        paths.append(path)
    return paths


def attach(results, det):
    """Add `segmentation` (COCO RLE) to the last len(det) entries of detections.json's list:
    the ones just appended for `det` (already filtered by add_image_masks, same order)."""
    masks = det.get("image_masks")
    if masks is None or not len(masks):
        return
    for entry, mask in zip(results[len(results) - len(masks):], masks):
        entry["segmentation"] = rle(mask)


def shown(image, det):
    """The image to draw boxes on: with the masks painted in when there are any."""
    if det.get("image_masks") is None or not len(det["image_masks"]):
        return image
    return draw.overlay(image, det["image_masks"], det["classes"])


def runtime_for(meta, runtime):
    """A model with masks runs on its own backend's detector (SavedModel on TF2, the frozen graph
    on TF1), the one that returns detection_masks; other runtimes are refused."""
    if not meta.get("instance_masks"):
        return runtime
    if runtime not in (None, "auto", "saved_model"):
        raise UserError("--runtime {} does not return instance masks".format(runtime), where="--runtime",
                        fix="omit --runtime for a Mask R-CNN export (masks come from its SavedModel/frozen graph)")
    return "saved_model"


def add_flags(parser):
    parser.add_argument("--mask-png", action="store_true",
                        help="Mask R-CNN exports: also write OUT_DIR/masks/<image>_<k>.png (0/255), one per "
                             "instance (masks are always in detections.json as COCO RLE `segmentation`)")
