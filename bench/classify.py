"""bench/classify.py: the classify task's two speed claims, each against its peer in one run.

    .venv/bin/python bench/classify.py [--per-class 100] [--size 224] [--alpha 1.0] [--batch 32] [--images 160]

1. head training: one epoch of the new softmax layer on cached bottleneck features (what
   `odrun train --task classify` does with a frozen base) vs the same epoch recomputing the frozen
   base on every batch (what training without a cache costs; retrain.py's own path when
   distortions are on). Same data, batch, steps and head. Also: the one-time cost of computing
   the cache, and 10 epochs both ways with that cost included.
2. inference: `odrun predict`'s loop (SavedModel loaded once, batches of --batch encoded images)
   vs the tutorial's test script (output_graph.pb imported once, one sess.run per image via
   DecodeJpeg/contents:0). Model loading is excluded from both rates; same images.

The base is a HAND-MADE stand-in (random MobileNetV2 with BatchNorm statistics from the
images; no ImageNet download here); the images are synthetic (odrun.tasks.classify.synth).
Defaults: `odrun train --task classify`'s default base (MobileNetV2 1.0 at 224 px).
"""
import argparse
import glob
import math
import os
import time

from common import ratio, report, scratch


def _settings(data_dir, run_dir, size, alpha, batch, steps):
    from odrun.tasks.classify import data, defaults
    names, _, _ = data.find(data_dir)
    hyper = dict(defaults()["hyper"], alpha=alpha, batch_size=batch)
    return {"task": "classify", "data": data_dir, "model": "mobilenet_v2", "image_size": size, "classes": names,
            "hyper": hyper, "head_steps": steps, "fine_tune_from": None, "fine_tune_steps": 0,
            "pretrained": "hand-made", "weights": None, "checkpoint_every": steps, "run_dir": run_dir,
            "bottleneck_dir": os.path.join(run_dir, "bottlenecks")}


def _calibrated(clf, files, size):
    import numpy as np
    from PIL import Image
    batch = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size)), np.float32) for f in files[:64]])
    clf.calibrate(batch)


def head_epochs(s, images):
    import tensorflow as tf
    from odrun.tasks.classify import bottleneck, data, train as T
    clf, _ckpt, _mgr, opts, _step = T.build(s)
    _calibrated(clf, images, s["image_size"])
    _, train_files, test_files = data.find(s["data"])
    head_on_features, head_on_images, _ = T._steps(clf, opts, s)
    t = time.time()
    feats, info = bottleneck.load_or_compute(clf, {"train": train_files, "test": test_files}, s["bottleneck_dir"])
    traced_seconds = time.time() - t
    t = time.time()
    bottleneck.compute(clf, train_files + test_files)  # the same work again, without tracing
    cache_seconds = time.time() - t
    x, y = feats["train"]
    batch = s["hyper"]["batch_size"]
    steps = int(math.ceil(len(y) / float(batch)))
    batches = T.Batches(len(y), batch, 0)
    head_on_features(tf.constant(x[batches.indices(0)]), tf.constant(y[batches.indices(0)]))  # trace
    t = time.time()
    for step in range(steps):
        idx = batches.indices(step)
        loss, _ = head_on_features(tf.constant(x[idx]), tf.constant(y[idx]))
    float(loss)
    cached = time.time() - t
    it = iter(data.images(train_files, clf.size, batch, shuffle=True, seed=0, repeat=True))
    head_on_images(*next(it))  # trace
    t = time.time()
    for _ in range(steps):
        loss, _ = head_on_images(*next(it))
    float(loss)
    recompute = time.time() - t
    return {"train_images": int(len(y)), "steps_per_epoch": steps, "cache_compute_s": round(cache_seconds, 2),
            "cache_compute_first_s": round(traced_seconds, 2),
            "cache_hit": info["hit"], "epoch_cached_s": round(cached, 4), "epoch_recompute_s": round(recompute, 3)}, clf


def inference(s, files, batch):
    import numpy as np
    import tensorflow as tf
    from odrun.tasks.classify import export, predict, train as T
    s = dict(s, head_steps=1)
    T.train(s, show=False)
    model_dir = os.path.join(os.path.dirname(s["run_dir"]), "model")
    export.export(s["run_dir"], model_dir)
    t = time.time()
    predictor = predict.Predictor(model_dir)
    predictor([open(files[0], "rb").read()])  # first call: function warm-up, excluded like the graph import
    load_predict = time.time() - t
    t = time.time()
    ours = []
    for start in range(0, len(files), batch):
        blobs = [predict.encoded(p) for p in files[start:start + batch]]
        ours += list(predictor(blobs).argmax(-1))
    ours_s = time.time() - t
    # the tutorial's script: import output_graph.pb once, then one sess.run per image
    t = time.time()
    graph = tf.Graph()
    with graph.as_default():
        gd = tf.compat.v1.GraphDef()
        with tf.io.gfile.GFile(os.path.join(model_dir, "output_graph.pb"), "rb") as f:
            gd.ParseFromString(f.read())
        tf.import_graph_def(gd, name="")
    sess = tf.compat.v1.Session(graph=graph)
    softmax = graph.get_tensor_by_name("final_result:0")
    sess.run(softmax, {"DecodeJpeg/contents:0": open(files[0], "rb").read()})
    load_tutorial = time.time() - t
    t = time.time()
    theirs = []
    for path in files:
        image_data = tf.io.gfile.GFile(path, "rb").read()
        predictions = np.squeeze(sess.run(softmax, {"DecodeJpeg/contents:0": image_data}))
        theirs.append(predictions.argsort()[::-1][0])
    tutorial_s = time.time() - t
    sess.close()
    return {"images": len(files), "batch": batch, "predict_img_s": round(len(files) / ours_s, 1),
            "tutorial_img_s": round(len(files) / tutorial_s, 1), "predict_load_s": round(load_predict, 2),
            "tutorial_load_s": round(load_tutorial, 2),
            "same_top1": int(sum(int(a) == int(b) for a, b in zip(ours, theirs)))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--images", type=int, default=160, help="images for the inference part")
    args = ap.parse_args()
    from odrun.tasks.classify import convert, synth
    with scratch("classify") as tmp:
        images = os.path.join(tmp, "images")
        synth.generate(images, per_class=args.per_class, size=args.size + 32, seed=0)
        data_dir = os.path.join(tmp, "data")
        convert.convert(images, data_dir, progress=False)
        files = sorted(glob.glob(os.path.join(images, "*", "*.jpg")))[:args.images]
        s = _settings(data_dir, os.path.join(tmp, "run"), args.size, args.alpha, args.batch, 1)
        head, clf = head_epochs(s, files)
        s["pretrained"] = os.path.join(tmp, "hand_made_no_top.h5")
        clf.base.save_weights(s["pretrained"])
        # 10 epochs: cached = compute the cache once + 10 cheap epochs; uncached = 10 base-every-step epochs
        head["ten_epochs_cached_s"] = round(head["cache_compute_s"] + 10 * head["epoch_cached_s"], 2)
        head["ten_epochs_recompute_s"] = round(10 * head["epoch_recompute_s"], 2)
        inf = inference(s, files, args.batch)
    result = {"model": "mobilenet_v2 alpha {} at {} px (hand-made base)".format(args.alpha, args.size),
              "head": head, "inference": inf}
    report("classify", result, [
        ratio("head epoch: bottleneck cache vs base every step", head["epoch_recompute_s"] / head["epoch_cached_s"], 10),
        ratio("10 head epochs incl. computing the cache", head["ten_epochs_recompute_s"] / head["ten_epochs_cached_s"]),
        ratio("odrun predict img/s vs tutorial's sess.run per image", inf["predict_img_s"] / inf["tutorial_img_s"], 5),
    ])


if __name__ == "__main__":
    main()
