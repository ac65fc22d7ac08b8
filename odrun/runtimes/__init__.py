"""Inference runtimes behind one interface, used by `odrun detect` and `odrun serve`.

    rt = load(EXPORT_DIR, runtime=None)      # None: the fastest verified form the export carries
    rt.detect([HxWx3 uint8 array, ...])      # -> [{"boxes": (N,4) ymin,xmin,ymax,xmax in 0..1,
                                             #      "classes": (N,) int label-map ids, "scores": (N,)}]

Runtimes (files inside EXPORT_DIR; `odrun export --format` writes them):
  onnx         onnx/model.onnx        onnxruntime           never imports TensorFlow
  tflite       tflite/model.tflite    the LiteRT/TFLite interpreter (tflite_runtime or ai_edge_litert)
                                                             never imports TensorFlow
  frozen       frozen/frozen_graph.pb TensorFlow, GraphDef import (seconds, no SavedModel restore)
  saved_model  saved_model/           TensorFlow SavedModel (the OD API's export; slowest to load)

onnx, frozen and saved_model also give each image's dict an "outputs" entry: the signature's own
outputs for that image, unpadded by nothing (what TF Serving answers; `odrun serve` returns them).
"""
import importlib
import os

from odcore.errors import UserError
from odrun.workdir.metadata import export_metadata

# Order of preference for runtime=None: the TF-free ones first (fast start), then TF.
RUNTIMES = ("onnx", "tflite", "frozen", "saved_model")
FILES = {"onnx": "onnx/model.onnx", "tflite": "tflite/model.tflite", "frozen": "frozen/frozen_graph.pb",
         "saved_model": "saved_model"}
MODULES = {"onnx": "onnxruntime", "tflite": ("tflite_runtime", "ai_edge_litert"),
           "frozen": "tensorflow", "saved_model": "tensorflow"}


def read_metadata(export_dir):
    """The export's metadata.json (odrun.workdir.metadata: a damaged one is exit 2)."""
    return export_metadata(export_dir)[0]


def _installed(runtime):
    import importlib.util
    names = MODULES[runtime]
    names = names if isinstance(names, tuple) else (names,)
    return any(importlib.util.find_spec(n) is not None for n in names)


def present(export_dir, meta=None):
    """Runtimes whose files the export carries (saved_model always counts when saved_model/ exists)."""
    meta = read_metadata(export_dir) if meta is None else meta
    formats = meta.get("formats") or {}
    out = []
    for name in RUNTIMES:
        if not os.path.exists(os.path.join(export_dir, FILES[name])):
            continue
        if name in ("onnx", "tflite", "frozen") and not (formats.get(name) or {}).get("parity", {}).get("ok"):
            continue  # written but never verified (or failed parity): not offered automatically
        out.append(name)
    return out


def choose(export_dir, runtime=None, meta=None):
    """The runtime to use: `runtime` if given (checked), else the first present + installed one."""
    meta = read_metadata(export_dir) if meta is None else meta
    if runtime and runtime != "auto":
        if runtime not in RUNTIMES:
            raise UserError("unknown runtime {!r}".format(runtime), where="--runtime",
                            fix="one of: auto, " + ", ".join(RUNTIMES))
        if not os.path.exists(os.path.join(export_dir, FILES[runtime])):
            raise UserError("this export has no {} form ({} missing)".format(runtime, FILES[runtime]),
                            where=export_dir, fix="odrun export --format {} --workdir RUN_DIR --out {}".format(
                                "onnx,tflite" if runtime in ("onnx", "tflite") else runtime, export_dir))
        if not _installed(runtime):
            raise UserError("the {} runtime is not installed".format(runtime), where="--runtime",
                            fix="pip install " + {"onnx": "onnxruntime", "tflite": "tflite-runtime"}.get(
                                runtime, "tensorflow"))
        return runtime
    for name in present(export_dir, meta):
        if _installed(name):
            return name
    return "saved_model"


def load(export_dir, runtime=None, meta=None, api=None, threads=None):
    """A loaded runtime object (see the module docstring). `api` (tf1/tf2) picks the SavedModel loader;
    `threads`: the onnx/tflite runtime's intra-op threads (None: the runtime's own default; TensorFlow's
    runtimes keep theirs)."""
    meta = read_metadata(export_dir) if meta is None else meta
    name = choose(export_dir, runtime, meta)
    module = importlib.import_module("odrun.runtimes." + name)
    if name == "saved_model":
        return module.Runtime(export_dir, meta, api=api)
    if name in ("onnx", "tflite"):
        return module.Runtime(export_dir, meta, threads=threads)
    return module.Runtime(export_dir, meta)


def group_by_shape(images):
    """{shape: [indexes]}: models with a dynamic H, W still batch equal shapes only."""
    groups = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    return groups


def unpack(num, boxes, classes, scores, class_offset=0):
    """Batched detection outputs -> list of per-image dicts (numpy), first num[i] rows kept."""
    import numpy as np
    out = []
    for j in range(len(boxes)):
        n = int(num[j])
        out.append({"boxes": np.asarray(boxes[j][:n], dtype=np.float32),
                    "classes": np.asarray(classes[j][:n]).astype(int) + class_offset,
                    "scores": np.asarray(scores[j][:n], dtype=np.float32)})
    return out


# Outputs of the OD API's Faster/Mask R-CNN signature that are not one row per image (anchors,
# [batch * proposals, ...] box-classifier tensors, the [4] image shape): never split per image.
NOT_PER_IMAGE = frozenset(("anchors", "image_shape", "box_classifier_features", "class_predictions_with_background",
                           "mask_predictions", "refined_box_encodings"))


def per_image_outputs(out, count):
    """{name: batched array} of one model call over `count` images -> [{name: that image's row}]
    for the outputs whose first dimension is the batch (TF Serving's row format: one row each)."""
    import numpy as np
    arrays = {k: np.asarray(v) for k, v in out.items() if k not in NOT_PER_IMAGE}
    batched = {k: v for k, v in arrays.items() if v.ndim >= 1 and v.shape[0] == count}
    return [{k: v[j] for k, v in sorted(batched.items())} for j in range(count)]


def with_outputs(dets, out, count):
    """dets (unpack's, one model call) with each image's signature outputs attached."""
    for det, row in zip(dets, per_image_outputs(out, count)):
        det["outputs"] = row
    return dets


def resize_bilinear(image, height, width, half_pixel=False):
    """The OD API's fixed_shape_resizer in numpy: float32 HxWx3.

    The OD API resizes with tf.compat.v1.image.resize_images(align_corners=False), i.e. the legacy
    ResizeBilinear mapping (source = dest * in/out, no half-pixel centres, no antialias);
    half_pixel=True gives TF2's tf.image.resize instead. The TFLite model has a fixed input and no
    resizer inside, so the resize the SavedModel does in its graph is done here, the same way."""
    import numpy as np
    src = np.asarray(image, dtype=np.float32)
    in_h, in_w = src.shape[:2]

    def axis(n_out, n_in):
        scale = float(n_in) / n_out
        pos = np.arange(n_out, dtype=np.float64) * scale
        if half_pixel:
            pos = (np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, fy = axis(height, in_h)
    x0, x1, fx = axis(width, in_w)
    top = src[y0][:, x0] * (1 - fx)[None, :, None] + src[y0][:, x1] * fx[None, :, None]
    bottom = src[y1][:, x0] * (1 - fx)[None, :, None] + src[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


def coco_row(box, cls, score, width, height, image_id, name=None):
    """One detection of a runtime (box ymin, xmin, ymax, xmax in 0..1) as a COCO results row:
    bbox [x, y, w, h] in pixels, 2 decimals; score 5 decimals; `category_name` when `name` is
    given (odrun serve). The one place `odrun detect` and `odrun serve` turn boxes into rows."""
    ymin, xmin, ymax, xmax = [float(v) for v in box]
    x, y, bw, bh = xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height
    row = {"image_id": image_id, "category_id": int(cls)}
    if name is not None:
        row["category_name"] = name
    row["bbox"] = [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)]
    row["score"] = round(float(score), 5)
    return row
