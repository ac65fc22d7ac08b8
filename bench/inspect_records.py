"""Benchmark `odrun inspect` on 2,000 records against reading the same records with tf.data alone.

Data: bench/convert.py's 2,000 generated 640x480 photo-like JPEGs (cached in ~/.cache/odstack/
bench-convert/), converted once by `odrun convert` into train.record + test.record (80/20) in the
scratch folder. Each of these is a fresh process, timed whole (Python and TensorFlow start-up included),
once per round (--repeat rounds; the ratio is taken within each round, so both sides saw the same load;
medians reported):

  * tf.data alone: TFRecordDataset -> parse_single_example (the OD API's keys) -> decode_image, parallel
    map: the least any full check must do (goal: `odrun inspect` >= 0.5x its speed);
  * tf.data + the OD API's TfExampleDecoder: what training's input pipeline reads;
  * tf.data raw: only iterate the records (no parsing, no decoding);
  * `odrun inspect DATA --json` (every check, every image decoded, report.png) and `--no-decode`;
  * `odrun train`'s pre-check (odrun.convert.inspect.before_training: class ids and boxes, no image bytes read),
    timed inside its process.

    .venv/bin/python bench/inspect_records.py [--repeat 3] [--json]
"""
import importlib.util
import os
import sys

# This file is named like the standard library's `inspect`, and Python puts the script's folder first
# on sys.path: take it off before anything imports `inspect`, and load our neighbours by path.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402


def _load(name, as_name):
    spec = importlib.util.spec_from_file_location(as_name, os.path.join(HERE, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[as_name] = module
    spec.loader.exec_module(module)
    return module


common = _load("common", "common")
convert_bench = _load("convert", "bench_convert")  # its cached dataset

PY = sys.executable
ODRUN = os.path.join(os.path.dirname(PY), "odrun")
N = 2000

TF_DATA = r'''
import sys, tensorflow as tf
keys = {"image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32), "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
        "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32), "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
        "image/object/class/label": tf.io.VarLenFeature(tf.int64), "image/object/class/text": tf.io.VarLenFeature(tf.string)}
def one(s):
    f = tf.io.parse_single_example(s, keys)
    return tf.shape(tf.io.decode_image(f["image/encoded"], channels=3, expand_animations=False))[:2]
n = sum(1 for _ in tf.data.TFRecordDataset(sys.argv[1:]).map(one, num_parallel_calls=tf.data.AUTOTUNE).prefetch(8))
print(n)
'''

OD_API = r'''
import sys
from odrun.tasks.detect.backends import tf2
tf2.prepare()
import tensorflow as tf
from object_detection.data_decoders import tf_example_decoder
d = tf_example_decoder.TfExampleDecoder()
ds = tf.data.TFRecordDataset(sys.argv[1:]).map(lambda s: tf.shape(d.decode(s)["image"])[:2],
                                               num_parallel_calls=tf.data.AUTOTUNE).prefetch(8)
print(sum(1 for _ in ds))
'''

PRECHECK = r'''
import sys, time
t = time.perf_counter()
from odrun.convert import inspect
inspect.before_training(sys.argv[2:], sys.argv[1], "bench")
print(round(time.perf_counter() - t, 3))
'''

RAW = r'''
import sys, tensorflow as tf
print(sum(1 for _ in tf.data.TFRecordDataset(sys.argv[1:])))
'''


def timed(cmd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t
    if proc.returncode not in (0, 1):  # inspect's 1 = findings (the 96 px warnings are not errors)
        raise SystemExit("{} failed:\n{}".format(" ".join(cmd[:3]), proc.stderr.decode(errors="replace")[-3000:]))
    return dt


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3, help="rounds (every command once each)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    src = convert_bench.dataset(N)
    with common.scratch("inspect") as tmp:
        data = os.path.join(tmp, "data")
        if not os.path.exists(os.path.join(data, "train.record")):
            subprocess.run([ODRUN, "convert", src, "--out", data, "--json"], check=True, stdout=subprocess.DEVNULL)
        records = [os.path.join(data, f) for f in ("train.record", "test.record")]
        for p in records:  # warm the page cache
            with open(p, "rb") as f:
                while f.read(1 << 24):
                    pass
        cmds = {"tf_data_decode": [PY, "-c", TF_DATA] + records,
                "odrun_inspect": [ODRUN, "inspect", data, "--json"],
                "tf_data_odapi_decoder": [PY, "-c", OD_API] + records,
                "tf_data_raw": [PY, "-c", RAW] + records,
                "odrun_inspect_no_decode": [ODRUN, "inspect", data, "--json", "--no-decode"]}
        rounds = []
        for _ in range(args.repeat):  # each round runs every command once: a ratio compares one round's
            rounds.append({k: timed(c) for k, c in cmds.items()})  # (the same load), medians over rounds
            rounds[-1]["load_1min"] = os.getloadavg()[0]
        t = {k: statistics.median(r[k] for r in rounds) for k in cmds}
        per_round = [r["tf_data_decode"] / r["odrun_inspect"] for r in rounds]
        size = sum(os.path.getsize(p) for p in records)
        pre = subprocess.run([PY, "-c", PRECHECK, os.path.join(data, "label_map.pbtxt")] + records, check=True,
                             stdout=subprocess.PIPE, cwd=os.path.dirname(HERE))
        t["train_precheck_in_process"] = float(pre.stdout.decode().split()[-1])
    result = {"records": N, "mb": round(size / 1e6, 1), "seconds (medians)": {k: round(v, 2) for k, v in t.items()},
              "rounds": [{k: round(v, 2) for k, v in r.items()} for r in rounds],
              "inspect_vs_tf_data_per_round": [round(x, 2) for x in per_round], "cores": os.cpu_count()}
    common.report("inspect", result, [
        common.ratio("odrun inspect vs tf.data parse + decode_image (whole processes; median of the rounds' ratios)",
                     statistics.median(per_round), 0.5),
        common.ratio("the same, worst round", min(per_round), 0.5),
        common.ratio("odrun inspect vs tf.data + the OD API's TfExampleDecoder", t["tf_data_odapi_decoder"] / t["odrun_inspect"]),
        common.ratio("odrun inspect vs tf.data raw read (no decode)", t["tf_data_raw"] / t["odrun_inspect"]),
        common.ratio("odrun inspect --no-decode vs tf.data raw read", t["tf_data_raw"] / t["odrun_inspect_no_decode"])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
