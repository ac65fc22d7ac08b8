"""The OD API's TF1 code path: estimator training (`model_lib`), `exporter.export_inference_graph`
(frozen_inference_graph.pb + SavedModel) and a frozen-graph detector.

Runs as-is on TF 1.15 (the tutorials' images, Python 3.6). On TF 2.x it installs
`odrun.tasks.detect.backends.compat.tf1_on_tf2` first (graph mode, contrib stand-ins, ...): the TF1 path then owns
the process, so run it in its own process (the CLI does: one command, one backend).
Heavy imports stay inside functions.
"""
import os
import warnings

from odcore.errors import UserError
from odrun.tasks.detect.backends.compat import tf1_on_tf2
from odrun.tasks.detect.masks.config import predicts_masks
from odrun.ui import interrupt, quiet
from odrun.workdir.rundir import step_of  # the one checkpoint-name parser (None: no step in the name)

API = "tf1"
EXPORT_INPUT_TYPE = "image_tensor"  # uint8 [None, None, None, 3]: takes a batch of same-size images
FROZEN_GRAPH = "frozen_inference_graph.pb"
_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


def prepare():
    """Make `object_detection`'s TF1 modules importable; returns the fixes applied (TF 2 only)."""
    try:
        fixes = tf1_on_tf2.install()
    except tf1_on_tf2.CompatError as exc:
        raise UserError(str(exc), where="--api tf1", fix=exc.fix)
    if not os.environ.get("ODRUN_TF_VERBOSE"):
        # The TF1 path logs hundreds of deprecation warnings per graph; progress comes from on_step.
        _tf().logging.set_verbosity(_tf().logging.ERROR)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(keras|tensorflow)\.")
    return fixes


def _say(text):
    quiet.terminal().write(text + "\n")  # the terminal, not the library log
    quiet.terminal().flush()


def _tf():
    import tensorflow.compat.v1 as tf
    return tf


def latest_checkpoint(run_dir):
    return _tf().train.latest_checkpoint(run_dir)


def _need_checkpoint(run_dir):
    ckpt = latest_checkpoint(run_dir)
    if not ckpt:
        raise UserError("no checkpoint in the run directory", where=run_dir,
                        fix="train first: odrun train --api tf1 --workdir " + run_dir)
    return ckpt


def checkpoint_step(prefix):
    """Global step stored in a checkpoint (exact, not parsed from the file name)."""
    return int(_tf().train.load_variable(prefix, "global_step"))


# ------------------------------------------------------------------ train
def _check_config(config_path):
    """What the TF 2 layer cannot provide, caught before a graph is built."""
    if not tf1_on_tf2.needed():
        return
    from google.protobuf import text_format
    from object_detection.protos import pipeline_pb2
    config = pipeline_pb2.TrainEvalPipelineConfig()
    with open(config_path, encoding="utf-8") as f:
        text_format.Merge(f.read(), config)
    if config.train_config.optimizer.use_moving_average:
        raise UserError("use_moving_average needs tf.contrib.opt.MovingAverageOptimizer, which only "
                        "TF 1.x has (the proto's default is true)",
                        where=config_path + ": train_config.optimizer.use_moving_average",
                        fix="--set train_config.optimizer.use_moving_average=false, or run in a TF 1.15 image")


def _estimator(config_path, run_dir, num_steps=None, checkpoint_every=None, model_fn_creator=None):
    prepare()
    _check_config(config_path)
    tf = _tf()
    from object_detection import model_lib
    run_config = tf.estimator.RunConfig(
        model_dir=run_dir,
        save_checkpoints_steps=checkpoint_every or None,
        save_checkpoints_secs=None if checkpoint_every else 600,
        save_summary_steps=min(100, checkpoint_every or 100),  # TensorBoard events in run_dir
        keep_checkpoint_max=5,
        log_step_count_steps=100)
    kwargs = {}
    if model_fn_creator is not None:
        kwargs["model_fn_creator"] = model_fn_creator
    with _translate_errors(config_path):
        return model_lib.create_estimator_and_inputs(
            run_config=run_config, pipeline_config_path=config_path, train_steps=num_steps, **kwargs)


def _loss_tensors(total_loss):
    """{'Loss/...': tensor} from the total loss: model_lib builds it as add_n(component losses)."""
    losses = {"Loss/total_loss": total_loss}
    if total_loss.op.type == "AddN":
        for tensor in total_loss.op.inputs:
            name = tensor.op.name
            losses[name if name.startswith("Loss/") else "Loss/" + name.split("/")[-1]] = tensor
    return losses


def _step_reporter(on_step, ctrl_c=None):
    """model_fn_creator wrapping model_lib.create_model_fn: adds a hook that calls
    on_step(step, {loss name: float}) after every training step, and asks the session to stop
    after the step a first Ctrl-C (`ctrl_c`, an odrun.ui.interrupt.Guard) came during: the
    Estimator's CheckpointSaverHook then saves that step as it ends (a stop is a clean end)."""
    prepare()
    tf = _tf()
    from object_detection import model_lib

    class StepHook(tf.estimator.SessionRunHook):
        def __init__(self, losses):
            self._losses = losses
            self._step = tf.train.get_global_step()

        def before_run(self, run_context):
            return tf.estimator.SessionRunArgs(self._losses)

        def after_run(self, run_context, run_values):
            # Re-read the step: a fetch alongside train_op may see the pre-increment value.
            step = int(run_context.session.run(self._step))
            if on_step is not None:
                on_step(step, {k: float(v) for k, v in run_values.results.items()})
            if ctrl_c is not None and ctrl_c.requested:
                run_context.request_stop()

    def creator(*args, **kwargs):
        model_fn = model_lib.create_model_fn(*args, **kwargs)

        def wrapped(features, labels, mode, params=None):  # the Estimator inspects these names
            spec = model_fn(features, labels, mode, params=params)
            if mode == tf.estimator.ModeKeys.TRAIN and (on_step is not None or ctrl_c is not None):
                hooks = tuple(spec.training_hooks or ()) + (StepHook(_loss_tensors(spec.loss)),)
                spec = spec._replace(training_hooks=hooks)
            return spec
        return wrapped
    return creator


def train(config_path, run_dir, num_steps, checkpoint_every=None, on_step=None):
    """Train to exactly `num_steps` global steps, checkpointing every `checkpoint_every` steps
    and at the end; resumes from the newest checkpoint in run_dir (the estimator restores it).
    Returns dict(start_step, end_step, checkpoints) like the tf2 backend."""
    num_steps = int(num_steps)
    prepare()  # before anything imports object_detection
    previous = latest_checkpoint(run_dir) if os.path.isdir(run_dir) else None
    start = checkpoint_step(previous) if previous else 0
    with interrupt.Guard(say=_say) as ctrl_c:  # first Ctrl-C: stop after this step, saved; second: at once
        parts = _estimator(config_path, run_dir, num_steps, checkpoint_every,
                           model_fn_creator=_step_reporter(on_step, ctrl_c))
        with _translate_errors(config_path):
            # max_steps is a global-step target: a resumed run stops at the same N.
            parts["estimator"].train(input_fn=parts["train_input_fn"], max_steps=num_steps)
    if ctrl_c.requested:
        newest = latest_checkpoint(run_dir)
        step = checkpoint_step(newest) if newest else start
        raise interrupt.Interrupted(step, newest if newest and step > start else None)
    newest = _need_checkpoint(run_dir)
    state = _tf().train.get_checkpoint_state(run_dir)
    saved = [p for p in state.all_model_checkpoint_paths if (step_of(p) or -1) > start] or [newest]
    return {"start_step": start, "end_step": checkpoint_step(newest), "checkpoints": saved}


# ------------------------------------------------------------------ eval
def evaluate(config_path, run_dir, checkpoint=None):
    """COCO detection metrics of `checkpoint` (default: the newest) on the eval records (one pass)."""
    ckpt = checkpoint or _need_checkpoint(run_dir)
    parts = _estimator(config_path, run_dir)
    with _translate_errors(config_path):
        metrics = parts["estimator"].evaluate(parts["eval_input_fns"][0], steps=None,
                                              checkpoint_path=ckpt)
    out = {}
    for key, value in metrics.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue  # image summaries etc.
    step = int(out.pop("global_step", checkpoint_step(ckpt)))
    out["_meta"] = {"step": step, "checkpoint": ckpt}
    return out


# ------------------------------------------------------------------ export
def export(config_path, run_dir, out_dir, checkpoint=None):
    """`exporter.export_inference_graph('image_tensor', ...)` for `checkpoint` (default: the newest):
    out_dir gets frozen_inference_graph.pb, saved_model/, model.ckpt.*, pipeline.config.
    Written in a temp dir beside out_dir, then moved in: no half-written export."""
    ckpt = checkpoint or _need_checkpoint(run_dir)
    prepare()
    tf = _tf()
    from google.protobuf import text_format
    from object_detection import exporter
    from object_detection.protos import pipeline_pb2
    tf1_on_tf2.patch_exporter(exporter)
    config = pipeline_pb2.TrainEvalPipelineConfig()
    with open(config_path, encoding="utf-8") as f:
        text_format.Merge(f.read(), config)
    # out_dir is export's staged folder (odcore.fileio.staged_dir, empty): the exporter writes
    # into it directly, and the whole folder is published as one by the caller.
    with tf.Graph().as_default(), _translate_errors(config_path):
        exporter.export_inference_graph(EXPORT_INPUT_TYPE, config, ckpt, os.path.abspath(out_dir))
    return {
        "api": API,
        "tf_version": tf.__version__,
        "signature": {"name": FROZEN_GRAPH, "input_type": EXPORT_INPUT_TYPE,
                      "inputs": {"image_tensor": {"dtype": "uint8", "shape": [None, None, None, 3]}},
                      "outputs": sorted(_OUTPUTS + (("detection_masks",) if predicts_masks(config) else ()))},
        "frozen_graph": os.path.join(out_dir, FROZEN_GRAPH),
        "saved_model": os.path.join(out_dir, "saved_model"),
        "checkpoint": ckpt,
        "step": checkpoint_step(ckpt),
    }


# ------------------------------------------------------------------ detect
class FrozenGraphDetector(object):
    """One graph, one session; each call feeds same-shape images as one batch."""

    def __init__(self, export_dir):
        tf = _tf()
        path = os.path.join(export_dir, FROZEN_GRAPH) if os.path.isdir(export_dir) else export_dir
        if not os.path.isfile(path):
            raise UserError("no {} here".format(FROZEN_GRAPH), where=export_dir,
                            fix="export first: odrun export --api tf1 --workdir RUN --out " + str(export_dir))
        graph_def = tf.GraphDef()
        with open(path, "rb") as f:
            try:
                graph_def.ParseFromString(f.read())
            except Exception as exc:  # protobuf DecodeError: a truncated or foreign file
                raise UserError("not a frozen graph: {}".format(exc), where=path,
                                fix="re-run odrun export")
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.import_graph_def(graph_def, name="")
        self.image = self.graph.get_tensor_by_name("image_tensor:0")
        self.fetches = {name: self.graph.get_tensor_by_name(name + ":0") for name in _OUTPUTS}
        if "detection_masks" in [op.name for op in self.graph.get_operations()]:  # Mask R-CNN
            self.fetches["detection_masks"] = self.graph.get_tensor_by_name("detection_masks:0")
        self.session = tf.Session(graph=self.graph)

    def __call__(self, images):
        import numpy as np
        results = [None] * len(images)
        groups = {}
        for i, image in enumerate(images):
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3:
                raise UserError("image {} has shape {}, expected HxWx3".format(i, image.shape),
                                fix="convert the image to RGB")
            groups.setdefault(image.shape, []).append(i)
        for shape, indexes in groups.items():
            batch = np.stack([np.asarray(images[i], dtype=np.uint8) for i in indexes])
            out = self.session.run(self.fetches, feed_dict={self.image: batch})
            for row, i in enumerate(indexes):
                n = int(out["num_detections"][row])
                results[i] = {"boxes": out["detection_boxes"][row][:n].astype("float32"),
                              "classes": out["detection_classes"][row][:n].astype("int64"),
                              "scores": out["detection_scores"][row][:n].astype("float32")}
                if "detection_masks" in out:
                    results[i]["masks"] = out["detection_masks"][row][:n].astype("float32")
        return results

    def close(self):
        self.session.close()


def load_detector(export_dir):
    return FrozenGraphDetector(export_dir)


# ------------------------------------------------------------------ errors
class _translate_errors(object):
    """Turn the tutorials' known runtime traps into UserErrors naming the config field."""

    def __init__(self, config_path):
        self.config_path = config_path

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        tf = _tf()
        text = str(exc)
        if isinstance(exc, tf.errors.InvalidArgumentError) and "Cannot add tensor to the batch" in text:
            raise UserError("images of different sizes cannot be batched with keep_aspect_ratio_resizer "
                            "(Cannot add tensor to the batch)", where=self.config_path + ": train_config.batch_size",
                            fix="use --batch 1, or a fixed_shape_resizer")
        if isinstance(exc, (tf.errors.NotFoundError, ValueError)) and "fine_tune_checkpoint" in text:
            raise UserError("fine_tune_checkpoint not found: {}".format(text.splitlines()[0]),
                            where=self.config_path + ": train_config.fine_tune_checkpoint",
                            fix="point it at a checkpoint prefix (model.ckpt with .index/.data files) "
                                "or remove it to train from scratch")
        return False
