"""TF1 path: images/s of a frozen_inference_graph.pb three ways, same model, one run.

1. odrun.tasks.detect.backends.tf1.load_detector: one graph + one session, batches of --batch images;
2. the tutorials' loop (000/003's detection scripts): the same session, one image per sess.run;
3. 003's script shape: a new Graph + import_graph_def + Session per image.

Needs an exported TF1 model (--export DIR); without one it makes one in the cache
(synthetic data -> odrun convert -> odrun train --api tf1 --steps 1 -> odrun export --api tf1).
Run: .venv/bin/python bench/tf1.py [--export DIR] [--images 200] [--batch 16]
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SIZE = 160


def odrun(*args):
    exe = os.path.join(os.path.dirname(sys.executable), "odrun")
    subprocess.run([exe] + [str(a) for a in args], check=True, stdout=subprocess.DEVNULL)


def make_export(CACHE):
    export = os.path.join(CACHE, "export")
    if os.path.exists(os.path.join(export, "frozen_inference_graph.pb")):
        return export
    from odrun.tasks.detect import synth
    synth.generate(os.path.join(CACHE, "src"), count=20, width=SIZE, height=SIZE, seed=0)
    odrun("convert", os.path.join(CACHE, "src"), "--out", os.path.join(CACHE, "data"), "--json")
    odrun("train", "--api", "tf1", "--data", os.path.join(CACHE, "data"), "--workdir", os.path.join(CACHE, "run"),
          "--steps", 1, "--batch", 2, "--image-size", SIZE, "--json")
    odrun("export", "--api", "tf1", "--workdir", os.path.join(CACHE, "run"), "--out", export, "--json")
    return export


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", help="an `odrun export --api tf1` directory")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--session-images", type=int, default=10, help="images for the session-per-image way")
    args = ap.parse_args()
    if args.export:
        return bench(args, args.export)
    from common import scratch
    with scratch("tf1") as tmp:  # the 1-step export is rebuilt each run (~1 min) unless ODSTACK_BENCH_KEEP=1
        return bench(args, make_export(tmp))


def bench(args, export):
    import numpy as np
    import tensorflow.compat.v1 as tf
    from odrun.tasks.detect.backends import tf1

    rng = np.random.RandomState(0)
    images = [rng.randint(0, 255, (SIZE, SIZE, 3)).astype("uint8") for _ in range(args.images)]
    detector = tf1.load_detector(export)
    detector(images[:2])  # warm-up
    results = {}

    t = time.time()
    for i in range(0, len(images), args.batch):
        detector(images[i:i + args.batch])
    results["odrun_batched"] = len(images) / (time.time() - t)

    t = time.time()
    for image in images:
        detector.session.run(detector.fetches, feed_dict={detector.image: image[None]})
    results["one_image_per_call"] = len(images) / (time.time() - t)

    graph_def = tf.GraphDef()
    with open(os.path.join(export, "frozen_inference_graph.pb"), "rb") as f:
        graph_def.ParseFromString(f.read())
    t = time.time()
    for image in images[:args.session_images]:
        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
        with tf.Session(graph=graph) as sess:
            sess.run([graph.get_tensor_by_name(n + ":0") for n in ("detection_boxes", "detection_scores")],
                     feed_dict={graph.get_tensor_by_name("image_tensor:0"): image[None]})
    results["session_per_image"] = args.session_images / (time.time() - t)
    results["speedup_vs_one_per_call"] = results["odrun_batched"] / results["one_image_per_call"]
    results["speedup_vs_session_per_image"] = results["odrun_batched"] / results["session_per_image"]
    from common import ratio, report
    report("tf1", {k: round(v, 2) for k, v in results.items()},
           [ratio("odrun TF1 frozen-graph detector, batched / one image per sess.run",
                  results["speedup_vs_one_per_call"]),
            ratio("odrun TF1 detector / a session per image (tutorial 003's script)",
                  results["speedup_vs_session_per_image"], goal=5)])


if __name__ == "__main__":
    main()
