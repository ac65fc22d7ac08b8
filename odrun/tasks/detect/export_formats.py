"""Deployable forms of a TF2 export, each verified against the SavedModel before it is kept.

    saved_model  saved_model/ (the OD API export) + 1/ : the same files hard-linked as version 1,
                 so EXPORT_DIR is a TensorFlow Serving model base path (MODEL/<version>/saved_model.pb)
    frozen       frozen/frozen_graph.pb + signature.json: the serving function with its variables
                 folded into constants (fast to load on TF-only machines)
    onnx         onnx/model.onnx: tf2onnx from the SavedModel (opset below; float32 NHWC input, the
                 OD API's resize + NMS inside the graph)
    tflite       tflite/model.tflite: SSD only, the OD API's export_tflite_graph_tf2 graph +
                 tf.lite.TFLiteConverter (float; --quantize dynamic for dynamic-range weights)

Parity: the SavedModel and the new form run on the same images (the run's eval TFRecord, else
synthetic ones); every SavedModel detection with score >= PARITY_MIN_SCORE (at most PARITY_TOP_K
per image) must have a same-class partner with every box coordinate within box_tol and score
within score_tol. The figures go into metadata.json["formats"][FORM]["parity"]; a form that fails
is not kept and the export exits 1.
"""
import json
import os
import shutil
import subprocess
import sys
import time

from odcore.errors import EXIT_FAILED, UserError
from odcore.fileio import atomic_path, write_json
from odrun import runtimes
from odrun.runtimes import FILES
from odrun.serve import warmup
from odrun.tasks.detect.config import pipeline as pc
from odrun.tasks.detect.draw import iou as box_iou
from odrun.ui.progress import status

FORMATS = ("saved_model", "frozen", "onnx", "tflite")
# Opset 13: the lowest where tf2onnx maps the OD API's NonMaxSuppressionV5 inside its map_fn/while
# loops and TensorListStack/Gather ops without fallbacks (checked with tf2onnx 1.17 here).
ONNX_OPSET = 13
TFLITE_MAX_DETECTIONS = 100
WARMUP_SIZE = 320  # the warmup image's side when the model has no fixed input size
PARITY_IMAGES = 8
PARITY_MIN_SCORE = 0.05
PARITY_TOP_K = 20
# box coordinates are normalised (0..1); scores 0..1
# what each writer's live line says it is doing
WRITING = {"frozen": "folding the variables into constants", "onnx": "tf2onnx, usually a few minutes on a CPU",
           "tflite": "the TFLite graph, then TFLiteConverter"}
TOLERANCE = {"frozen": (1e-4, 1e-4), "onnx": (1e-3, 1e-3), "tflite": (0.02, 0.02),
             "tflite-dynamic": (0.1, 0.1)}


def parse(values):
    """--format values ('onnx,tflite' and/or repeated) -> ordered unique list, saved_model first."""
    names = []
    for value in values or ["saved_model"]:
        for name in value.split(","):
            name = name.strip().lower().replace("-", "_")
            if not name:
                continue
            if name == "savedmodel":
                name = "saved_model"
            if name not in FORMATS:
                raise UserError("unknown export format {!r}".format(name), where="--format",
                                fix="one or more of: " + ", ".join(FORMATS))
            if name not in names:
                names.append(name)
    return [n for n in FORMATS if n in names or n == "saved_model"]


def check_supported(formats, config, api, quantize=None):
    """Refuse, before anything is built, what cannot be exported (named reason + fix)."""
    import importlib.util
    extra = [f for f in formats if f != "saved_model"]
    if extra and api != "tf2":
        raise UserError("--format {} needs the TF2 code path (this export uses {})".format(",".join(extra), api),
                        where="--format", fix="export with --api tf2, or --format saved_model")
    if "tflite" in formats:
        arch = pc.arch(config)
        if arch != "ssd":
            raise UserError("TFLite export is for SSD models only: the OD API's export_tflite_graph_tf2 "
                            "has no TFLite graph for {} (its NMS and second stage have no TFLite "
                            "form)".format(arch), where="--format tflite",
                            fix="use --format onnx (any architecture), or train an SSD (--model ssd_mobilenet_v2)")
        resizer = config.model.ssd.image_resizer.WhichOneof("image_resizer_oneof")
        if resizer != "fixed_shape_resizer":
            raise UserError("TFLite export needs a fixed input size; this SSD uses {}".format(resizer),
                            where="model.ssd.image_resizer", fix="train with --image-size N (fixed_shape_resizer)")
    if quantize and "tflite" not in formats:
        raise UserError("--quantize applies to the tflite format only", where="--quantize",
                        fix="add --format tflite")
    needs = {"onnx": ("tf2onnx", "pip install tf2onnx onnxruntime"), "tflite": (None, None)}
    for fmt in formats:
        mod, fix = needs.get(fmt, (None, None))
        if mod and importlib.util.find_spec(mod) is None:
            raise UserError("--format {} needs {} (not installed)".format(fmt, mod), where="--format", fix=fix)


# 1) the forms -----------------------------------------------------------------------------------

def serving_layout(out_dir, version=1):
    """OUT/<version>/ = OUT/saved_model/ hard-linked (no extra disk; copied where links fail)."""
    src = os.path.join(out_dir, "saved_model")
    dst = os.path.join(out_dir, str(version))

    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link)
    return {"path": str(version), "base_path": ".", "version": version}


def write_warmup(out_dir, size=None):
    """saved_model/assets.extra/tf_serving_warmup_requests (TF Serving's warmup file, TFRecord of
    PredictionLog): one request per signature of the SavedModel, a mid-grey SIZE x SIZE image as the
    signature takes it (float/uint8 pixels [1, H, W, 3], or one JPEG for a DT_STRING input), so both
    TF Serving and `odrun serve` trace each signature before the version says AVAILABLE."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.saved_model import loader_impl
    saved = os.path.join(out_dir, "saved_model")
    graphs = [g for g in loader_impl.parse_saved_model(saved).meta_graphs if "serve" in g.meta_info_def.tags]
    side = int(size or WARMUP_SIZE)
    pixels = np.full((side, side, 3), 128, dtype=np.uint8)
    records, signatures = [], []
    for key, sig in sorted(graphs[0].signature_def.items()) if graphs else ():
        if len(sig.inputs) != 1:
            continue  # not an image signature of the OD API exporter
        (name, info), = sig.inputs.items()
        dtype = tf.dtypes.as_dtype(info.dtype)
        value = [tf.io.encode_jpeg(pixels).numpy()] if dtype == tf.string else pixels[None].astype(dtype.as_numpy_dtype)
        records.append(warmup.prediction_log("model", key, {name: value}))
        signatures.append(key)
    folder = os.path.join(saved, os.path.dirname(warmup.PATH))
    os.makedirs(folder, exist_ok=True)
    warmup.write_records(os.path.join(saved, warmup.PATH), records)
    return {"path": warmup.PATH, "records": len(records), "signatures": signatures, "size": side}


def write_frozen(out_dir, model=None):
    """`model`: the SavedModel already loaded (tf.saved_model.load takes tens of seconds)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    model = model if model is not None else tf.saved_model.load(os.path.join(out_dir, "saved_model"))
    fn = model.signatures["serving_default"]
    frozen = convert_variables_to_constants_v2(fn)
    folder = os.path.join(out_dir, "frozen")
    os.makedirs(folder, exist_ok=True)
    tf.io.write_graph(frozen.graph.as_graph_def(), folder, "frozen_graph.pb", as_text=False)
    # frozen.outputs is flat, in tf.nest order of the signature's dict (sorted keys)
    keys = tf.nest.flatten({k: k for k in fn.structured_outputs})
    outputs = {k: t.name for k, t in zip(keys, frozen.outputs)}
    write_json(os.path.join(folder, "signature.json"),
               {"inputs": [t.name for t in frozen.inputs], "outputs": outputs})
    return {"path": "frozen/frozen_graph.pb"}


def write_onnx(out_dir, log):
    folder = os.path.join(out_dir, "onnx")
    os.makedirs(folder, exist_ok=True)
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", os.path.join(out_dir, "saved_model"),
           "--signature_def", "serving_default", "--opset", str(ONNX_OPSET), "--output", os.path.join(folder, "model.onnx")]
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(cmd) + "\n").encode())
        f.flush()
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        raise UserError("tf2onnx failed (exit {})".format(rc), where=log, fix="see the log; or drop --format onnx",
                        code=EXIT_FAILED)
    import tf2onnx
    return {"path": "onnx/model.onnx", "opset": ONNX_OPSET, "tf2onnx": tf2onnx.__version__,
            "input": {"dtype": "float32", "shape": [None, None, None, 3],
                      "note": "pixel values 0..255, NHWC; resize, normalisation and NMS are in the graph"}}


def write_tflite(config_path, run_dir, out_dir, quantize=None):
    """export_tflite_graph_tf2 (SSD graph ending in TFLite_Detection_PostProcess) -> TFLiteConverter."""
    import numpy as np
    import tensorflow as tf
    from object_detection import export_tflite_graph_lib_tf2
    from object_detection.builders import model_builder
    from object_detection.utils import config_util
    configs = config_util.get_configs_from_pipeline_file(config_path)
    pipeline = config_util.create_pipeline_proto_from_configs(configs)
    folder = os.path.join(out_dir, "tflite")
    graph_dir = os.path.join(folder, "graph")
    # use_regular_nms=True: per-class NMS like the SavedModel's (the fast variant keeps one class per box)
    export_tflite_graph_lib_tf2.export_tflite_model(pipeline, run_dir, graph_dir, TFLITE_MAX_DETECTIONS, True)
    converter = tf.lite.TFLiteConverter.from_saved_model(os.path.join(graph_dir, "saved_model"))
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with atomic_path(os.path.join(folder, "model.tflite")) as tmp:
        with open(tmp, "wb") as f:
            f.write(converter.convert())
    shutil.rmtree(graph_dir, ignore_errors=True)
    # The graph starts after preprocessing: record the feature extractor's normalisation
    # (per-channel affine for every SSD extractor; measured, then checked on a third image).
    model = model_builder.build(configs["model"], is_training=False)
    fr = configs["model"].ssd.image_resizer.fixed_shape_resizer
    h, w = int(fr.height), int(fr.width)

    def pre(value):
        return model.preprocess(tf.fill([1, h, w, 3], float(value)))[0].numpy()[0, 0, 0]

    offset, at255 = pre(0.0), pre(255.0)
    scale = (at255 - offset) / 255.0
    if not np.allclose(pre(100.0), offset + 100.0 * scale, atol=1e-4):
        raise UserError("this SSD's preprocessing is not a per-channel affine map", where=config_path,
                        fix="use --format onnx", code=EXIT_FAILED)
    return {"path": "tflite/model.tflite", "input": {"dtype": "float32", "shape": [1, h, w, 3]},
            "preprocess": {"resize": "bilinear, half-pixel centres", "scale": [float(v) for v in scale],
                           "offset": [float(v) for v in offset]},
            "class_offset": 1, "quantize": quantize or "none", "nms": "regular (per class)",
            "max_detections": TFLITE_MAX_DETECTIONS}


# 2) parity ---------------------------------------------------------------------------------------

def parity_images(config, count=PARITY_IMAGES):
    """Up to `count` decoded images from the run's eval (else train) TFRecord; synthetic if none."""
    import numpy as np
    import tensorflow as tf
    paths = list(config.eval_input_reader[0].tf_record_input_reader.input_path) if config.eval_input_reader else []
    paths += list(config.train_input_reader.tf_record_input_reader.input_path)
    images = []
    for pattern in paths:
        files = tf.io.gfile.glob(pattern)
        if not files:
            continue
        try:
            for raw in tf.data.TFRecordDataset(files).take(count - len(images)):
                ex = tf.train.Example.FromString(raw.numpy())
                encoded = ex.features.feature["image/encoded"].bytes_list.value[0]
                images.append(tf.io.decode_image(encoded, channels=3).numpy())
        except tf.errors.OpError:
            continue
        if len(images) >= count:
            break
    if not images:
        rng = np.random.RandomState(0)
        images = [rng.randint(0, 255, size=(240, 320, 3)).astype(np.uint8) for _ in range(count)]
    return images, ("TFRecord" if paths and images else "synthetic")


def compare(reference, candidate, box_tol, score_tol, min_score=PARITY_MIN_SCORE, top_k=PARITY_TOP_K):
    """Parity figures of `candidate` detections against `reference` (lists of per-image dicts).

    A barely trained model may score nothing >= min_score: then the top_k of each image are
    compared whatever their score (min_score 0 in the figures)."""
    import numpy as np
    if min_score > 0 and not any(len(r["scores"]) and float(np.max(r["scores"])) >= min_score for r in reference):
        return compare(reference, candidate, box_tol, score_tol, 0.0, top_k)
    compared = matched = 0
    max_box = max_score = 0.0
    for ref, cand in zip(reference, candidate):
        order = np.argsort(-ref["scores"])[:top_k]
        used = set()
        for i in order:
            if ref["scores"][i] < min_score:
                break
            compared += 1
            best, best_j = -1.0, None
            for j in range(len(cand["scores"])):
                if j in used or int(cand["classes"][j]) != int(ref["classes"][i]):
                    continue
                iou = box_iou(ref["boxes"][i], cand["boxes"][j]) - abs(float(cand["scores"][j] - ref["scores"][i]))
                if iou > best:
                    best, best_j = iou, j
            if best_j is None:
                max_box = max_score = float("inf")
                continue
            used.add(best_j)
            dbox = float(np.max(np.abs(np.asarray(ref["boxes"][i]) - np.asarray(cand["boxes"][best_j]))))
            dscore = abs(float(ref["scores"][i]) - float(cand["scores"][best_j]))
            max_box, max_score = max(max_box, dbox), max(max_score, dscore)
            if dbox <= box_tol and dscore <= score_tol:
                matched += 1
    return {"images": len(reference), "compared": compared, "matched": matched,
            "max_box_diff": round(max_box, 6) if max_box != float("inf") else None,
            "max_score_diff": round(max_score, 6) if max_score != float("inf") else None,
            "box_tol": box_tol, "score_tol": score_tol, "min_score": min_score, "top_k": top_k,
            "ok": compared > 0 and matched == compared}


def write(formats, config_path, run_dir, out_dir, quantize=None, log=None, say=None):
    """Write every requested form into out_dir (the export's temp dir); returns metadata["formats"].

    Raises (exit 1) when a form fails its parity check; out_dir is then discarded by the caller."""
    say = say or (lambda text: None)
    log = log or os.path.join(out_dir, "export.log")  # tf2onnx output: kept in the export
    warm = write_warmup(out_dir, pc.image_size(pc.load(config_path)))  # before 1/: linked into it too
    result = {"saved_model": {"path": "saved_model", "serving": dict(serving_layout(out_dir), warmup=warm)}}
    extra = [f for f in formats if f != "saved_model"]
    if not extra:
        return result
    with status("export: loading the SavedModel (the reference for frozen and the parity checks)"):
        reference_rt = runtimes.load(out_dir, "saved_model", {"api": "tf2"})  # loaded once: frozen + parity
    writers = {"frozen": lambda: write_frozen(out_dir, getattr(reference_rt.detect, "model", None)),
               "onnx": lambda: write_onnx(out_dir, log),
               "tflite": lambda: write_tflite(config_path, run_dir, out_dir, quantize)}
    for fmt in extra:
        t0 = time.time()
        with status("export: writing {} ({})".format(fmt, WRITING[fmt])):  # a live line with its time
            result[fmt] = writers[fmt]()
        result[fmt]["seconds"] = round(time.time() - t0, 1)
        result[fmt]["bytes"] = _size(os.path.join(out_dir, FILES[fmt]))
    # parity: the SavedModel is the reference
    images, source = parity_images(pc.load(config_path))
    meta = {"api": "tf2", "formats": result}
    with status("export: running the SavedModel on {} images (parity reference)".format(len(images))):
        reference = reference_rt.detect(images)
    failed = []
    for fmt in extra:
        key = fmt + "-dynamic" if fmt == "tflite" and quantize == "dynamic" else fmt
        box_tol, score_tol = TOLERANCE[key]
        with status("export: checking {} against the SavedModel".format(fmt)):
            candidate = runtimes.load(out_dir, fmt, meta).detect(images)
        figures = compare(reference, candidate, box_tol, score_tol)
        figures["source"] = source
        result[fmt]["parity"] = figures
        say("export: {} parity {}/{} detections within box {} / score {} (max diff {} / {})".format(
            fmt, figures["matched"], figures["compared"], box_tol, score_tol,
            figures["max_box_diff"], figures["max_score_diff"]))
        if not figures["ok"]:
            failed.append(fmt)
    if failed:
        raise UserError("parity check failed for {}: {}".format(", ".join(failed), json.dumps(
            {f: result[f]["parity"] for f in failed})), where=out_dir,
            fix="report this model; export the other formats without it", code=EXIT_FAILED)
    return result


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
