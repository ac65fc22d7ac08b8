"""bench/train.py: steps/s of `odrun train` vs the OD API's own train loop, same config.

    .venv/bin/python bench/train.py [--steps 200] [--workdir /tmp/odstack-bench-train]

Each variant runs in its own process on the same synthetic dataset and the same
pipeline.config (the one odrun writes). Reported: steady-state steps/s = median over
per-step times, so the first step (graph tracing, ~30-40 s) does not count.
- odrun:        `odrun train` (per-step tf.function + progress bar + loss callback)
- direct-1:     model_lib_v2.train_loop(num_steps_per_iteration=1) (exact steps, as odrun)
- direct-100:   model_lib_v2.train_loop() defaults, as model_main_tf2 (100 steps per call)
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def direct(config, model_dir, steps, per_iter):
    from odrun.backends import tf2
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
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--workdir", default="/tmp/odstack-bench-train")
    ap.add_argument("--_direct", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._direct:
        return direct(a._direct[0], a._direct[1], int(a._direct[2]), int(a._direct[3]))
    import shutil
    from odrun import synth
    shutil.rmtree(a.workdir, ignore_errors=True)
    odrun = os.path.join(os.path.dirname(sys.executable), "odrun")
    synth.generate(os.path.join(a.workdir, "images"), count=60, seed=3)
    subprocess.run([odrun, "convert", os.path.join(a.workdir, "images"), "--out",
                    os.path.join(a.workdir, "data"), "--json"], check=True, stdout=subprocess.DEVNULL)
    results = {}
    t = time.time()
    out = subprocess.run([odrun, "train", "--data", os.path.join(a.workdir, "data"), "--workdir",
                          os.path.join(a.workdir, "odrun"), "--steps", str(a.steps), "--checkpoint-every",
                          str(a.steps), "--json"], check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    o = json.loads(out.stdout)
    results["odrun"] = {"steps_per_sec_p50": o["steps_per_sec_p50"], "steps_per_sec": o["steps_per_sec"],
                        "seconds": round(time.time() - t, 1)}
    config = os.path.join(a.workdir, "odrun", "pipeline.config")
    for name, per_iter, steps in (("direct-1", 1, a.steps), ("direct-100", 100, max(100, a.steps // 100 * 100))):
        t = time.time()
        out = subprocess.run([sys.executable, __file__, "--_direct", config, os.path.join(a.workdir, name),
                              str(steps), str(per_iter)], check=True, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        d = json.loads(out.stdout.decode().strip().splitlines()[-1])
        results[name] = {"steps_per_sec_p50": round(d["steps_per_sec_p50"], 4),
                         "steps_per_sec": round(d["steps_per_sec"], 4), "seconds": round(time.time() - t, 1)}
    base = results["direct-1"]["steps_per_sec_p50"]
    results["odrun_overhead_vs_direct_1_pct"] = round(100.0 * (base - results["odrun"]["steps_per_sec_p50"]) / base, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
