"""bench/detect_runtimes.py: time to first detection and steady-state images/s of each runtime of
one export (`odrun export --format saved_model,frozen,onnx,tflite`), side by side in one run.

    .venv/bin/python bench/detect_runtimes.py --model EXPORT_DIR [--n 200]

- first detection: wall time of `odrun detect --model M ONE.jpg --runtime R --no-images` from the
  command's start to its exit (detections.json written), a fresh process each: Python start,
  imports (TensorFlow or not), model load, one inference, outputs.
- steady state: runtime.detect over the same --n images in this process after a warm-up
  (batches of 16; TFLite's graph is batch 1, so one by one).
Goal (issue 14): first detection <= 3 s with the ONNX/TFLite export on this CPU, vs the SavedModel.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import ratio, report, scratch  # noqa: E402

RUNTIMES = ("onnx", "tflite", "frozen", "saved_model")


def first_detection(model, image, runtime, out):
    odrun = os.path.join(os.path.dirname(sys.executable), "odrun")
    t = time.perf_counter()
    proc = subprocess.run([odrun, "detect", "--model", model, image, "--out", out, "--runtime", runtime,
                           "--no-images", "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0 or not os.path.exists(os.path.join(out, "detections.json")):
        raise SystemExit("{} failed: {}".format(runtime, proc.stderr[-2000:]))
    return round(wall, 2)


def steady(model, runtime, images, batch=16):
    from odrun import runtimes
    t = time.perf_counter()
    rt = runtimes.load(model, runtime)
    load_s = time.perf_counter() - t
    step = 1 if rt.max_batch == 1 else batch
    rt.detect(images[:step])
    t = time.perf_counter()
    for i in range(0, len(images), step):
        rt.detect(images[i:i + step])
    return round(load_s, 2), round(len(images) / (time.perf_counter() - t), 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="odrun export directory with all four forms (default: a tiny SSD built once, bench/_deploy_model.py)")
    ap.add_argument("--n", type=int, default=200, help="images for the steady-state rate (default 200)")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated (default all four)")
    a = ap.parse_args()
    if not a.model:
        from bench._deploy_model import export_dir
        a.model = export_dir()
    from odrun.tasks.detect import detect, synth
    names = [r for r in a.runtimes.split(",") if r]
    res = {"cpus": os.cpu_count(), "images": a.n}
    with scratch("detect_runtimes") as tmp:
        paths = synth.generate(os.path.join(tmp, "images"), count=a.n, seed=7)
        images = [detect.load_image(p) for p in paths]
        for r in names:
            first = first_detection(a.model, paths[0], r, tempfile.mkdtemp(dir=tmp))
            load_s, rate = steady(a.model, r, images)
            res[r] = {"first_detection_s": first, "load_s_in_process": load_s, "img_per_s": rate}
    ratios = []
    if "saved_model" in res:
        for r in ("onnx", "tflite", "frozen"):
            if r in res:
                ratios.append(ratio("detect: first detection, saved_model / " + r,
                                    res["saved_model"]["first_detection_s"] / res[r]["first_detection_s"]))
                ratios.append(ratio("detect: steady img/s, {} / saved_model".format(r),
                                    res[r]["img_per_s"] / res["saved_model"]["img_per_s"]))
    for r in ("onnx", "tflite"):
        if r in res:
            ratios.append(ratio("detect: {} first detection / 3 s goal".format(r),
                                res[r]["first_detection_s"] / 3.0, goal=1.0, higher_is_better=False))
    report("detect_runtimes", res, ratios)


if __name__ == "__main__":
    main()
