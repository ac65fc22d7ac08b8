"""bench/train.py: steps/s of `odrun train` vs the OD API's own train loop, same config.

    .venv/bin/python bench/train.py [--steps 150] [--repeat 3] [--workdir DIR]

Without --workdir everything goes to a temp dir removed at the end (bench/common.py scratch).

Each variant runs in its own process on the same synthetic dataset and the same
pipeline.config (the one odrun writes). Reported: steady-state steps/s = median over
per-step times, so the first step (graph tracing, ~30-40 s) does not count.
- odrun:        `odrun train` (per-step tf.function + progress bar + loss callback)
- direct-1:     model_lib_v2.train_loop(num_steps_per_iteration=1) (exact steps, as odrun)
- direct-100:   model_lib_v2.train_loop() defaults, as model_main_tf2 (100 steps per call;
                at least 300 steps so the median of its per-call rates excludes the traced first call)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def direct(config, model_dir, steps, per_iter):
    from odrun.tasks.detect.backends import tf2
    tf2.prepare()
    from object_detection import model_lib_v2
    got = {}

    def exporter(metrics, _precision):
        got.update({k: float(v) for k, v in metrics.items()})

    t = time.time()
    model_lib_v2.train_loop(config, model_dir, train_steps=steps, checkpoint_every_n=steps,
                            num_steps_per_iteration=per_iter, performance_summary_exporter=exporter)
    got["seconds"] = time.time() - t
    # per_iter steps per loop iteration: p50 is per iteration rate already scaled by the OD API
    print(json.dumps(got))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=150, help="training steps per run (default %(default)s)")
    ap.add_argument("--workdir", default=None, help="keep the runs here (default: a temp dir, removed)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of odrun and direct-1, alternating")
    ap.add_argument("--_direct", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._direct:
        return direct(a._direct[0], a._direct[1], int(a._direct[2]), int(a._direct[3]))
    from common import scratch
    if a.workdir:
        import shutil
        shutil.rmtree(a.workdir, ignore_errors=True)
        return bench(a)
    with scratch("train") as tmp:
        a.workdir = tmp
        return bench(a)


def bench(a):
    from odrun.tasks.detect import synth
    odrun = os.path.join(os.path.dirname(sys.executable), "odrun")
    synth.generate(os.path.join(a.workdir, "images"), count=60, seed=3)
    subprocess.run([odrun, "convert", os.path.join(a.workdir, "images"), "--out",
                    os.path.join(a.workdir, "data"), "--json"], check=True, stdout=subprocess.DEVNULL)
    runs = {"odrun": [], "direct-1": [], "direct-100": []}
    config = os.path.join(a.workdir, "odrun-0", "pipeline.config")
    for r in range(a.repeat):  # alternate the variants: the shared machine's load drifts
        order = ["odrun", "direct-1"] if r % 2 == 0 else ["direct-1", "odrun"]
        if r == 0:
            order.append("direct-100")
        for name in order:
            t = time.time()
            if name == "odrun":
                out = subprocess.run([odrun, "train", "--data", os.path.join(a.workdir, "data"), "--workdir",
                                      os.path.join(a.workdir, "odrun-{}".format(r)), "--steps", str(a.steps),
                                      "--checkpoint-every", str(a.steps), "--json"],
                                     check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                o = json.loads(out.stdout)
                rate = o["steps_per_sec_p50"]
            else:
                per_iter = 1 if name == "direct-1" else 100
                steps = a.steps if per_iter == 1 else max(300, a.steps // 100 * 100)
                out = subprocess.run([sys.executable, __file__, "--_direct", config,
                                      os.path.join(a.workdir, "{}-{}".format(name, r)), str(steps), str(per_iter)],
                                     check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                rate = json.loads(out.stdout.decode().strip().splitlines()[-1])["steps_per_sec_p50"]
            runs[name].append({"steps_per_sec_p50": round(rate, 3), "seconds": round(time.time() - t, 1)})
    med = {k: statistics.median(x["steps_per_sec_p50"] for x in v) for k, v in runs.items() if v}
    results = {"runs": runs, "median_steps_per_sec": med,
               "odrun_overhead_vs_direct_1_pct": round(100.0 * (med["direct-1"] - med["odrun"]) / med["direct-1"], 1)}
    from common import ratio, report
    report("train", results, [ratio("odrun train steps/s / model_lib_v2 train_loop (1 step per call)",
                                    med["odrun"] / med["direct-1"], goal=0.95),
                              ratio("odrun train steps/s / model_main_tf2 defaults (100 steps per call)",
                                    med["odrun"] / med["direct-100"])])


if __name__ == "__main__":
    main()
