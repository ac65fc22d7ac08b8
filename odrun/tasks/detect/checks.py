"""Input checks that run before TensorFlow starts (so bad input is exit 2 + a message in a
second, not a TF traceback after half a minute and a half-made run directory).

Each check returns nothing or raises odcore.errors.UserError naming the flag/field/file.
Used by `odrun train` (flags, config values, record files) and `odrun detect` (flags).
"""
import math
import os
import struct

from odcore.errors import UserError

MIN_IMAGE_SIZE = 32  # the smallest SSD/Faster R-CNN feature extractors downsample by 32
MASK_DELTA = 0xA282EAD8  # TFRecord's masked CRC32C (tensorflow/core/lib/hash/crc32c.h)
HEADER = 12  # uint64 length + uint32 masked crc32c(length)


def positive_int(value, flag, example):
    if value is not None and value < 1:
        raise UserError("{} must be >= 1, got {}".format(flag, value), where=flag, fix="e.g. {} {}".format(flag, example))


def train_flags(args):
    """`odrun train` flags that TensorFlow would only reject after building the graph."""
    positive_int(getattr(args, "batch", None), "--batch", 4)
    size = getattr(args, "image_size", None)
    if size is not None and size < MIN_IMAGE_SIZE:
        raise UserError("--image-size must be >= {}, got {}".format(MIN_IMAGE_SIZE, size), where="--image-size",
                        fix="e.g. --image-size 320 (the input is resized to SIZE x SIZE)")


def config_values(config, where):
    """Numeric fields of a filled pipeline config that must be positive (after --set)."""
    bad = []
    train = config.train_config
    if train.batch_size < 1:
        bad.append(("train_config.batch_size", train.batch_size, "--batch 4"))
    if config.HasField("eval_config") and config.eval_config.batch_size < 0:
        bad.append(("eval_config.batch_size", config.eval_config.batch_size, "--set eval_config.batch_size=1"))
    model = config.model.WhichOneof("model")
    if model:
        block = getattr(config.model, model)
        if block.HasField("image_resizer"):
            kind = block.image_resizer.WhichOneof("image_resizer_oneof")
            if kind == "fixed_shape_resizer":
                r = block.image_resizer.fixed_shape_resizer
                for name in ("height", "width"):
                    if getattr(r, name) < 1:
                        bad.append(("model.{}.image_resizer.fixed_shape_resizer.{}".format(model, name),
                                    getattr(r, name), "--image-size 320"))
            elif kind == "keep_aspect_ratio_resizer":
                r = block.image_resizer.keep_aspect_ratio_resizer
                for name in ("min_dimension", "max_dimension"):
                    if getattr(r, name) < 1:
                        bad.append(("model.{}.image_resizer.keep_aspect_ratio_resizer.{}".format(model, name),
                                    getattr(r, name), "--set model.{}.image_resizer.keep_aspect_ratio_resizer.{}=600"
                                    .format(model, name)))
        if hasattr(block, "num_classes") and block.num_classes < 1:
            bad.append(("model.{}.num_classes".format(model), block.num_classes, "omit it (set from the label map)"))
    if bad:
        field, value, example = bad[0]
        raise UserError("{} must be >= 1, got {}".format(field, value), where=where,
                        fix="e.g. {}".format(example))


def _masked_crc(data):
    import crc32c  # hardware CRC32C (odstack's convert uses it too); TF not needed
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def record_problem(path):
    """Why `path` is not a TFRecord file (checked on its first record's framing), or None."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(HEADER)
            if size == 0:
                return None  # empty files are pipeline_config's check ("0 examples")
            if len(head) < HEADER:
                return "is not a TFRecord file ({} bytes: shorter than one record header)".format(size)
            length, = struct.unpack("<Q", head[:8])
            crc, = struct.unpack("<I", head[8:12])
            try:
                good = _masked_crc(head[:8]) == crc
            except ImportError:
                good = None
            if good is False:
                return "is not a TFRecord file (the first record's length checksum does not match)"
            if HEADER + length + 4 > size:
                return "is not a TFRecord file, or is truncated (the first record says {} bytes, the file has {})" \
                    .format(length, size)
            if length <= 16 << 20:  # check the payload CRC when it is cheap to read
                data = f.read(length)
                data_crc = f.read(4)
                try:
                    if len(data_crc) == 4 and _masked_crc(data) != struct.unpack("<I", data_crc)[0]:
                        return "is damaged (the first record's data checksum does not match)"
                except ImportError:
                    pass
    except OSError as exc:
        return "cannot be read ({})".format(exc.strerror or exc)
    return None


def records(paths, where="--data"):
    """Every record file must start with a well-framed TFRecord (checked before TF starts)."""
    for path in paths:
        problem = record_problem(path)
        if problem:
            raise UserError("{} {}".format(path, problem), where=where,
                            fix="point --data at the output of `odrun convert` (re-run it if the files were "
                                "copied partially)")


def unit_interval(value, flag, example):
    """A score/probability flag: 0 <= value <= 1 (and a number)."""
    if value is None:
        return
    if isinstance(value, float) and math.isnan(value) or not 0.0 <= value <= 1.0:
        raise UserError("{} must be between 0 and 1, got {}".format(flag, value), where=flag,
                        fix="e.g. {} {}".format(flag, example))
