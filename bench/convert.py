"""Benchmark `odrun convert` (not a test): images/s on >= 2,000 VOC-annotated 640x480 JPEGs.

Compared with
  * the OD API peer: `create_pascal_tf_record.dict_to_tf_example` + TFRecordWriter in one
    process, as that script's main loop does (lxml parse -> recursive_parse_xml_to_dict ->
    example -> write);
  * the raw I/O floor: reading the same image bytes (open + read), nothing else;
  * a record floor: reading them and writing each as a TFRecord (no parsing, no Example).
TensorFlow and the OD API are imported before any timer starts; the page cache is warmed by
one untimed read of every file, so all three read from memory.

    .venv/bin/python bench/convert.py [--images 2000] [--workers N] [--json]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CACHE = os.path.expanduser("~/.cache/odstack/bench-convert")


def dataset(n):
    """Generated once into ~/.cache/odstack (generation takes longer than the benchmark)."""
    from odrun.tasks.detect import synth

    src = os.path.join(CACHE, "voc-{}".format(n))
    if not os.path.exists(os.path.join(src, ".done")):
        shutil.rmtree(src, ignore_errors=True)
        synth.make_voc(src, n, classes=("cat", "dog", "person", "car"), size=(640, 480), seed=11, noise=24)
        open(os.path.join(src, ".done"), "w").close()
    return src


def files(src, ext):
    return sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(ext))


def raw_floor(src):
    t = time.perf_counter()
    total = 0
    for p in files(src, ".jpg"):
        with open(p, "rb") as f:
            total += len(f.read())
    return time.perf_counter() - t, total


def record_floor(src, out):
    """Read each image and write its bytes as one TFRecord: the least any converter must do."""
    import tensorflow as tf

    t = time.perf_counter()
    with tf.io.TFRecordWriter(out) as writer:
        for p in files(src, ".jpg"):
            with open(p, "rb") as f:
                writer.write(f.read())
    return time.perf_counter() - t


def odapi_peer(src, out):
    import tensorflow as tf
    from lxml import etree
    from object_detection.dataset_tools import create_pascal_tf_record as peer
    from object_detection.utils import dataset_util

    label_map = {"car": 1, "cat": 2, "dog": 3, "person": 4}
    t = time.perf_counter()
    with tf.io.TFRecordWriter(out) as writer:
        for xml_path in files(src, ".xml"):
            with open(xml_path, "rb") as f:
                data = dataset_util.recursive_parse_xml_to_dict(etree.fromstring(f.read()))["annotation"]
            example = peer.dict_to_tf_example(data, os.path.dirname(src), label_map, image_subdirectory="")
            writer.write(example.SerializeToString())
    return time.perf_counter() - t


def odrun_convert(src, out, workers):
    from odrun.convert import convert

    t = time.perf_counter()
    summary = convert(src, out, progress=False, workers=workers)
    return time.perf_counter() - t, summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs each")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tmp", default=None, help="where outputs go (default: system temp dir)")
    args = ap.parse_args(argv)

    import tensorflow  # noqa: F401  (import cost is not part of any timing)
    from object_detection.dataset_tools import create_pascal_tf_record  # noqa: F401

    src = dataset(args.images)
    raw_floor(src)  # warm the page cache
    tmp = tempfile.mkdtemp(prefix="bench-convert-", dir=args.tmp)
    try:
        raw = min(raw_floor(src)[0] for _ in range(args.repeat))
        nbytes = raw_floor(src)[1]
        # Fresh output paths every run: replacing a previous 250 MB file costs time of its own.
        floor2 = min(record_floor(src, os.path.join(tmp, "floor{}.record".format(i))) for i in range(args.repeat))
        peer = min(odapi_peer(src, os.path.join(tmp, "peer{}.record".format(i))) for i in range(args.repeat))
        runs = [odrun_convert(src, os.path.join(tmp, "out{}".format(i)), args.workers) for i in range(args.repeat)]
        ours, summary = min(runs, key=lambda r: r[0])
        one = min(odrun_convert(src, os.path.join(tmp, "one{}".format(i)), 1)[0] for i in range(args.repeat))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.images
    result = {
        "images": n, "load_average_1min": round(os.getloadavg()[0], 2), "image_mb": round(nbytes / 1e6, 1), "cores": os.cpu_count(), "workers": summary["workers"],
        "raw_read_images_per_s": round(n / raw, 1),
        "read_write_record_images_per_s": round(n / floor2, 1),
        "odapi_peer_images_per_s": round(n / peer, 1),
        "odrun_convert_images_per_s": round(n / ours, 1),
        "odrun_convert_1_worker_images_per_s": round(n / one, 1),
        "odrun_vs_peer": round(peer / ours, 2),
        "odrun_1_worker_vs_peer": round(peer / one, 2),
        "odrun_vs_raw": round(raw / ours, 3),
        "odrun_vs_read_write_record": round(floor2 / ours, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print("{:28s} {}".format(k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
