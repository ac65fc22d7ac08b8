"""Request bodies -> images, model outputs -> TF Serving / COCO answers (no aiohttp here).

Limits, all checked before anything is decoded: an image's pixels (--max-pixels), the decoded
pixels of one request (--max-request-pixels, 413), and the memory the decoded request needs
against the memory free now (503). JSON that is not strict (NaN, Infinity, numbers out of
float range) or nested past Python's recursion limit is a 400; so are booleans, strings and
values outside 0..255 in a pixel array.
"""
import base64
import io
import json
import math
import os

from odrun.runtimes import coco_row
from odrun.tasks.detect.masks import output as seg_output

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "rest.json"), encoding="utf-8") as _f:
    _REST = json.load(_f)
MAX_INSTANCES = 64
BYTES_PER_PIXEL = 3 + 3 * 4  # the RGB array plus the runtimes' float32 copy of it


class BadRequest(Exception):
    status = 400


class TooLarge(BadRequest):
    status = 413


class NoMemory(BadRequest):
    status = 503


def _parse_error(what, offset):
    """TF Serving's words for a body that is not JSON (rest.json json_parse: json_tensor.cc ParseJson)."""
    return BadRequest(_REST["json_parse"]["value"].format(what=what, offset=offset))


def _no_constant(name):
    raise BadRequest(_REST["json_parse"]["value"].format(what="Invalid value.", offset=0) +
                     " ({} is not a JSON number)".format(name))


def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(_REST["json_parse"]["value"].format(what="Number too big to be stored in double.", offset=0)
                         + " ({})".format(text[:40]))
    return value


def parse_json(raw):
    """Strict JSON (no NaN/Infinity/1e400) -> a Python value; a body nested too deep is a 400."""
    if not raw.strip():
        raise BadRequest(_REST["json_empty"]["value"])
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise _parse_error("nested deeper than this server reads.", 0)
    except UnicodeDecodeError as exc:
        raise _parse_error("Invalid encoding in string.", exc.start)
    except json.JSONDecodeError as exc:
        raise _parse_error(exc.msg + ".", exc.pos)
    except ValueError as exc:
        raise _parse_error("{}.".format(exc), 0)


def available_memory():
    """Bytes the kernel says are available now (Linux /proc/meminfo), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_budget(sizes, limits):
    """sizes: [(what, width, height)]. Per image, per request, then memory free now."""
    total = 0
    for what, w, h in sizes:
        if w * h > limits.max_pixels:
            raise TooLarge("{}: {}x{} pixels is over the limit of {} (--max-pixels)".format(
                what, w, h, limits.max_pixels))
        total += w * h
    if total > limits.max_request_pixels:
        raise TooLarge("this request decodes to {} pixels, over the limit of {} per request "
                       "(--max-request-pixels): send fewer or smaller images".format(total, limits.max_request_pixels))
    free = available_memory()
    if free is not None and total * BYTES_PER_PIXEL > free // 2:
        raise NoMemory("not enough memory free now to decode {} pixels ({} MB needed, {} MB available): "
                       "retry later".format(total, total * BYTES_PER_PIXEL >> 20, free >> 20))


def open_image(data, what):
    """A lazily opened PIL image (only its header read) -> (image, width, height)."""
    from PIL import Image
    try:
        im = Image.open(io.BytesIO(data))
        return im, im.size[0], im.size[1]
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for non-images
        raise BadRequest("{} is not a readable image ({})".format(what, type(exc).__name__))


def decode_opened(im, what):
    import numpy as np
    try:
        with im:
            if im.mode != "RGB":  # convert() of an RGB image is one more copy of its pixels
                im = im.convert("RGB")
            return np.asarray(im)
    except Exception as exc:  # noqa: BLE001 - truncated/damaged data shows only when decoding
        raise BadRequest("{} is not a readable image ({})".format(what, type(exc).__name__))


def decode_image(data, limits, what="image"):
    """One uploaded image -> HxWx3 uint8 (header read and the budget checked first)."""
    im, w, h = open_image(data, what)
    check_budget([(what, w, h)], limits)
    return decode_opened(im, what)


def array_shape(inst, what):
    """An HxWx3 nested list -> an object array (its values checked later by pixel_values)."""
    import numpy as np
    try:
        obj = np.array(inst, dtype=object)
    except (ValueError, TypeError):
        obj = None
    if obj is None or obj.ndim != 3 or obj.shape[2] != 3 or obj.size == 0:
        raise BadRequest("{}: expected an HxWx3 pixel array, got shape {}".format(
            what, list(obj.shape) if obj is not None else "irregular"))
    return obj


def pixel_values(obj, what):
    """Numbers 0..255 -> uint8 (booleans, strings, NaN, out-of-range values refused)."""
    import numpy as np
    kinds = set(map(type, obj.ravel().tolist()))
    if not kinds <= {int, float}:
        bad = sorted(k.__name__ for k in kinds - {int, float})
        raise BadRequest("{}: pixel values must be numbers 0..255, found {}".format(what, ", ".join(bad)))
    arr = obj.astype(np.float64)
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
        raise BadRequest("{}: pixel values must be numbers 0..255 (got {} .. {})".format(what, arr.min(), arr.max()))
    return arr.astype(np.uint8)


def b64_bytes(value, what):
    if not isinstance(value, dict) or set(value) != {"b64"} or not isinstance(value["b64"], str):
        raise BadRequest("{}: expected {{\"b64\": \"<base64 image>\"}}".format(what))
    try:
        return base64.b64decode(value["b64"], validate=True)
    except ValueError:
        raise BadRequest("{}.b64 is not valid base64".format(what))


def decode_instances(instances, limits):
    """TF Serving instances (b64 objects, named single inputs, HxWx3 lists) -> [HxWx3 uint8];
    every image's size is known and the budget checked before any is decoded."""
    if not isinstance(instances, list) or not instances:
        raise BadRequest('"instances" must be a non-empty list')
    if len(instances) > MAX_INSTANCES:
        raise BadRequest("at most {} instances per request".format(MAX_INSTANCES))
    items = []
    for i, inst in enumerate(instances):
        what = "instances[{}]".format(i)
        if isinstance(inst, dict) and len(inst) == 1 and "b64" not in inst:
            inst = list(inst.values())[0]  # {"input_tensor": {...}} (a named single input)
        if isinstance(inst, dict):
            items.append((what, "b64") + open_image(b64_bytes(inst, what), what))
        elif isinstance(inst, list):
            obj = array_shape(inst, what)
            items.append((what, "array", obj, obj.shape[1], obj.shape[0]))
        else:
            raise BadRequest("{}: expected {{\"b64\": ...}} or an HxWx3 list".format(what))
    check_budget([(what, w, h) for what, _, _, w, h in items], limits)
    return [decode_opened(p, what) if kind == "b64" else pixel_values(p, what) for what, kind, p, _, _ in items]


def outputs(det):
    """One detection dict -> the signature's outputs TF Serving answers, by name, as float32 numpy
    arrays (odrun.serve.jsonout writes them): all of them as the model gave them (padded to max
    detections) when the runtime returns them (onnx, frozen, saved_model); the four
    TFLite_Detection_PostProcess gives, cut at num_detections, otherwise."""
    import numpy as np
    if det.get("outputs"):
        return dict(det["outputs"])
    f32 = lambda v: np.asarray(v, dtype=np.float32)  # noqa: E731
    out = {"num_detections": np.float32(len(det["scores"])),
           "detection_boxes": f32(det["boxes"]),
           "detection_classes": f32(det["classes"]),
           "detection_scores": f32(det["scores"])}
    if det.get("masks") is not None:
        out["detection_masks"] = f32(det["masks"])
    return out


def predict_answer(dets, columnar):
    """Row format: {"predictions": [{name: value}]}; columnar: {"outputs": {name: [value per image]}}
    (TF Serving's REST API document, "Response format"); the values numpy arrays (jsonout.dumps)."""
    rows = [outputs(d) for d in dets]
    if not columnar:
        return {"predictions": rows}
    return {"outputs": {k: [r[k] for r in rows] for k in rows[0]}} if rows else {"outputs": {}}


def coco_detections(det, width, height, threshold, names, image_id=1):
    """Same numbers as `odrun detect`'s detections.json (bbox [x, y, w, h] pixels, 2 decimals;
    `segmentation` COCO RLE when the model returned masks)."""
    det = seg_output.add_image_masks(det, height, width, threshold)
    out = []
    for box, cls, score in zip(det["boxes"], det["classes"], det["scores"]):
        if score < threshold:
            continue
        out.append(coco_row(box, cls, score, width, height, image_id, name=names.get(int(cls), str(int(cls)))))
    seg_output.attach(out, det)
    return out
