"""TF2 code path: `model_lib_v2` building blocks driven step by step, `exporter_lib_v2`.

Why not `model_main_tf2` / `model_lib_v2.train_loop`: they train in chunks of 100 steps
(`--num_train_steps=30` trains 100) and skip the final checkpoint unless it falls on
`checkpoint_every_n`. Here each step is one `tf.function` call, so the step count is exact,
a checkpoint is written every N steps and at the end, and `on_step` can drive a progress bar.
"""
import os

from odcore.errors import UserError
from odrun.runtimes import per_image_outputs
from odrun.tasks.detect import distribute
from odrun.tasks.detect.backends import tf2_eval
from odrun.tasks.detect.config import pipeline as pc
from odrun.ui import interrupt, quiet
from odrun.workdir.rundir import checkpoint_dir

_PREPARED = False
INPUT_TYPE = "float_image_tensor"  # batch-capable signature ([None, None, None, 3] float32)
# `odrun eval` of a two-stage model: Loss/* as training computes them, the OD API's eval-mode
# losses (second stage scored on the detections) under ON_DETECTIONS/*
LOSS, ON_DETECTIONS = "Loss/", "LossOnDetections/"
ENCODED_SIGNATURE = "encoded_image_string_tensor"  # second signature: [None] encoded image strings


def prepare():
    """Runtime fixes measured on TF 2.15 (see shared notes): run before importing object_detection."""
    global _PREPARED
    if _PREPARED:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_ops
    # tf-slim 1.1.0 (last release) calls control_flow_ops.case/.cond, moved out in TF >= 2.13:
    # without this the TFRecord decoder fails inside tf_slim's tfexample_decoder.
    if not hasattr(control_flow_ops, "case"):
        from tensorflow.python.ops.control_flow_case import case
        control_flow_ops.case = case
    if not hasattr(control_flow_ops, "cond"):
        from tensorflow.python.ops.cond import cond
        control_flow_ops.cond = cond
    tf.get_logger().setLevel("ERROR")
    try:
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
    _PREPARED = True


def _say(text):
    quiet.terminal().write(text + "\n")  # the terminal, not the library log
    quiet.terminal().flush()


def latest_checkpoint(run_dir):
    import tensorflow as tf
    return tf.train.latest_checkpoint(run_dir)


def checkpoint_step(prefix):
    """Training step stored in a checkpoint (the `step` variable, not the file number)."""
    import tensorflow as tf
    return int(tf.train.load_variable(prefix, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def _configs(config_path):
    from object_detection.utils import config_util
    return config_util.get_configs_from_pipeline_file(config_path)


def train(config_path, run_dir, num_steps, checkpoint_every=100, on_step=None, max_to_keep=5,
          image_summary_every=100, on_checkpoint=None, distribution=None):
    """Train to exactly `num_steps` (resuming from the newest checkpoint in run_dir).

    distribution: an odrun.tasks.detect.distribute.Plan (None: one device); only its chief writes to run_dir.
    on_checkpoint(step, prefix, model) after each checkpoint (`--eval-every`); True stops early.
    Returns dict(start_step, end_step, checkpoints, replicas). on_step(step, {loss name: float}).
    Steps: 1. strategy and configs, 2. model/data/optimizer (_build), 3. restore (_restore),
    4. the step function (_step_function), 5. the loop with its checkpoints (_loop).
    """
    prepare()
    strategy = distribute.make_strategy(distribution)  # first: MWMS must exist before other ops
    import tensorflow as tf
    from object_detection.utils import config_util

    configs = _configs(config_path)
    train_config, train_input_config = configs["train_config"], configs["train_input_config"]
    config_util.update_fine_tune_checkpoint_type(train_config)
    distribute.check_batch(distribution, train_config.batch_size, strategy.num_replicas_in_sync,
                           [f for p in train_input_config.tf_record_input_reader.input_path for f in tf.io.gfile.glob(p)])
    out_dir = distribute.write_dir(distribution, run_dir)
    parts = _build(strategy, configs)

    writer = tf.summary.create_file_writer(os.path.join(out_dir, "train"))
    ckpt = tf.train.Checkpoint(step=parts["global_step"], model=parts["model"], optimizer=parts["optimizer"])
    manager = tf.train.CheckpointManager(ckpt, out_dir, max_to_keep=max_to_keep)  # all workers save (MWMS)
    latest = tf.train.latest_checkpoint(run_dir)
    with writer.as_default(), strategy.scope():
        _restore(ckpt, latest, train_config, parts, run_dir)
        dist_step = _step_function(strategy, train_config, parts)
        start = int(parts["global_step"].numpy())
        saved = _loop(dist_step, iter(parts["dataset"]), parts, start, num_steps, manager,
                      checkpoint_every=checkpoint_every, on_step=on_step, on_checkpoint=on_checkpoint,
                      image_summary_every=image_summary_every)
        writer.flush()
    if out_dir != run_dir:
        distribute.cleanup(distribution, out_dir, run_dir)
        saved = []
    if not saved and start >= num_steps and latest:
        saved = [latest]
    return {"start_step": start, "end_step": int(parts["global_step"].numpy()), "checkpoints": saved,
            "replicas": strategy.num_replicas_in_sync}


def _build(strategy, configs):
    """2. Under the strategy: the model, the distributed dataset, the step counter, the optimizer
    (with its moving-average shadow copy) -> dict of them plus lr_fn (the learning rate now)."""
    import tensorflow as tf
    from object_detection import inputs, model_lib_v2
    from object_detection.builders import model_builder, optimizer_builder
    model_config, train_config = configs["model"], configs["train_config"]
    train_input_config = configs["train_input_config"]
    with strategy.scope():
        model = model_builder.build(model_config=model_config, is_training=True, add_summaries=True)
        distribute.build_if_seeded(model)

        def dataset_fn(input_context):
            return inputs.train_input(train_config=train_config, train_input_config=train_input_config,
                                      model_config=model_config, model=model,
                                      input_context=input_context).repeat()

        dataset = strategy.distribute_datasets_from_function(dataset_fn)
        global_step = tf.Variable(0, trainable=False, dtype=tf.int64, name="global_step",
                                  aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        optimizer, (learning_rate,) = optimizer_builder.build(train_config.optimizer, global_step=global_step)
        if train_config.optimizer.use_moving_average:
            model_lib_v2._ensure_model_is_built(model, dataset, train_config.unpad_groundtruth_tensors)
            optimizer.shadow_copy(model)
    lr_fn = learning_rate if callable(learning_rate) else (lambda: learning_rate)
    return {"model": model, "dataset": dataset, "global_step": global_step, "optimizer": optimizer, "lr_fn": lr_fn}


def _restore(ckpt, latest, train_config, parts, run_dir):
    """3. Resume from RUN_DIR's newest checkpoint, else start from the fine-tune checkpoint, if any."""
    from object_detection import model_lib_v2
    from object_detection.utils import variables_helper
    if latest:
        ckpt.restore(latest).assert_existing_objects_matched()
    elif train_config.fine_tune_checkpoint:
        variables_helper.ensure_checkpoint_supported(
            train_config.fine_tune_checkpoint, train_config.fine_tune_checkpoint_type, run_dir)
        model_lib_v2.load_fine_tune_checkpoint(
            parts["model"], train_config.fine_tune_checkpoint, train_config.fine_tune_checkpoint_type,
            train_config.fine_tune_checkpoint_version,
            train_config.run_fine_tune_checkpoint_dummy_computation, parts["dataset"],
            train_config.unpad_groundtruth_tensors)


def _step_function(strategy, train_config, parts):
    """4. One training step on every replica, as a tf.function returning the summed losses."""
    import tensorflow as tf
    from object_detection import model_lib_v2
    from object_detection.core import standard_fields as fields
    model, optimizer, global_step = parts["model"], parts["optimizer"], parts["global_step"]
    clip = train_config.gradient_clipping_by_norm if train_config.gradient_clipping_by_norm > 0 else None

    def step_fn(features, labels):
        tf.summary.image("train_input_images", features[fields.InputDataFields.image],
                         step=global_step, max_outputs=3)
        losses = model_lib_v2.eager_train_step(
            model, features, labels, train_config.unpad_groundtruth_tensors, optimizer,
            training_step=global_step, add_regularization_loss=train_config.add_regularization_loss,
            clip_gradients_value=clip, num_replicas=strategy.num_replicas_in_sync)
        global_step.assign_add(1)
        return losses

    @tf.function
    def dist_step(iterator):
        features, labels = next(iterator)
        per_replica = strategy.run(step_fn, args=(features, labels))
        return model_lib_v2.reduce_dict(strategy, per_replica, tf.distribute.ReduceOp.SUM)

    return dist_step


def _loop(dist_step, iterator, parts, start, num_steps, manager, checkpoint_every, on_step, on_checkpoint,
          image_summary_every):
    """5. Steps start..num_steps: scalars, on_step, a checkpoint every `checkpoint_every` steps and
    at the end; on_checkpoint returning True stops early; a first Ctrl-C saves the step reached and
    raises odrun.ui.interrupt.Interrupted. -> the checkpoint prefixes written."""
    import tensorflow as tf
    global_step = parts["global_step"]
    last_saved = start
    saved = []
    with tf.summary.record_if(lambda: global_step % image_summary_every == 0), interrupt.Guard(say=_say) as ctrl_c:
        for _ in range(start, num_steps):
            losses = dist_step(iterator)
            step = int(global_step.numpy())
            logged = dict(losses)
            logged["learning_rate"] = parts["lr_fn"]()
            for key, value in logged.items():
                tf.summary.scalar(key, value, step=global_step)
            if on_step is not None:
                on_step(step, {k: float(v) for k, v in logged.items()})
            if step - last_saved >= checkpoint_every or step == num_steps:
                saved.append(manager.save(checkpoint_number=step))
                last_saved = step
                if on_checkpoint is not None and on_checkpoint(step, saved[-1], parts["model"]):
                    break  # early stop (--patience)
            if ctrl_c.requested:  # first Ctrl-C: keep this step's work, then stop (exit 130)
                if step != last_saved:
                    saved.append(manager.save(checkpoint_number=step))
                tf.summary.flush()
                raise interrupt.Interrupted(step, saved[-1])
    return saved


def _checkpoint(run_dir, checkpoint):
    """The checkpoint asked for, else the newest in RUN_DIR (a UserError when there is none)."""
    import tensorflow as tf
    checkpoint = checkpoint or tf.train.latest_checkpoint(run_dir)
    if not checkpoint:
        raise UserError("no checkpoint in run directory", where=run_dir,
                        fix="train first: odrun train --workdir " + run_dir)
    return checkpoint


def evaluate(config_path, run_dir, checkpoint=None):
    """COCO metrics (pycocotools via the OD API's evaluators) for the newest checkpoint, as
    model_lib_v2.eval_continuously computes them (model built with is_training=True, then
    eager_eval_loop sets `_is_training = False`), in one pass over the test records.

    Returns {metric name: float}, plus "step", "checkpoint" and the per-image detections under "_meta".
    """
    prepare()
    import tensorflow as tf
    from object_detection import inputs, model_lib_v2
    from object_detection.builders import model_builder, optimizer_builder

    checkpoint = _checkpoint(run_dir, checkpoint)
    configs = _configs(config_path)
    model_config, eval_config = configs["model"], configs["eval_config"]
    eval_input_config = configs["eval_input_configs"][0]
    eval_input_config.num_epochs = 1
    strategy = tf.distribute.get_strategy()
    with strategy.scope():
        model = model_builder.build(model_config=model_config, is_training=True)
    eval_input = strategy.experimental_distribute_dataset(inputs.eval_input(
        eval_config=eval_config, eval_input_config=eval_input_config, model_config=model_config, model=model))
    global_step = tf.Variable(0, trainable=False, dtype=tf.int64)
    optimizer, _ = optimizer_builder.build(configs["train_config"].optimizer, global_step=global_step)
    ckpt = tf.train.Checkpoint(step=global_step, model=model, optimizer=optimizer)
    if eval_config.use_moving_averages:
        model_lib_v2._ensure_model_is_built(model, eval_input, eval_config.batch_size == 1)
        optimizer.shadow_copy(model)
    ckpt.restore(checkpoint).expect_partial()
    if eval_config.use_moving_averages:
        optimizer.swap_weights()
    writer = tf.summary.create_file_writer(os.path.join(run_dir, "eval"))
    # the per-image detections (PR curve, confusion matrix) ride along the OD API's own pass
    with writer.as_default(), tf2_eval.recording(tf2_eval.Recorder()) as recorder:
        metrics = model_lib_v2.eager_eval_loop(model, configs, eval_input, global_step=global_step)
    writer.flush()  # odrun.cli leaves without TensorFlow's teardown: events are on disk now
    out = {str(k): float(v) for k, v in metrics.items()}
    out["_meta"] = {"step": int(global_step.numpy()), "checkpoint": checkpoint, "images": recorder.images,
                    "names": dict(pc.read_label_map(eval_input_config.label_map_path))}
    if model_config.WhichOneof("model") == "faster_rcnn":  # Faster/Mask R-CNN: see Evaluator.losses
        for key in [k for k in out if k.startswith(LOSS)]:
            out[ON_DETECTIONS + key[len(LOSS):]] = out.pop(key)  # the OD API's inference-mode numbers
        out.update(tf2_eval.Evaluator(configs, model).losses(configs["train_config"].add_regularization_loss))
    return out


def export(config_path, run_dir, out_dir, checkpoint=None):
    """SavedModel with a batch-capable float image input (serving_default) and an encoded-image
    one (ENCODED_SIGNATURE), the OD API exporter's modules, of `checkpoint` (default: the newest;
    the exporter takes a directory: CHECKPOINT_DIR names the one)."""
    prepare()
    import tensorflow as tf
    from object_detection.utils import config_util

    checkpoint = _checkpoint(run_dir, checkpoint)
    configs = _configs(config_path)
    pipeline = config_util.create_pipeline_proto_from_configs(configs)
    with checkpoint_dir(checkpoint) as ckpt_dir:
        export_inference_graph(pipeline, ckpt_dir, out_dir)
    saved_model = os.path.join(out_dir, "saved_model")
    signature = saved_signature(saved_model)
    encoded = saved_signature(saved_model, ENCODED_SIGNATURE)
    signature["also"] = {ENCODED_SIGNATURE: {"input_type": "encoded_image_string_tensor", "inputs": encoded["inputs"]}}
    return {"saved_model": saved_model, "checkpoint": checkpoint, "step": checkpoint_step(checkpoint),
            "signature": signature, "tf_version": tf.__version__}


def export_inference_graph(pipeline, ckpt_dir, out_dir):
    """exporter_lib_v2.export_inference_graph with two signatures in one SavedModel:
    serving_default (INPUT_TYPE: float pixels, any size, batched) and ENCODED_SIGNATURE (the
    exporter's encoded_image_string_tensor module: a [None] DT_STRING batch of JPEG/PNG bytes, what
    TF Serving's REST {"b64": ...} feeds), over the same model and variables. The same steps as
    exporter_lib_v2 (object_detection/exporter_lib_v2.py): build, restore, trace, save."""
    import tensorflow as tf
    from object_detection import exporter_lib_v2
    from object_detection.utils import config_util
    model = exporter_lib_v2.INPUT_BUILDER_UTIL_MAP["model_build"](pipeline.model, is_training=False)
    ckpt = tf.train.Checkpoint(model=model)
    manager = tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=1)
    status = ckpt.restore(manager.latest_checkpoint).expect_partial()
    main = exporter_lib_v2.DETECTION_MODULE_MAP[INPUT_TYPE](model, False, [])
    encoded = exporter_lib_v2.DETECTION_MODULE_MAP["encoded_image_string_tensor"](model, False, [])
    signatures = {"serving_default": main.__call__.get_concrete_function(),
                  ENCODED_SIGNATURE: encoded.__call__.get_concrete_function()}
    status.assert_existing_objects_matched()
    main.encoded = encoded  # tracked: the second signature's function is saved with the model
    tf.train.CheckpointManager(ckpt, os.path.join(out_dir, "checkpoint"), max_to_keep=1).save(checkpoint_number=0)
    tf.saved_model.save(main, os.path.join(out_dir, "saved_model"), signatures=signatures)
    config_util.save_pipeline_config(pipeline, out_dir)


def saved_signature(saved_model, name="serving_default"):
    """Input/output specs read from saved_model.pb (a proto parse: no 30 s model load)."""
    import tensorflow as tf
    from tensorflow.python.saved_model import loader_impl
    sig = loader_impl.parse_saved_model(saved_model).meta_graphs[0].signature_def[name]

    def spec(info):
        shape = None if info.tensor_shape.unknown_rank else [
            None if d.size < 0 else d.size for d in info.tensor_shape.dim]
        return {"dtype": tf.dtypes.as_dtype(info.dtype).name, "shape": shape}

    return {"name": name, "input_type": INPUT_TYPE,
            "inputs": {k: spec(v) for k, v in sig.inputs.items()},
            "outputs": sorted(sig.outputs)}


def load_detector(export_dir):
    """callable(list of HxWx3 uint8 arrays) -> list of {boxes, classes, scores, outputs} (numpy)."""
    prepare()
    import numpy as np
    import tensorflow as tf

    path = os.path.join(export_dir, "saved_model")
    if not os.path.isdir(path):
        path = export_dir
    model = tf.saved_model.load(path)  # keep a reference: the signature needs its variables
    fn = model.signatures["serving_default"]
    input_name = list(fn.structured_input_signature[1])[0]

    def detect(images):
        results = [None] * len(images)
        groups = {}
        for i, image in enumerate(images):  # the signature batches equal shapes only
            groups.setdefault(image.shape, []).append(i)
        for indexes in groups.values():
            batch = np.stack([images[i] for i in indexes]).astype(np.float32)
            out = fn(**{input_name: tf.constant(batch)})
            num = out["num_detections"].numpy().astype(int)
            boxes, classes = out["detection_boxes"].numpy(), out["detection_classes"].numpy()
            scores = out["detection_scores"].numpy()
            masks = out["detection_masks"].numpy() if "detection_masks" in out else None  # Mask R-CNN
            rows = per_image_outputs({k: v.numpy() for k, v in out.items()}, len(indexes))  # odrun serve's
            for j, i in enumerate(indexes):
                n = num[j]
                results[i] = {"boxes": boxes[j, :n], "classes": classes[j, :n].astype(int), "scores": scores[j, :n],
                              "outputs": rows[j]}
                if masks is not None:
                    results[i]["masks"] = masks[j, :n]
        return results

    detect.model = model
    return detect
