"""bench/detect.py: images/s of `odrun detect`'s batched inference vs the tutorials' detection scripts (001/003),
same exported model (an `odrun export` directory), same images, one run.

    .venv/bin/python bench/detect.py --model EXPORT_DIR [--n 200] [--session-images 20]

- infer_batched:     the detector of `odrun detect` (model loaded once), batches of --batch
- infer_one_per_call: same loaded model, one image per call
- odrun_loop vs tutorial_loop: decode + inference as each loop is written: odrun decodes with
                    np.asarray and calls in batches; tutorials 001/003 convert with
                    np.array(image.getdata()) and call once per image. No drawing on either side.
- session-per-image: 003's script: the graph frozen and imported once, then a new
                    tf.Session per image (graph optimisation on every session); timed on
                    --session-images images because it is slow.
Also `odrun detect` end to end (decode + inference + annotated PNG + JSON/CSV).
Model load time is reported separately and excluded from the rates.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="odrun export directory")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--session-images", type=int, default=20)
    a = ap.parse_args()
    import numpy as np
    from PIL import Image
    from odrun.tasks.detect import detect, synth
    from odrun.tasks.detect.backends import tf2
    tmp = tempfile.mkdtemp(prefix="odstack-bench-detect-")
    paths = synth.generate(os.path.join(tmp, "images"), count=a.n, seed=7)
    images = [detect.load_image(p) for p in paths]
    res = {"images": a.n, "image_size": list(images[0].shape)}

    t = time.time()
    detector = tf2.load_detector(a.model)
    res["load_seconds"] = round(time.time() - t, 1)
    detector(images[:a.batch])  # warm-up: first call traces
    detector(images[:1])

    # inference only (images already decoded)
    t = time.time()
    for i in range(0, a.n, a.batch):
        detector(images[i:i + a.batch])
    res["infer_batched_img_per_s"] = round(a.n / (time.time() - t), 2)
    t = time.time()
    for im in images:
        detector([im])
    res["infer_one_per_call_img_per_s"] = round(a.n / (time.time() - t), 2)

    # loops as written: decode + inference (no drawing on either side)
    t = time.time()
    for i in range(0, a.n, a.batch):
        detector([detect.load_image(p) for p in paths[i:i + a.batch]])
    res["odrun_loop_img_per_s"] = round(a.n / (time.time() - t), 2)
    t = time.time()
    for p in paths:  # 001/003: PIL -> np.array(image.getdata()).reshape -> one call per image
        image = Image.open(p)
        w, h = image.size
        detector([np.array(image.getdata()).reshape((h, w, 3)).astype(np.uint8)])
    res["tutorial_loop_img_per_s"] = round(a.n / (time.time() - t), 2)

    res["session_per_image_img_per_s"] = session_per_image(a.model, images[:a.session_images])

    t = time.time()
    detect.detect(a.model, [os.path.join(tmp, "images")], os.path.join(tmp, "out"), batch=a.batch, progress=False)
    res["odrun_detect_end_to_end_img_per_s_incl_load"] = round(a.n / (time.time() - t), 2)
    res["speedup_infer_batched_vs_one_per_call"] = round(
        res["infer_batched_img_per_s"] / res["infer_one_per_call_img_per_s"], 2)
    res["speedup_odrun_loop_vs_tutorial_loop"] = round(res["odrun_loop_img_per_s"] / res["tutorial_loop_img_per_s"], 2)
    res["speedup_vs_session_per_image"] = round(res["infer_batched_img_per_s"] / res["session_per_image_img_per_s"], 2)
    print(json.dumps(res, indent=2))


def session_per_image(model_dir, images):
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    model = tf.saved_model.load(os.path.join(model_dir, "saved_model"))
    fn = model.signatures["serving_default"]
    frozen = convert_variables_to_constants_v2(fn)
    graph_def = frozen.graph.as_graph_def()
    in_name = frozen.inputs[0].name
    out_names = [t.name for t in frozen.outputs]
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    t = time.time()
    for im in images:
        with tf.compat.v1.Session(graph=graph) as sess:  # 003: a session per image
            sess.run(out_names, feed_dict={in_name: np.expand_dims(im, 0).astype(np.float32)})
    return round(len(images) / (time.time() - t), 2)


if __name__ == "__main__":
    main()
