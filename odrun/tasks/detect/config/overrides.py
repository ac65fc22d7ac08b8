"""The `--set key.path=value` engine: set any field of a protobuf message from text, by its
dotted field path (`[i]` for repeated entries), with the field's own type (bool, float,
enum names, ints; text format for message fields) and errors that name the bad component and
list the fields that exist. Protobuf only (no TensorFlow import); Python 3.6-safe.
"""
import re

from odcore.errors import UserError

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


def set_field(config, path, raw, parts=None):
    """Set `path` (dotted proto field names, `[i]` for repeated entries) to the text `raw`.

    `parts`: the path's components when the caller expanded an alias (odrun.tasks.detect.config.pipeline:
    model.X -> model.<arch>.X). A repeated message without an index sets every entry (eval_input_reader.label_map_path);
    a repeated scalar without an index is replaced by the comma-separated values;
    a message field takes text format (train_config.optimizer="adam_optimizer {...}").
    """
    from google.protobuf import text_format

    parts = parts or path.split(".")
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


def apply_overrides(config, overrides, setter=set_field):
    """Every `key.path=value` of --set, in order, through `setter`."""
    for item in overrides or ():
        if "=" not in item:
            raise UserError("--set needs key.path=value, got {!r}".format(item), where="--set",
                            fix="e.g. --set train_config.batch_size=4")
        key, value = item.split("=", 1)
        setter(config, key.strip(), value.strip())
    return config
