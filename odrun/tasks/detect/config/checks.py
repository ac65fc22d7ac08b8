"""The known traps of a pipeline config, found before TensorFlow starts: placeholders left in,
batch_size > 1 with keep_aspect_ratio_resizer, a fine_tune_checkpoint that is not there,
num_classes vs the label map, record files missing or empty. `validate` raises one UserError
listing them all, each with its fix.
"""
import glob
import os

from odcore.errors import UserError
from odrun.tasks.detect.config.pipeline import (PLACEHOLDER, arch, image_resizer, model_block, read_label_map,
                                                to_text)


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
    """List of (where, message, fix) for the traps users hit in the tutorials."""

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
