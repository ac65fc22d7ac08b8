"""Frozen-graph runtime: EXPORT_DIR/frozen/frozen_graph.pb, the TF2 serving function with its
variables folded into constants (convert_variables_to_constants_v2) at export time.

For TF-only machines: importing a GraphDef takes seconds where restoring the SavedModel (object
graph, variables, tf.function tracing) takes tens of seconds. Imports TensorFlow."""
import json
import os

from odrun.runtimes import FILES, group_by_shape, unpack, with_outputs


def load_graph_function(pb_path, inputs, outputs):
    """A callable over the frozen GraphDef (tf.compat.v1.wrap_function + prune)."""
    import tensorflow as tf
    graph_def = tf.compat.v1.GraphDef()
    with open(pb_path, "rb") as f:
        graph_def.ParseFromString(f.read())
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    g = wrapped.graph
    return wrapped.prune([g.as_graph_element(n) for n in inputs],
                         {k: g.as_graph_element(v) for k, v in outputs.items()})


class Runtime(object):
    name = "frozen"

    def __init__(self, export_dir, meta):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        path = os.path.join(export_dir, FILES["frozen"])
        with open(os.path.join(os.path.dirname(path), "signature.json"), encoding="utf-8") as f:
            sig = json.load(f)
        self.fn = load_graph_function(path, sig["inputs"], sig["outputs"])
        self.max_batch = None

    def detect(self, images):
        import numpy as np
        import tensorflow as tf
        results = [None] * len(images)
        for indexes in group_by_shape(images).values():
            batch = tf.constant(np.stack([images[i] for i in indexes]).astype(np.float32))
            out = {k: v.numpy() for k, v in self.fn(batch).items()}
            dets = unpack(out["num_detections"], out["detection_boxes"], out["detection_classes"],
                          out["detection_scores"])
            for i, det in zip(indexes, with_outputs(dets, out, len(indexes))):
                results[i] = det
        return results
