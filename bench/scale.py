"""bench/scale.py: what distributed `odrun train` costs per step, and (on GPUs) how well it scales.

    .venv/bin/python bench/scale.py [--steps 30] [--batch 8]              # CPU: 2 workers vs 1
    .venv/bin/python bench/scale.py --gpus 4 [--per-gpu-batch 16]         # GPU machine: 1 GPU vs N GPUs

CPU mode (this machine: 2 cores, so no speed-up is possible; it measures correctness + overhead):
  A) 1 worker, batch B                      (odrun train)
  B) 2 workers, global batch B (B/2 each)   (two odrun train processes, MultiWorkerMirroredStrategy,
                                             TF_CONFIG on 127.0.0.1 ports: the path a Slurm step takes)
  Reported: steady-state steps/s (median per-step rate, first traced step excluded), per-step overhead
  of B over A in ms, and |total loss B - A| / A at the last step (same initial weights: ODRUN_RANDOM_SEED).
GPU mode: A) --gpus 1 with batch b, B) --gpus N with batch N*b (MirroredStrategy, NCCL by default;
  --cross-device-ops to compare). Scaling efficiency = examples/s of B / (N x examples/s of A)
  = steps/s(B) / steps/s(A) at equal per-GPU batch; 1.0 is linear.
Everything runs on one synthetic dataset (2 record shards) in a scratch dir removed at the end.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# comparable losses: same batch-norm behaviour and a fixed input order (see tests/test_multiworker.py)
COMMON_SET = ["--set", "model.ssd.freeze_batchnorm=true", "--set", "train_input_reader.shuffle=false"]


def odrun():
    return os.path.join(os.path.dirname(sys.executable), "odrun")


def train_cmd(data, run, steps, batch, extra=()):
    return [odrun(), "train", "--data", data, "--workdir", run, "--steps", str(steps), "--batch", str(batch),
            "--image-size", "160", "--checkpoint-every", str(steps), "--json"] + COMMON_SET + list(extra)


def one(cmd, env=None):
    t = time.time()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    doc = json.loads(out.stdout)
    doc["wall_seconds"] = round(time.time() - t, 1)
    return doc


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def workers(cmd, n, env):
    """n odrun processes of one MultiWorkerMirroredStrategy cluster; returns the chief's summary."""
    hosts = ["127.0.0.1:{}".format(p) for p in free_ports(n)]
    procs = []
    t = time.time()
    for i in range(n):
        conf = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      env=dict(env, TF_CONFIG=json.dumps(conf))))
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a worker failed: exit codes {}".format([p.returncode for p in procs]))
    docs = [json.loads(o) for o in outs]
    assert len({d["end_step"] for d in docs}) == 1, "workers ended on different steps"
    docs[0]["wall_seconds"] = round(time.time() - t, 1)
    return docs[0]


def row(doc):
    return {"steps_per_sec_p50": doc["steps_per_sec_p50"], "wall_seconds": doc["wall_seconds"],
            "total_loss": round(doc["losses"]["Loss/total_loss"], 5), "distribution": doc["distribution"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="steps per run (default %(default)s)")
    ap.add_argument("--batch", type=int, default=8, help="CPU mode: global batch B (default %(default)s)")
    ap.add_argument("--gpus", type=int, default=0, help="GPU mode: compare 1 GPU with this many")
    ap.add_argument("--per-gpu-batch", type=int, default=16, help="GPU mode: batch per GPU (default %(default)s)")
    ap.add_argument("--cross-device-ops", default=None, help="GPU mode: all-reduce (odrun train --cross-device-ops)")
    a = ap.parse_args()
    from common import ratio, report, scratch
    from odrun.tasks.detect import synth
    env = dict(os.environ, ODRUN_RANDOM_SEED="7")
    with scratch("scale") as tmp:
        synth.generate(os.path.join(tmp, "images"), count=64, seed=3)
        data = os.path.join(tmp, "data")
        subprocess.run([odrun(), "convert", os.path.join(tmp, "images"), "--out", data, "--shards", "2", "--json"],
                       check=True, stdout=subprocess.DEVNULL)
        if a.gpus:
            extra = ["--cross-device-ops", a.cross_device_ops] if a.cross_device_ops else []
            base = one(train_cmd(data, os.path.join(tmp, "g1"), a.steps, a.per_gpu_batch, ["--gpus", "1"]), env)
            many = one(train_cmd(data, os.path.join(tmp, "gN"), a.steps, a.per_gpu_batch * a.gpus,
                                 ["--gpus", str(a.gpus)] + extra), env)
            eff = many["steps_per_sec_p50"] / base["steps_per_sec_p50"]
            result = {"mode": "gpus", "gpus": a.gpus, "per_gpu_batch": a.per_gpu_batch, "one_gpu": row(base),
                      "n_gpus": row(many), "scaling_efficiency": round(eff, 3)}
            return report("scale", result, [ratio("{} GPUs: examples/s / ({} x 1 GPU)".format(a.gpus, a.gpus), eff,
                                                  goal=0.8)])
        base = one(train_cmd(data, os.path.join(tmp, "w1"), a.steps, a.batch), env)
        two = workers(train_cmd(data, os.path.join(tmp, "w2"), a.steps, a.batch), 2, env)
        r1, r2 = base["steps_per_sec_p50"], two["steps_per_sec_p50"]
        l1, l2 = base["losses"]["Loss/total_loss"], two["losses"]["Loss/total_loss"]
        result = {"mode": "cpu-workers", "cores": os.cpu_count(), "global_batch": a.batch, "steps": a.steps,
                  "one_worker": row(base), "two_workers": row(two),
                  "per_step_overhead_ms": round(1000.0 * (1.0 / r2 - 1.0 / r1), 1),
                  "loss_rel_diff": round(abs(l2 - l1) / l1, 4)}
        return report("scale", result, [
            ratio("2 workers x B/2 steps/s / 1 worker x B (same global batch, 2 cores shared)", r2 / r1),
            ratio("|loss 2 workers - 1 worker| / loss 1 worker", abs(l2 - l1) / l1, goal=0.03,
                  higher_is_better=False)])


if __name__ == "__main__":
    main()
