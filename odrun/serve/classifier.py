"""A classifier export (`odrun train --task classify; odrun export`) served through its own
SavedModel signatures, as TF Serving serves it: :predict on any signature (serving_default takes
encoded images, classify_pixels uint8 pixels), :classify on the `classification` signature
(serialized tf.Examples; the export writes it), :regress answered with TF Serving's error (a
classifier has no regression signature). Imports TensorFlow (a classifier has no TF-free form)."""
import os

import numpy as np

from odrun.serve.codecs import BadRequest
from odrun.tasks.classify.export import SAVED_MODEL

DTYPES = {"string": np.object_}


class Runtime(object):
    name = "saved_model"

    def __init__(self, export_dir):
        import tensorflow as tf
        self.tf = tf
        bare = os.path.isfile(os.path.join(export_dir, "saved_model.pb"))  # a version folder (MODEL/2)
        self.model = tf.saved_model.load(export_dir if bare else os.path.join(export_dir, SAVED_MODEL))  # the variables
        self.fns = dict(self.model.signatures)
        self.max_batch = None

    def specs(self, name):
        """{input name: (numpy dtype, rank)} of signature `name` (for tfjson.request_tensors)."""
        _, kwargs = self.fns[name].structured_input_signature
        return {k: (DTYPES.get(s.dtype.name, s.dtype.as_numpy_dtype), s.shape.rank) for k, s in kwargs.items()}

    def run(self, name, arrays):
        """Signature `name` on {input: numpy array} -> {output: numpy array}."""
        tf = self.tf
        fn = self.fns[name]
        _, kwargs = fn.structured_input_signature
        try:
            feeds = {k: tf.constant(v.tolist() if v.dtype == np.object_ else v, dtype=kwargs[k].dtype)
                     for k, v in arrays.items()}
            return {k: v.numpy() for k, v in fn(**feeds).items()}
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:  # the request's tensors
            raise BadRequest(getattr(exc, "message", None) or str(exc))

    def serialized(self, context, rows):
        """(context, [features]) of tfjson.examples -> serialized tf.Examples, context first (TF
        Serving's InputToSerializedExampleTensor concatenates the two: the example's features win)."""
        head = example(self.tf, context).SerializeToString() if context is not None else b""
        return np.array([head + example(self.tf, r).SerializeToString() for r in rows], dtype=object)

    def classify(self, name, context, rows):
        """-> TF Serving's ClassificationResult as REST prints it: [[[label, score], ...] per example]."""
        out = self.run(name, {"inputs": self.serialized(context, rows)})
        scores, classes = out.get("scores"), out.get("classes")
        count = len(rows)
        width = (scores if scores is not None else classes).shape[1]
        result = []
        for i in range(count):
            labels = [classes[i, j].decode("utf-8", "replace") if classes is not None else "" for j in range(width)]
            values = [float(scores[i, j]) if scores is not None else 0.0 for j in range(width)]
            result.append([[label, value] for label, value in zip(labels, values)])
        return {"result": result}

    def regress(self, name, context, rows):
        out = self.run(name, {"inputs": self.serialized(context, rows)})
        return {"result": [float(v) for v in np.asarray(out["outputs"]).reshape(len(rows), -1)[:, 0]]}


def example(tf, features):
    """{name: (kind, values)} -> tf.train.Example."""
    ex = tf.train.Example()
    for name, (kind, values) in features.items():
        feature = ex.features.feature[name]
        if kind == "bytes":
            feature.bytes_list.value.extend(values)
        elif kind == "float":
            feature.float_list.value.extend(values)
        elif kind == "int64":
            feature.int64_list.value.extend(values)
    return ex
