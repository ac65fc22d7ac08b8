"""Evaluation inside `odrun train --eval-every N` (TF2): the training model itself, between steps.

Why in-process and not a sidecar: on a 2-core CPU a second process would build its own copy of
the model (tens of seconds each time) and steal the cores from training; here the model and the
eval dataset already exist, the checkpoint just saved IS the model's state, and one traced
tf.function serves every evaluation (measured: see bench/README.md, "eval during training").

The eval pipeline is the OD API's own (`inputs.eval_input`: eval_input_reader, the model's
resizer and preprocess); predictions are `model.predict` + `model.postprocess`, as
`model_lib_v2.eager_eval_loop` computes them. Metrics: odrun.tasks.detect.results.coco_eval (pycocotools).
"""
import contextlib


class Evaluator(object):
    """evaluate() -> list of per-image dicts for odrun.tasks.detect.results (ground truth + detections)."""

    def __init__(self, configs, model, max_images=None):
        import tensorflow as tf
        from object_detection import inputs
        from object_detection.core import standard_fields as fields

        self.tf, self.fields = tf, fields
        eval_input_config = configs["eval_input_configs"][0]
        eval_input_config.num_epochs = 1
        self.dataset = inputs.eval_input(eval_config=configs["eval_config"], eval_input_config=eval_input_config,
                                         model_config=configs["model"], model=model)
        self.model = model
        self.batch_size = configs["eval_config"].batch_size
        self.max_images = max_images
        self._fn = self._loss_fn = None

    def _predict(self):
        tf, F = self.tf, self.fields
        model = self.model

        @tf.function
        def predict(features):
            shapes = features[F.InputDataFields.true_image_shape]
            prediction = model.predict(features[F.InputDataFields.image], shapes)
            return model.postprocess(prediction, shapes)

        return predict

    def evaluate(self):
        tf = self.tf
        if self._fn is None:
            self._fn = self._predict()
        images = []
        # inference mode, as model_lib_v2.eager_eval_loop sets it: `_is_training = False` (read
        # while tracing) and batch norm's learning phase. Under --eval-every the model is the
        # training one (`_is_training = True`): a Faster/Mask R-CNN would then sample its proposals
        # against the last training batch's ground truth (it failed: "slice index 1 of dimension 0
        # out of bounds") instead of keeping the top first_stage_max_proposals as `odrun eval` does.
        was = self.model._is_training
        self.model._is_training = False
        _learning_phase(tf, False)
        try:
            self._run(images)
        finally:
            self.model._is_training = was
            _learning_phase(tf, was)
        return images

    def _run(self, images):
        import numpy as np
        F = self.fields
        for features, labels in self.dataset:
            det = self._fn(features)
            boxes = det["detection_boxes"].numpy()
            scores = det["detection_scores"].numpy()
            classes = det["detection_classes"].numpy().astype(int) + 1  # 0-based -> label map ids
            num = det["num_detections"].numpy().astype(int)
            shape = features[F.InputDataFields.original_image_spatial_shape].numpy()
            gt_boxes = labels[F.InputDataFields.groundtruth_boxes].numpy()
            gt_classes = np.argmax(labels[F.InputDataFields.groundtruth_classes].numpy(), axis=-1) + 1
            gt_num = labels[F.InputDataFields.num_groundtruth_boxes].numpy().astype(int)
            for i in range(boxes.shape[0]):
                n, g = num[i], gt_num[i]
                images.append({"height": int(shape[i][0]), "width": int(shape[i][1]),
                               "gt_boxes": gt_boxes[i, :g].tolist(), "gt_classes": gt_classes[i, :g].tolist(),
                               "boxes": boxes[i, :n].tolist(), "classes": classes[i, :n].tolist(),
                               "scores": scores[i, :n].tolist()})
            if self.max_images and len(images) >= self.max_images:
                break

    def losses(self, add_regularization_loss=True):
        """The eval set's losses as training computes them, {Loss/...: mean}. Why: the OD API's
        eval loop sets `_is_training = False`, and a Faster/Mask R-CNN then scores its second
        stage on its own detections: with none (an early model) the mask loss is 0/1 = 0.0 while
        training reports 2.18. Here the loss is traced with `_is_training = True` (proposals
        sampled against the ground truth, as in training), batch norm still in inference mode."""
        import numpy as np
        from object_detection import model_lib, model_lib_v2
        tf, F, model = self.tf, self.fields, self.model
        was = model._is_training  # read while tracing: the traced function keeps the training loss
        if self._loss_fn is None:
            @tf.function
            def loss(features, labels):
                unpad = labels[F.InputDataFields.groundtruth_boxes].shape[1] is not None and self.batch_size == 1
                labels = model_lib.unstack_batch(labels, unpad_groundtruth_tensors=unpad)
                return model_lib_v2._compute_losses_and_predictions_dicts(
                    model, features, labels, training_step=None, add_regularization_loss=add_regularization_loss)[0]
            self._loss_fn = loss
        totals = {}
        try:
            model._is_training = True
            _learning_phase(tf, False)
            for features, labels in self.dataset:
                for key, value in self._loss_fn(features, labels).items():
                    totals.setdefault(str(key), []).append(float(value))
        finally:
            model._is_training = was
        return {k: float(np.mean(v)) for k, v in totals.items()}


class Recorder(object):
    """The per-image detections of `odrun eval`, taken from the OD API's own pass: eager_eval_loop
    hands each batch's eval_dict to its evaluators, and this one rides along (`recording`), so the
    test records are read once (a second predict pass cost a retrace plus a read; see tf2.evaluate).
    The OD API's evaluators see exactly what they saw before: their metrics are unchanged. Boxes
    come absolute in the original image (scale_to_absolute); odrun.tasks.detect.results wants them
    normalised, as the Evaluator's."""

    def __init__(self):
        from object_detection.core import standard_fields as fields
        self.fields, self.images = fields, []

    def add_eval_dict(self, eval_dict):
        import numpy as np
        F, D = self.fields.InputDataFields, self.fields.DetectionResultFields
        shape = np.asarray(eval_dict[F.original_image_spatial_shape]).reshape(-1, 2).astype(np.float64)
        boxes, gt_boxes = (np.asarray(eval_dict[k], dtype=np.float64) for k in (D.detection_boxes, F.groundtruth_boxes))
        classes, gt_classes = (np.asarray(eval_dict[k]).astype(int) for k in (D.detection_classes, F.groundtruth_classes))
        scores = np.asarray(eval_dict[D.detection_scores])
        num = np.asarray(eval_dict[D.num_detections]).astype(int).reshape(-1)
        gt_num = (np.asarray(eval_dict[F.num_groundtruth_boxes]).astype(int).reshape(-1)
                  if F.num_groundtruth_boxes in eval_dict else [gt_boxes.shape[1]] * len(num))
        for i in range(len(num)):
            h, w = shape[i]
            scale = np.array([h, w, h, w])
            n, g = num[i], gt_num[i]
            self.images.append({"height": int(h), "width": int(w),
                                "gt_boxes": (gt_boxes[i, :g] / scale).tolist(), "gt_classes": gt_classes[i, :g].tolist(),
                                "boxes": (boxes[i, :n] / scale).tolist(), "classes": classes[i, :n].tolist(),
                                "scores": scores[i, :n].tolist()})

    def evaluate(self):
        return {}  # no metrics of its own

    def clear(self):
        self.images = []


@contextlib.contextmanager
def recording(recorder):
    """eval_util.get_evaluators (what eager_eval_loop calls for its evaluators) with RECORDER added."""
    from object_detection import eval_util
    real = eval_util.get_evaluators

    def get_evaluators(*args, **kwargs):
        return list(real(*args, **kwargs)) + [recorder]

    eval_util.get_evaluators = get_evaluators
    try:
        yield recorder
    finally:
        eval_util.get_evaluators = real


def _learning_phase(tf, value):
    try:
        tf.keras.backend.set_learning_phase(value)
    except (AttributeError, ValueError):
        pass

# The OD API's names (eager_eval_loop writes them for `odrun eval` into RUN/eval too): one curve
# per name in TensorBoard, whichever of the two evaluated the step.
SCALARS = (("DetectionBoxes_Precision/mAP", "mAP@.5:.95"), ("DetectionBoxes_Precision/mAP@.50IOU", "mAP@.5"))
PER_CLASS = "DetectionBoxes_PerformanceByCategory/mAP/{}"


class Summaries(object):
    """TensorBoard events of --eval-every's evaluations under RUN/eval (tf.summary scalars)."""

    def __init__(self, run_dir):
        import os
        import tensorflow as tf
        self.tf = tf
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "eval"))

    def add(self, step, metrics):
        """metrics: odrun.tasks.detect.results.coco_eval's."""
        tf = self.tf
        # record_if(True): the training loop records images only every N steps (its record_if)
        with self.writer.as_default(), tf.summary.record_if(True):
            for name, key in SCALARS:
                tf.summary.scalar(name, metrics[key], step=step)
            for cls, ap in sorted(metrics["per_class"].items()):
                tf.summary.scalar(PER_CLASS.format(cls), ap["ap"], step=step)
        self.writer.flush()
