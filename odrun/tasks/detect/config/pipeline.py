"""Pipeline configs: model templates, read/write, accessors and `fill` (what `odrun train`
sets). The `--set key.path=value` engine is odrun/tasks/detect/config/overrides.py, the checks for the known
traps (caught before TensorFlow spends a minute building a graph) odrun/tasks/detect/config/checks.py,
which reads configs through the accessors here (never the other way round).

Configs are parsed and written with the OD API's own `pipeline_pb2` (protobuf only, no
TensorFlow import), so a config that passes here is one `model_lib*` will accept.
"""
import os

from odcore.errors import UserError
from odcore.fileio import write_text
from odrun import DATA_DIR
from odrun.convert import labelmap
from odrun.tasks.detect.config import overrides as config_set

PLACEHOLDER = "PATH_TO_BE_CONFIGURED"  # what templates leave to fill

TEMPLATE_ROOT = os.path.join(DATA_DIR, "templates")
ARCHS = ("ssd", "faster_rcnn", "center_net")


def _protos():
    try:
        from google.protobuf import text_format
        from object_detection.protos import pipeline_pb2, string_int_label_map_pb2
    except ImportError as exc:
        from odcore.install import tf_fix
        raise UserError("the TF Object Detection API is not importable ({})".format(exc), fix=tf_fix())
    return text_format, pipeline_pb2, string_int_label_map_pb2


# ---------------------------------------------------------------- templates
def list_models(api):
    folder = os.path.join(TEMPLATE_ROOT, api)
    if not os.path.isdir(folder):
        return []
    return sorted(f[:-len(".config")] for f in os.listdir(folder) if f.endswith(".config"))


def template_path(api, model):
    path = os.path.join(TEMPLATE_ROOT, api, model + ".config")
    if not os.path.exists(path):
        models = list_models(api)
        import difflib
        close = difflib.get_close_matches(model, models, n=1)
        raise UserError("no {} model template named {!r}{}".format(
            api, model, " (did you mean {!r}?)".format(close[0]) if close else ""),
            where="--model", fix="choose one of: " + (", ".join(models) or "(none installed)"))
    return path


# ---------------------------------------------------------------- read / write
def parse(text, where="pipeline.config"):
    text_format, pipeline_pb2, _ = _protos()
    config = pipeline_pb2.TrainEvalPipelineConfig()
    try:
        text_format.Merge(text, config)
    except text_format.ParseError as exc:
        from odrun.tasks.detect.config.errors import parse_error
        raise parse_error(exc, text, where)
    return config


def load(path):
    if not os.path.exists(path):
        raise UserError("pipeline config not found", where=path,
                        fix="pass --config PATH or --model NAME")
    with open(path, encoding="utf-8") as f:
        return parse(f.read(), where=path)


def to_text(config):
    text_format = _protos()[0]
    return text_format.MessageToString(config)


def save(config, path):
    write_text(path, to_text(config))
    return path


def read_label_map(path):
    """[(id, name)] from a label_map.pbtxt, sorted by id (odrun.convert.labelmap: the one reader)."""
    return labelmap.items(path)


# ---------------------------------------------------------------- accessors
def arch(config):
    name = config.model.WhichOneof("model")
    if not name:
        raise UserError("config has no model { ... } block", where="model",
                        fix="start from a template: odrun train --model NAME")
    return name


def model_block(config):
    return getattr(config.model, arch(config))


def num_classes(config):
    return model_block(config).num_classes


def image_resizer(config):
    resizer = model_block(config).image_resizer
    return resizer.WhichOneof("image_resizer_oneof"), resizer


def image_size(config):
    kind, resizer = image_resizer(config)
    if kind == "fixed_shape_resizer":
        return resizer.fixed_shape_resizer.height
    if kind == "keep_aspect_ratio_resizer":
        return resizer.keep_aspect_ratio_resizer.max_dimension
    return None


# ---------------------------------------------------------------- --set key.path=value
def set_field(config, path, raw):
    """`--set path=raw` on a pipeline config (see odrun.tasks.detect.config.overrides); `model.X` may skip the
    architecture: model.num_classes == model.ssd.num_classes."""

    parts = path.split(".")
    if len(parts) > 1 and parts[0] == "model" and parts[1] not in ARCHS:
        parts.insert(1, arch(config))
    return config_set.set_field(config, path, raw, parts=parts)


def apply_overrides(config, overrides):

    return config_set.apply_overrides(config, overrides, set_field)


# ---------------------------------------------------------------- fill
def fill(config, num_classes=None, train_record=None, eval_record=None, label_map=None,
         batch_size=None, image_size=None, num_steps=None, fine_tune_checkpoint=None,
         fine_tune_checkpoint_type=None, overrides=()):
    """Set the fields a user edits by hand in the tutorials; returns the same config."""
    block = model_block(config)
    if num_classes is not None:
        block.num_classes = int(num_classes)
    if image_size is not None:
        kind, resizer = image_resizer(config)
        if kind == "fixed_shape_resizer":
            resizer.fixed_shape_resizer.height = resizer.fixed_shape_resizer.width = int(image_size)
        elif kind == "keep_aspect_ratio_resizer":
            k = resizer.keep_aspect_ratio_resizer
            k.max_dimension = int(image_size)
            k.min_dimension = min(k.min_dimension or int(image_size), int(image_size))
    train = config.train_config
    if batch_size is not None:
        train.batch_size = int(batch_size)
    if num_steps is not None:
        train.num_steps = int(num_steps)
        _fit_schedule(train.optimizer, int(num_steps))
    if fine_tune_checkpoint:
        train.fine_tune_checkpoint = fine_tune_checkpoint
        train.fine_tune_checkpoint_type = fine_tune_checkpoint_type or "detection"
    if train_record:
        _set_paths(config.train_input_reader, train_record, label_map)
    if eval_record:
        if not len(config.eval_input_reader):
            config.eval_input_reader.add()
        for reader in config.eval_input_reader:
            _set_paths(reader, eval_record, label_map)
            reader.shuffle = False
            reader.num_epochs = 1
    elif label_map:
        for reader in config.eval_input_reader:
            reader.label_map_path = label_map
    return apply_overrides(config, overrides)


def _set_paths(reader, record, label_map):
    paths = record if isinstance(record, (list, tuple)) else [record]
    del reader.tf_record_input_reader.input_path[:]
    reader.tf_record_input_reader.input_path.extend(str(p) for p in paths)
    if label_map:
        reader.label_map_path = str(label_map)


def _fit_schedule(optimizer, steps):
    """Cosine/warmup schedules must fit in num_steps (the OD API raises if total < warmup)."""
    kind = optimizer.WhichOneof("optimizer")
    if not kind:
        return
    lr = getattr(optimizer, kind).learning_rate
    if lr.WhichOneof("learning_rate") == "cosine_decay_learning_rate":
        c = lr.cosine_decay_learning_rate
        c.total_steps = steps
        c.warmup_steps = min(c.warmup_steps, max(steps // 10, 0))
