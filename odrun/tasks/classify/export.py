"""`odrun export --workdir RUN --out MODEL` for a classifier.

MODEL/saved_model/ (signatures: serving_default takes encoded image bytes [N] (JPEG/PNG/GIF/BMP),
classify_pixels takes a uint8 batch [N, H, W, 3] of any size; both return probabilities,
classes and scores; `classification` is TF Serving's Classify signature: serialized tf.Examples
[N] with the image in feature `image/encoded` -> `classes` (names, string [N, C]) and `scores`
[N, C], method_name tensorflow/serving/classify), labels.txt (slim "ID:NAME"), metadata.json (task classify, model, size,
classes, step), and retrain.py's artifacts: output_graph.pb, a frozen GraphDef whose input is
`DecodeJpeg/contents:0` (one JPEG's bytes) and output `final_result:0` (probabilities [1, N]),
plus output_labels.txt (one name per line), so the tutorial's label_image-style test script
runs on it unchanged. Everything is written into a staged sibling and swapped in as one (odcore.fileio.staged_dir)."""
import os

from odcore.fileio import staged_dir, write_json, write_text
from odcore.paths import check_output_dir
from odrun.tasks.classify import data, evaluate, labels as L
from odrun.ui.progress import status

FROZEN_NAME = "output_graph.pb"
INPUT_TENSOR = "DecodeJpeg/contents:0"
OUTPUT_TENSOR = "final_result:0"
SAVED_MODEL = "saved_model"
BYTES_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "classify_pixels"
CLASSIFY_SIGNATURE = "classification"  # TF Serving's :classify (signature_name "classification")
CLASSIFY_METHOD = "tensorflow/serving/classify"  # signature_constants.CLASSIFY_METHOD_NAME
IMAGE_FEATURE = "image/encoded"  # the tf.Example key of the OD API / slim TFRecords


def _outputs(probs):
    import tensorflow as tf
    return {"probabilities": probs, "classes": tf.argmax(probs, -1, output_type=tf.int32),
            "scores": tf.reduce_max(probs, -1)}


class _Untracked(object):
    """Calls the Keras model without making it part of the SavedModel's object graph."""

    def __init__(self, model):
        self.__dict__["_fn"] = model

    def __call__(self, *a, **kw):
        return self._fn(*a, **kw)


def serving_module(clf, names):
    """A tf.Module holding the model and the three serving functions."""
    import tensorflow as tf
    size = clf.size
    module = tf.Module()
    # Only the variables are tracked, not the Keras model: saving a Keras model saves every
    # layer's call functions too, which made export and loading several times slower.
    module.weights = list(clf.full.weights)
    module.model = _Untracked(clf.full)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def classify_bytes(images):
        x = tf.map_fn(lambda e: data.decode_resize(e, size), images,
                      fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
        return _outputs(module.model(x, training=False))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="pixels")])
    def classify_pixels(pixels):
        return _outputs(module.model(data.resize(pixels, size), training=False))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_examples(inputs):
        feats = tf.io.parse_example(inputs, {IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string)})
        probs = classify_bytes(feats[IMAGE_FEATURE])["probabilities"]
        labels = tf.tile(tf.constant([list(names)]), [tf.shape(probs)[0], 1])
        return {"classes": labels, "scores": probs}

    module.classify_bytes, module.classify_pixels = classify_bytes, classify_pixels
    module.classify_examples = classify_examples
    return module


def mark_classify_method(saved_model_dir):
    """tf.saved_model.save writes every signature as a predict one; TF Serving's Classify (with
    --enable_signature_method_name_check) and GetModelMetadata read method_name: set it."""
    from tensorflow.core.protobuf import saved_model_pb2
    path = os.path.join(saved_model_dir, "saved_model.pb")
    saved = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved.ParseFromString(f.read())
    for graph in saved.meta_graphs:
        graph.signature_def[CLASSIFY_SIGNATURE].method_name = CLASSIFY_METHOD
    with open(path, "wb") as f:  # inside the staged export folder: swapped in whole or not at all
        f.write(saved.SerializeToString())


def frozen_graph(clf):
    """retrain.py's output_graph.pb: DecodeJpeg/contents (scalar string) -> final_result [1, N]."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    size = clf.size

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="contents")])
    def tutorial(contents):
        image = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")
        x = tf.expand_dims(data.resize(image, size), 0)
        return tf.identity(clf.full(x, training=False), name="final_result")

    graph_def = convert_variables_to_constants_v2(tutorial.get_concrete_function()).graph.as_graph_def()
    old, new = "contents", INPUT_TENSOR.split(":")[0]
    for node in graph_def.node:  # the placeholder gets the Inception graph's name
        if node.name == old:
            node.name = new
        node.input[:] = [new + i[len(old):] if i == old or i.startswith(old + ":") else i for i in node.input]
    names = {n.name for n in graph_def.node}
    assert new in names and "final_result" in names and "DecodeJpeg" in names, sorted(names)[:20]
    return graph_def


def export(run_dir, out_dir):
    _guard(run_dir, out_dir)
    with status("writing the export (SavedModel, the tutorial's frozen graph)"):  # tens of seconds: live
        return _export(run_dir, out_dir)


def _export(run_dir, out_dir):
    import tensorflow as tf
    s, clf = evaluate.load_run(run_dir)
    with staged_dir(out_dir) as tmp:
        # 1. SavedModel with the bytes and uint8 signatures
        module = serving_module(clf, s["classes"])
        tf.saved_model.save(module, os.path.join(tmp, SAVED_MODEL), signatures={
            BYTES_SIGNATURE: module.classify_bytes, PIXELS_SIGNATURE: module.classify_pixels,
            CLASSIFY_SIGNATURE: module.classify_examples})
        mark_classify_method(os.path.join(tmp, SAVED_MODEL))
        # 2. the tutorial's frozen graph + labels
        with open(os.path.join(tmp, FROZEN_NAME), "wb") as f:
            f.write(frozen_graph(clf).SerializeToString())
        write_text(os.path.join(tmp, L.RETRAIN_NAME), L.retrain_text(s["classes"]))
        write_text(os.path.join(tmp, L.SLIM_NAME), L.slim_text(s["classes"]))
        metadata = {
            "task": "classify", "model": s["model"], "image_size": clf.size, "tf_version": tf.__version__,
            "step": s["step"], "checkpoint": os.path.abspath(s["checkpoint"]),
            "classes": [{"id": i, "name": n} for i, n in enumerate(s["classes"])],
            "signatures": {
                BYTES_SIGNATURE: {"inputs": {"images": "string [N]: encoded JPEG/PNG/GIF/BMP"},
                                  "outputs": ["probabilities", "classes", "scores"]},
                PIXELS_SIGNATURE: {"inputs": {"pixels": "uint8 [N, H, W, 3] RGB, any H, W"},
                                   "outputs": ["probabilities", "classes", "scores"]},
                CLASSIFY_SIGNATURE: {"inputs": {"inputs": "string [N]: serialized tf.Example, the image in "
                                                          "feature " + IMAGE_FEATURE},
                                     "outputs": ["classes", "scores"], "method_name": CLASSIFY_METHOD}},
            "frozen_graph": {"file": FROZEN_NAME, "input": INPUT_TENSOR, "output": OUTPUT_TENSOR,
                             "labels": L.RETRAIN_NAME},
            "preprocessing": "decode (TensorFlow), bilinear resize to {0}x{0}, 0..255 floats; the base's own "
                             "scaling is inside the model".format(clf.size),
        }
        metadata["files"] = sorted(os.listdir(tmp)) + ["metadata.json"]
        write_json(os.path.join(tmp, "metadata.json"), metadata)
    return metadata


def _guard(run_dir, out_dir):
    check_output_dir(out_dir, [("run directory", run_dir)], flag="--out", verb="odrun export",
                     kind="export", replaces=True)


def from_args(args):
    """`odrun export` on a classifier run (flags: odrun.verbs.export) -> the export's metadata.json."""
    return export(args.workdir, args.out)


def show(metadata, args):
    print("exported step {} ({}, {} classes) to {}: saved_model/, {}, {}".format(
        metadata["step"], metadata["model"], len(metadata["classes"]), os.path.abspath(args.out),
        FROZEN_NAME, "output_labels.txt"))
