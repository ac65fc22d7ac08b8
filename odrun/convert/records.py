"""One image + its boxes -> serialized tf.train.Example bytes with the OD API's feature keys
(those `object_detection.data_decoders.tf_example_decoder` reads), and the TFRecord writers.

`encode_block` runs in worker processes: the Example bytes are written in the protobuf wire
format directly (wire.py), the TFRecord framing by tfrecord.py (CRC32C package; no TensorFlow).
"""
import hashlib
import os

from odrun.convert import images, masks, relative, resize, tfrecord, wire
from odrun.convert import problems as P


def _fmt(v):
    return "{:g}".format(v)


def check_boxes(item, width, height):
    """Clip boxes to the image, drop degenerate ones -> (kept objects, problems)."""
    kept, found, ann = [], [], item["ann"]
    for obj in item["objects"]:
        box = (obj["xmin"], obj["ymin"], obj["xmax"], obj["ymax"])
        where = obj["where"]
        if obj["xmin"] > obj["xmax"] or obj["ymin"] > obj["ymax"]:
            found.append(P.error(ann, "inverted box: xmin={} ymin={} xmax={} ymax={} (xmin must be < xmax "
                                      "and ymin < ymax)".format(*map(_fmt, box)), where))
            continue
        clipped = (min(max(obj["xmin"], 0.0), width), min(max(obj["ymin"], 0.0), height),
                   min(max(obj["xmax"], 0.0), width), min(max(obj["ymax"], 0.0), height))
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            found.append(P.warning(ann, "degenerate box ({}) has no area inside the {}x{} image: dropped".format(
                ", ".join(map(_fmt, box)), width, height), where))
            continue
        if clipped != box:
            found.append(P.warning(ann, "box ({}) is outside the {}x{} image: clipped to ({})".format(
                ", ".join(map(_fmt, box)), width, height, ", ".join(map(_fmt, clipped))), where))
            obj = dict(obj, xmin=clipped[0], ymin=clipped[1], xmax=clipped[2], ymax=clipped[3])
        kept.append(obj)
    return kept, found


def features(info, item, objects, label_ids):
    """(key, kind, values) for every feature: the keys create_pascal_tf_record.py writes (plus
    is_crowd for COCO); boxes normalised by the real image size."""
    w, h = info["width"], info["height"]
    name = item["filename"].encode("utf-8")
    feats = [
        ("image/height", "int64", [h]), ("image/width", "int64", [w]),
        ("image/filename", "bytes", [name]), ("image/source_id", "bytes", [name]),
        ("image/key/sha256", "bytes", [hashlib.sha256(info["data"]).hexdigest().encode("ascii")]),
        ("image/encoded", "bytes", [info["data"]]), ("image/format", "bytes", [info["format"].encode("ascii")]),
        ("image/object/bbox/xmin", "float", [o["xmin"] / w for o in objects]),
        ("image/object/bbox/xmax", "float", [o["xmax"] / w for o in objects]),
        ("image/object/bbox/ymin", "float", [o["ymin"] / h for o in objects]),
        ("image/object/bbox/ymax", "float", [o["ymax"] / h for o in objects]),
        ("image/object/class/text", "bytes", [o["name"].encode("utf-8") for o in objects]),
        ("image/object/class/label", "int64", [label_ids[o["name"]] for o in objects]),
        ("image/object/difficult", "int64", [o["difficult"] for o in objects]),
        ("image/object/truncated", "int64", [o["truncated"] for o in objects]),
        ("image/object/view", "bytes", [o["pose"].encode("utf-8") for o in objects]),
    ]
    if any("crowd" in o for o in objects):
        feats.append(("image/object/is_crowd", "int64", [o.get("crowd", 0) for o in objects]))
    if item.get("masks"):  # PNG per instance, as create_coco_tf_record.py --include_masks writes
        feats.append(("image/object/mask", "bytes", [o["mask_png"] for o in objects]))
    return feats


_WIRE = {"bytes": wire.bytes_feature, "float": wire.float_feature, "int64": wire.int64_feature}


def build_example(info, item, objects, label_ids):
    """Serialized tf.train.Example, written straight in the wire format (see wire.py)."""
    return wire.example([(key, _WIRE[kind](values)) for key, kind, values in features(info, item, objects, label_ids)])


def build_example_pb(info, item, objects, label_ids):
    """The same Example through TensorFlow's protobuf classes, as the OD API's dataset_util
    builds it (reference for the tests; ~1.5 ms per 640x480 JPEG with pure-Python protobuf)."""
    from tensorflow.core.example import example_pb2, feature_pb2

    lists = {"bytes": feature_pb2.BytesList, "float": feature_pb2.FloatList, "int64": feature_pb2.Int64List}
    feats = {key: feature_pb2.Feature(**{kind + "_list": lists[kind](value=values)})
             for key, kind, values in features(info, item, objects, label_ids)}
    return example_pb2.Example(features=feature_pb2.Features(feature=feats)).SerializeToString()


def encode(item, label_ids):
    """Worker: -> dict(record bytes or None, width, height, format, objects, problems)."""
    out = {"record": None, "problems": [], "objects": [], "width": None, "height": None, "format": None}
    try:
        info = images.inspect(item["image"])
    except images.BadImage as exc:
        out["problems"].append(P.error(item["image"], str(exc)))
        return out
    w, h = info["width"], info["height"]
    item = relative.to_pixels(item, w, h)  # YOLO / Label Studio fractions -> pixels
    out.update(width=w, height=h, format=info["format"], orientation=info["orientation"])
    found = out["problems"]
    if info["ext_format"] and info["ext_format"] != info["format"]:
        found.append(P.warning(item["image"], "{} data with a {} extension: image/format set to {!r} from the bytes"
                               .format(info["format"].upper(), os.path.splitext(item["image"])[1], info["format"])))
    if item.get("size") and tuple(item["size"]) != (w, h):
        found.append(P.warning(item["ann"], "annotation says the image is {}x{} but {} is {}x{}: using the real size"
                               .format(item["size"][0], item["size"][1], item["filename"], w, h)))
    if info["orientation"] and not item.get("max_size"):  # --max-size applies it
        found.append(P.warning(item["image"], "EXIF orientation {} ({}): TensorFlow decodes the stored pixels without "
                               "rotating them, so the boxes must be drawn on the unrotated {}x{} image".format(
                                   info["orientation"], images.ORIENTATION.get(info["orientation"], "?"), w, h)))
    if item.get("masks"):  # instance masks: checked, rasterised, boxes derived/checked
        mask_objects, mask_problems = masks.attach(item, w, h)
        found.extend(mask_problems)
        item = dict(item, objects=mask_objects)
    objects, box_problems = check_boxes(item, w, h)
    found.extend(box_problems)
    missing = [o for o in objects if o["name"] not in label_ids]
    if missing or any(p["level"] == P.ERROR for p in found):
        return out  # the class errors were reported by the parent; nothing to build
    if item.get("max_size") and resize.needed(info, item["max_size"]):  # --max-size: resized, EXIF applied
        if item.get("masks"):
            found.append(P.error(item["image"], "--max-size does not resize instance masks yet: drop "
                                                "--max-size (or resize the images before labelling)"))
            return out
        info, objects = resize.apply(info, objects, item["max_size"])
        out.update(width=info["width"], height=info["height"], orientation=None)
    out["objects"] = [(o["name"], o["xmin"], o["ymin"], o["xmax"], o["ymax"]) for o in objects]
    out["record"] = build_example(info, item, objects, label_ids)
    return out


def encode_block(task):
    """Worker: encode a block of images into one part file (tfrecord.writer); returns the
    per-image results with `record` = True where a record was written."""
    part, jobs, label_ids = task
    results = []
    with tfrecord.writer(part) as writer:
        for job in jobs:
            res = encode(job, label_ids)
            if res["record"] is not None:
                writer.write(res["record"])
                res["record"] = True
            results.append(res)
    return results


def shard_names(out_dir, split, shards):
    """train.record, or train.record-00000-of-00004 ... as the OD API's sharded inputs."""
    base = os.path.join(out_dir, split + ".record")
    if shards <= 1:
        return [base]
    return ["{}-{:05d}-of-{:05d}".format(base, i, shards) for i in range(shards)]
