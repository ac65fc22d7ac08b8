"""Benchmark mask conversion (not a test): images/s of `odrun convert` with instance masks vs the OD
API's own `create_coco_tf_record.py --include_masks=True` on the same COCO file, in one run.

Data (HAND-MADE, odrun/tasks/detect/masks/synth.py): N 640x480 JPEGs with 1-4 shapes each, masks as
polygons (iscrowd 0) and uncompressed RLE (iscrowd 1), the two forms that script reads.
Peer: `create_coco_tf_record._create_tf_record_from_coco_annotations(..., include_masks=True,
num_shards=1)`, the function its main() runs for each split (JSON load, per-image read, pycocotools
rasterising, PNG per mask, tf.train.Example, TFRecord). Ours: `odrun convert instances.json --masks
--split 1` with all cores, and with one worker. TensorFlow and the OD API are imported before any
timer starts; one untimed read of every image warms the page cache. Best of --repeat, alternating.

    .venv/bin/python bench/masks.py [--images 300] [--repeat 2]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ratio, report, scratch  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
GOAL = 3.0


def dataset(folder, n):
    from odrun.tasks.detect.masks import synth
    path, truth = synth.generate(os.path.join(folder, "coco"), count=n, width=640, height=480, seed=7,
                                 max_objects=4, forms=("polygon", "crowd"))
    return path, sum(len(v) for v in truth.values())


def warm(image_dir):
    for name in os.listdir(image_dir):
        with open(os.path.join(image_dir, name), "rb") as f:
            f.read()


def peer(json_path, out):
    from object_detection.dataset_tools import create_coco_tf_record as script
    t = time.perf_counter()
    script._create_tf_record_from_coco_annotations(json_path, os.path.dirname(json_path), out,
                                                   include_masks=True, num_shards=1)
    return time.perf_counter() - t


def ours(json_path, out, workers):
    from odrun.convert import convert
    t = time.perf_counter()
    summary = convert(json_path, out, split=1.0, masks=True, progress=False, workers=workers)
    assert summary["instance_masks"]
    return time.perf_counter() - t, summary["workers"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs each")
    args = ap.parse_args(argv)

    import tensorflow  # noqa: F401  (import cost is not part of any timing)
    from object_detection.dataset_tools import create_coco_tf_record  # noqa: F401
    from absl import logging
    logging.set_verbosity(logging.ERROR)

    with scratch("masks") as tmp:
        json_path, objects = dataset(tmp, args.images)
        warm(os.path.dirname(json_path))
        times = {"peer": [], "ours": [], "one": []}
        used = None
        for i in range(args.repeat):  # alternating, so a load change hits all three alike
            times["peer"].append(peer(json_path, os.path.join(tmp, "peer{}.record".format(i))))
            t, used = ours(json_path, os.path.join(tmp, "out{}".format(i)), args.workers)
            times["ours"].append(t)
            times["one"].append(ours(json_path, os.path.join(tmp, "one{}".format(i)), 1)[0])
    n = args.images
    best = {k: min(v) for k, v in times.items()}
    result = {"images": n, "objects": objects, "image_size": "640x480", "cores": os.cpu_count(), "workers": used,
              "load_average_1min": round(os.getloadavg()[0], 2),
              "create_coco_tf_record_images_per_s": round(n / best["peer"], 1),
              "odrun_convert_images_per_s": round(n / best["ours"], 1),
              "odrun_convert_1_worker_images_per_s": round(n / best["one"], 1)}
    report("masks", result, [
        ratio("odrun convert --masks vs create_coco_tf_record.py --include_masks (images/s)",
              best["peer"] / best["ours"], GOAL),
        ratio("same, odrun with 1 worker", best["peer"] / best["one"], None)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
