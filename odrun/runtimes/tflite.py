"""TFLite runtime: the LiteRT/TFLite interpreter on EXPORT_DIR/tflite/model.tflite.

The OD API's TFLite SSD graph (export_tflite_graph_tf2) has a fixed [1, H, W, 3] float input and
starts after the preprocessing: the resize (as tf.image.resize bilinear) and the feature
extractor's per-channel affine normalisation recorded at export time in metadata.json are done
here. Its TFLite_Detection_PostProcess op returns 0-based classes: +1 gives label-map ids.
Never imports TensorFlow (tflite_runtime, or ai_edge_litert, the package's new name)."""
import os

from odrun.runtimes import FILES, resize_bilinear


def interpreter_class():
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        from ai_edge_litert.interpreter import Interpreter
    return Interpreter


class Runtime(object):
    name = "tflite"

    def __init__(self, export_dir, meta, path=None, threads=None):
        import numpy as np
        info = (meta.get("formats") or {}).get("tflite") or {}
        pre = info.get("preprocess") or {}
        self.path = path or os.path.join(export_dir, FILES["tflite"])
        self.interpreter = interpreter_class()(model_path=self.path, num_threads=threads)
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        self.input_index = inp["index"]
        self.height, self.width = int(inp["shape"][1]), int(inp["shape"][2])
        self.scale = np.asarray(pre.get("scale", [2.0 / 255] * 3), dtype=np.float32)
        self.offset = np.asarray(pre.get("offset", [-1.0] * 3), dtype=np.float32)
        self.class_offset = int(info.get("class_offset", 1))
        # StatefulPartitionedCall:0..3 = num, scores, classes, boxes: export_tflite_graph_lib_tf2
        # returns (boxes, classes, scores, num)[::-1]; checked against the shapes below
        outs = sorted(self.interpreter.get_output_details(), key=lambda d: d["name"])
        shapes = [len(d["shape"]) for d in outs]
        if shapes != [1, 2, 2, 3]:
            raise ValueError("{}: unexpected TFLite outputs {}".format(self.path, [(d["name"], list(d["shape"]))
                                                                                for d in outs]))
        self.outputs = [d["index"] for d in outs]
        self.max_batch = 1

    def _one(self, image):
        import numpy as np
        x = resize_bilinear(image, self.height, self.width) * self.scale + self.offset
        self.interpreter.set_tensor(self.input_index, x[None].astype(np.float32))
        self.interpreter.invoke()
        num, scores, classes, boxes = [self.interpreter.get_tensor(i) for i in self.outputs]
        n = int(num.reshape(-1)[0])
        # the SavedModel clips boxes to the image; TFLite_Detection_PostProcess does not
        return {"boxes": np.clip(np.asarray(boxes[0, :n], dtype=np.float32), 0.0, 1.0),
                "classes": classes[0, :n].astype(int) + self.class_offset,
                "scores": np.asarray(scores[0, :n], dtype=np.float32)}

    def detect(self, images):
        return [self._one(image) for image in images]
