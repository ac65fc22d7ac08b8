"""Pipeline configs: fill a model template, apply `--set key.path=value`, and catch the
seeds' known traps before TensorFlow spends a minute building a graph.

Configs are parsed and written with the OD API's own `pipeline_pb2` (protobuf only, no
TensorFlow import), so a config that passes here is one `model_lib*` will accept.
"""
import glob
import os
import re

from odcore.errors import UserError
from odcore.fileio import write_text

TEMPLATE_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "templates")
PLACEHOLDER = "PATH_TO_BE_CONFIGURED"
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
        raise UserError("not a valid pipeline config: {}".format(exc), where=where,
                        fix="compare with a template in odrun/data/templates/")
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
    from odrun.convert import labelmap
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
_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


def _scalar(field, raw, path):
    from google.protobuf.descriptor import FieldDescriptor as FD
    try:
        if field.type == FD.TYPE_BOOL:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError("expected true/false")
            return raw.lower() in ("true", "1")
        if field.type in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
            return float(raw)
        if field.type == FD.TYPE_ENUM:
            value = field.enum_type.values_by_name.get(raw)
            if value is None:
                raise ValueError("expected one of " + ", ".join(field.enum_type.values_by_name))
            return value.number
        if field.type == FD.TYPE_STRING:
            return raw
        return int(raw)
    except ValueError as exc:
        raise UserError("bad value {!r}: {}".format(raw, exc), where="--set " + path,
                        fix="give a value of the field's type")


def set_field(config, path, raw):
    """Set `path` (dotted proto field names, `[i]` for repeated entries) to the text `raw`.

    `model.X` may skip the architecture (model.num_classes == model.ssd.num_classes); a
    repeated message without an index sets every entry (eval_input_reader.label_map_path);
    a repeated scalar without an index is replaced by the comma-separated values;
    a message field takes text format (train_config.optimizer="adam_optimizer {...}").
    """
    text_format = _protos()[0]
    parts = path.split(".")
    if len(parts) > 1 and parts[0] == "model" and parts[1] not in ARCHS:
        parts.insert(1, arch(config))
    targets = [config]
    for i, part in enumerate(parts):
        m = _PART.match(part)
        if not m:
            raise UserError("bad field path component {!r}".format(part), where="--set " + path,
                            fix="use dotted field names, e.g. train_config.batch_size=4")
        name, index = m.group(1), m.group(2)
        last = i == len(parts) - 1
        new_targets = []
        for msg in targets:
            field = msg.DESCRIPTOR.fields_by_name.get(name)
            if field is None:
                import difflib
                close = difflib.get_close_matches(name, list(msg.DESCRIPTOR.fields_by_name), n=1)
                raise UserError("{} has no field {!r}{}".format(
                    msg.DESCRIPTOR.name, name, " (did you mean {!r}?)".format(close[0]) if close else ""),
                    where="--set " + path, fix="fields here: " + ", ".join(sorted(msg.DESCRIPTOR.fields_by_name)))
            oneof = field.containing_oneof
            if oneof is not None and not last:
                current = msg.WhichOneof(oneof.name)
                if current and current != name:
                    raise UserError("{} is a {} block, not {}".format(msg.DESCRIPTOR.name, current, name),
                                    where="--set " + path, fix="use {}.{}".format(".".join(parts[:i]), current))
            repeated = field.label == field.LABEL_REPEATED
            is_msg = field.message_type is not None
            if last:
                _assign(msg, field, index, raw, path, text_format)
                continue
            if not is_msg:
                raise UserError("{} is a value, it has no sub-fields".format(name), where="--set " + path,
                                fix="end the path at " + name)
            if repeated:
                container = getattr(msg, name)
                if index is not None:
                    idx = int(index)
                    while len(container) <= idx:
                        container.add()
                    new_targets.append(container[idx])
                else:
                    if not len(container):
                        container.add()
                    new_targets.extend(container)
            else:
                new_targets.append(getattr(msg, name))
        targets = new_targets
    return config


def _assign(msg, field, index, raw, path, text_format):
    name = field.name
    repeated = field.label == field.LABEL_REPEATED
    if field.message_type is not None:
        if repeated:
            container = getattr(msg, name)
            if index is None:
                del container[:]
                target = container.add()
            else:
                idx = int(index)
                while len(container) <= idx:
                    container.add()
                target = container[idx]
                target.Clear()
        else:
            target = getattr(msg, name)
            target.Clear()
        try:
            body = raw.strip()
            if body.startswith("{") and body.endswith("}"):
                body = body[1:-1]
            text_format.Merge(body, target)
        except text_format.ParseError as exc:
            raise UserError("bad text-format value for {}: {}".format(name, exc), where="--set " + path,
                            fix="give the block's body, e.g. --set {}='field: value'".format(path))
        target.SetInParent()
        return
    if repeated:
        container = getattr(msg, name)
        if index is None:
            del container[:]
            container.extend(_scalar(field, v.strip(), path) for v in raw.split(",") if v.strip())
        else:
            idx = int(index)
            if idx >= len(container):
                raise UserError("{} has {} entries, no [{}]".format(name, len(container), idx),
                                where="--set " + path, fix="use an index < {}".format(len(container)))
            container[idx] = _scalar(field, raw, path)
        return
    try:
        setattr(msg, name, _scalar(field, raw, path))
    except (TypeError, ValueError) as exc:  # protobuf's range check, e.g. uint32 batch_size=-5
        raise UserError("{} cannot be {} ({})".format(path, raw, exc), where="--set " + path,
                        fix="give a value in the field's range, e.g. --set train_config.batch_size=4")


def apply_overrides(config, overrides):
    for item in overrides or ():
        if "=" not in item:
            raise UserError("--set needs key.path=value, got {!r}".format(item), where="--set",
                            fix="e.g. --set train_config.batch_size=4")
        key, value = item.split("=", 1)
        set_field(config, key.strip(), value.strip())
    return config


# ---------------------------------------------------------------- fill
def fill(config, num_classes=None, train_record=None, eval_record=None, label_map=None,
         batch_size=None, image_size=None, num_steps=None, fine_tune_checkpoint=None,
         fine_tune_checkpoint_type=None, overrides=()):
    """Set the fields a user edits by hand in the seeds; returns the same config."""
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


# ---------------------------------------------------------------- validation (the seeds' traps)
def checkpoint_files(prefix):
    """The files a TF checkpoint `prefix` is made of (what the OD API will open)."""
    return [prefix + ".index", prefix + ".data-00000-of-00001"]


def find_checkpoint(path):
    """A checkpoint prefix from a prefix or a directory; None if nothing is there."""
    if os.path.isdir(path):
        for name in ("checkpoint/ckpt-0", "ckpt-0", "model.ckpt"):
            if os.path.exists(os.path.join(path, name) + ".index"):
                return os.path.join(path, name)
        indexes = sorted(glob.glob(os.path.join(path, "*.index")) + glob.glob(os.path.join(path, "*", "*.index")))
        return indexes[-1][:-len(".index")] if indexes else None
    return path if os.path.exists(path + ".index") else None


def problems(config, label_map_items=None, check_files=True):
    """List of (where, message, fix) for the traps users hit in the seeds."""
    out = []
    text = to_text(config)
    for line in text.splitlines():
        if PLACEHOLDER in line:
            out.append((line.strip().split(":")[0], "still says " + PLACEHOLDER,
                        "set it (odrun train --data/--pretrained fill these) or --set it"))
    block = model_block(config)
    train = config.train_config
    kind, resizer = image_resizer(config)
    if (train.batch_size > 1 and kind == "keep_aspect_ratio_resizer"
            and not resizer.keep_aspect_ratio_resizer.pad_to_max_dimension):
        out.append(("train_config.batch_size",
                    "batch_size {} with keep_aspect_ratio_resizer: images of different shapes cannot be "
                    "batched (training fails with 'Cannot add tensor to the batch: number of elements "
                    "does not match')".format(train.batch_size),
                    "use --batch 1, or a fixed_shape_resizer, or "
                    "--set model.image_resizer.keep_aspect_ratio_resizer.pad_to_max_dimension=true"))
    if train.fine_tune_checkpoint and PLACEHOLDER not in train.fine_tune_checkpoint and check_files:
        prefix = train.fine_tune_checkpoint
        if find_checkpoint(prefix) is None:
            looked = checkpoint_files(prefix) if not os.path.isdir(prefix) else [
                os.path.join(prefix, "checkpoint", "ckpt-0.index"), os.path.join(prefix, "*.index")]
            out.append(("train_config.fine_tune_checkpoint",
                        "checkpoint {!r} not found (training would fail with 'Unsuccessful "
                        "TensorSliceReader constructor: Failed to find any matching files'); looked for: "
                        "{}".format(prefix, ", ".join(looked)),
                        "download it (odrun train --pretrained NAME) or fix the path; the value is a "
                        "checkpoint prefix like .../checkpoint/ckpt-0, not a directory"))
    if label_map_items is None and check_files and config.train_input_reader.label_map_path \
            and os.path.exists(config.train_input_reader.label_map_path):
        label_map_items = read_label_map(config.train_input_reader.label_map_path)
    if label_map_items:
        max_id = max(i for i, _ in label_map_items)
        if block.num_classes != max_id:
            out.append(("model.{}.num_classes".format(arch(config)),
                        "num_classes is {} but the label map has ids up to {} ({} classes)".format(
                            block.num_classes, max_id, len(label_map_items)),
                        "--set model.num_classes={}".format(max_id)))
    if check_files:
        readers = [("train_input_reader", config.train_input_reader)] + [
            ("eval_input_reader[{}]".format(i), r) for i, r in enumerate(config.eval_input_reader)]
        for name, reader in readers:
            for pattern in reader.tf_record_input_reader.input_path:
                if PLACEHOLDER in pattern:
                    continue
                files = glob.glob(pattern)
                where = name + ".tf_record_input_reader.input_path"
                if not files:
                    out.append((where, "no record file matches {!r}".format(pattern),
                                "run `odrun convert` first, or point --data at its output directory"))
                elif all(os.path.getsize(f) == 0 for f in files):
                    out.append((where, "record file {!r} is empty (0 examples)".format(pattern),
                                "check the convert summary: were all annotations skipped?"))
    return out


def validate(config, label_map_items=None, check_files=True, where="pipeline.config"):
    found = problems(config, label_map_items, check_files)
    if found:
        lines = ["{}: {}".format(w, m) for w, m, _ in found]
        fixes = ["{}: {}".format(w, f) for w, _, f in found]
        raise UserError("\n  ".join(["pipeline config has {} problem(s):".format(len(found))] + lines),
                        where=where, fix="\n       ".join(fixes))
    return config
