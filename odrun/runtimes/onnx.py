"""ONNX runtime: onnxruntime on EXPORT_DIR/onnx/model.onnx (converted by tf2onnx from the SavedModel).

The graph keeps the OD API's preprocessing (resize, normalise) and postprocessing (NMS), so this
runtime only feeds float32 NHWC images. Never imports TensorFlow."""
import os

from odrun.runtimes import FILES, group_by_shape, unpack, with_outputs


class Runtime(object):
    name = "onnx"

    def __init__(self, export_dir, meta, path=None, threads=None):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        # no busy-waiting: by default the pool's threads spin after each op for the next one, which on a
        # small or shared machine takes the cores the decoder and `odrun serve`'s HTTP loop need
        # (measured on 2 loaded cores: 2x the CPU per image, half the images/s; bench/README.md)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.path = path or os.path.join(export_dir, FILES["onnx"])
        self.session = ort.InferenceSession(self.path, sess_options=options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]  # all of the signature's
        self.max_batch = None

    def detect(self, images):
        import numpy as np
        results = [None] * len(images)
        for indexes in group_by_shape(images).values():
            batch = np.empty((len(indexes),) + tuple(images[indexes[0]].shape), dtype=np.float32)
            for j, i in enumerate(indexes):  # uint8 -> float32 straight into the batch: one copy, not two
                batch[j] = images[i]
            out = dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: batch})))
            dets = unpack(out["num_detections"], out["detection_boxes"], out["detection_classes"],
                          out["detection_scores"])
            for i, det in zip(indexes, with_outputs(dets, out, len(indexes))):
                results[i] = det
        return results
