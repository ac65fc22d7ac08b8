"""Real distributed training on the real TF2 OD API (TF 2.15 CPU), no mocks:

- MirroredStrategy over 2 logical CPU devices (ODRUN_CPU_REPLICAS=2 -> tf.config.set_logical_device_configuration)
  vs one device, same global batch;
- a real one-node Slurm (tests/slurm.py: munged + slurmctld + slurmd) running `provision submit --no-container`
  -> sbatch -> `srun --kill-on-bad-exit=1` -> 2 odrun workers (MultiWorkerMirroredStrategy, gRPC on 127.0.0.1
  ports that Slurm reserved), vs 1 worker with the same global batch (2 workers x b vs 1 x 2b);
- one worker SIGKILLed after the chief's first checkpoint: the job FAILS (not hangs), `--resume` finishes it.

Comparable runs: ODRUN_RANDOM_SEED fixes the initial weights (built eagerly, odrun/tasks/detect/distribute.py);
`train_input_reader.shuffle: false` fixes the input order (the OD API's reader interleaves its files with
`sloppy=shuffle`, i.e. in a nondeterministic order when shuffling); `freeze_batchnorm` keeps batch-norm
statistics out of it (per-replica batch statistics differ from whole-batch ones by design). With 2 record
files, 2 replicas/workers x 2 examples see the same 4 examples per step as 1 device x 4. Tolerances,
measured on this machine (docs/measured-here.md): the final checkpoints' weights agree to 1e-4 (relative
L1; one device against itself: 1.8e-6, against 2 replicas: 1.7e-6); the total loss to 3 % (SSD normalises
its losses by the matched anchors PER REPLICA, so the mean over replicas differs slightly from one device's
ratio: measured 0.4-0.6 %).
"""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import bin_path, have_module, require, run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slurm, pytest.mark.slow, pytest.mark.long]  # 4-9 min (real Slurm, 2 workers)

STEPS, BATCH = 3, 4
COMMON = ["--steps", str(STEPS), "--batch", str(BATCH), "--image-size", "96",
          "--set", "model.ssd.freeze_batchnorm=true", "--set", "train_input_reader.shuffle=false", "--json"]
SEED = {"ODRUN_RANDOM_SEED": "7"}
REG_TOL, TOTAL_TOL, WEIGHT_TOL = 1e-4, 0.03, 1e-4


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def weight_diff(run_a, run_b, step=STEPS):
    """Relative L1 distance between the model weights of two runs' checkpoints at `step`."""
    import numpy as np
    import tensorflow as tf

    def weights(run):
        prefix = str(run / "ckpt-{}".format(step))
        reader = tf.train.load_checkpoint(prefix)
        return {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(prefix)
                if n.startswith("model/") and "OPTIMIZER_SLOT" not in n}

    a, b = weights(run_a), weights(run_b)
    assert a.keys() == b.keys() and len(a) > 100
    return sum(float(np.abs(a[k] - b[k]).sum()) for k in a) / sum(float(np.abs(b[k]).sum()) for k in a)


def worker_summary(log):
    """The JSON summary a worker printed (its log also holds TensorFlow's stderr)."""
    text = log.read_text(errors="replace")
    start = text.find('{\n  "api"')
    assert start >= 0, text[-3000:]
    return json.JSONDecoder().raw_decode(text[start:])[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")
    from odrun.tasks.detect import synth
    root = tmp_path_factory.mktemp("mw")
    synth.generate(str(root / "images"), count=16, seed=1)
    # the OD API shards the input by FILE across workers: one file per worker
    run_cli("odrun", "convert", root / "images", "--out", root / "data", "--shards", "2", check=0)
    return root


@pytest.fixture(scope="module")
def single(data):
    """1 worker, 1 device, batch 2b: the reference."""
    proc = run_cli("odrun", "train", "--data", data / "data", "--workdir", data / "single", *COMMON, check=0,
                   env=dict(os.environ, **SEED))
    return json.loads(proc.stdout)


def test_mirrored_two_cpu_devices_matches_one_device(data, single):
    proc = run_cli("odrun", "train", "--data", data / "data", "--workdir", data / "mirrored", *COMMON, check=0,
                   env=dict(os.environ, ODRUN_CPU_REPLICAS="2", **SEED))
    out = json.loads(proc.stdout)
    d = out["distribution"]
    assert (d["strategy"], d["replicas"], d["global_batch"], d["per_replica_batch"]) == ("MirroredStrategy", 2, 4, 2)
    assert d["cross_device_ops"] == "reduce-to-one" and "not scaled" in d["learning_rate"]
    assert out["end_step"] == single["end_step"] == STEPS
    a, b = out["losses"], single["losses"]
    assert rel(a["Loss/regularization_loss"], b["Loss/regularization_loss"]) < REG_TOL, (a, b)
    assert rel(a["Loss/total_loss"], b["Loss/total_loss"]) < TOTAL_TOL, (a, b)
    assert weight_diff(data / "mirrored", data / "single") < WEIGHT_TOL


@pytest.fixture(scope="module")
def cluster(data):
    from slurm import slurm_cluster
    with slurm_cluster(data / "slurm") as sl:
        yield sl


def submit(cluster, data, run, *train, tmp, wait=True):
    env = dict(cluster.env, TMPDIR=str(tmp), **SEED)
    tmp.mkdir(exist_ok=True)
    cmd = [bin_path("provision"), "submit", "--no-container", "--tasks-per-node", "2", "--json", "--wait"]
    cmd += ["--", "train", "--workdir", str(data / run)] + list(train)
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_slurm_two_workers_track_one_worker_with_twice_the_batch(cluster, data, single):
    tmp = data / "tmp-2w"
    proc = submit(cluster, data, "two", "--data", str(data / "data"), *COMMON, tmp=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr + cluster.log_tail()
    job = json.loads(proc.stdout)
    assert job["state"] == "COMPLETED"
    logs = data / "two" / "slurm"
    chief, worker = (worker_summary(logs / "worker-{}-{}.log".format(job["job_id"], t)) for t in (0, 1))
    # both workers ran the same exact steps, in one MultiWorkerMirroredStrategy of 2 replicas
    assert chief["end_step"] == worker["end_step"] == STEPS and chief["start_step"] == worker["start_step"] == 0
    for s, task in ((chief, "worker:0"), (worker, "worker:1")):
        d = s["distribution"]
        assert (d["strategy"], d["workers"], d["replicas"], d["task"], d["source"]) == (
            "MultiWorkerMirroredStrategy", 2, 2, task, "slurm")
        assert all(h.startswith(cluster.host + ":") for h in d["cluster"]["worker"])
    # one checkpoint set, the chief's; the other worker wrote only into its temp dir, removed again
    run = data / "two"
    assert sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-{}.data-00000-of-00001".format(STEPS),
                                                          "ckpt-{}.index".format(STEPS)]
    assert chief["checkpoints"] == [str(run / "ckpt-{}".format(STEPS))] and worker["checkpoints"] == []
    assert json.loads((run / "train.json").read_text())["distribution"]["task"] == "worker:0"
    assert list(tmp.iterdir()) == []
    a, b = chief["losses"], single["losses"]
    assert a == worker["losses"]  # all-reduced: the same numbers on every worker
    assert rel(a["Loss/regularization_loss"], b["Loss/regularization_loss"]) < REG_TOL, (a, b)
    assert rel(a["Loss/total_loss"], b["Loss/total_loss"]) < TOTAL_TOL, (a, b)
    assert weight_diff(data / "two", data / "single") < WEIGHT_TOL
    status = run_cli("provision", "submit", "--status", job["job_id"], "--json", env=cluster.env, check=0)
    assert json.loads(status.stdout)["state"] == "COMPLETED"


def _worker_pid(task, run):
    """pid of the odrun process of Slurm task `task` training into `run` (read from /proc)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            environ = open("/proc/{}/environ".format(pid), "rb").read().split(b"\0")
            cmdline = open("/proc/{}/cmdline".format(pid), "rb").read().split(b"\0")
        except OSError:
            continue
        if ("SLURM_PROCID={}".format(task).encode() in environ and str(run).encode() in cmdline
                and any(c.endswith(b"odrun") for c in cmdline)):
            return int(pid)
    return None


def test_killed_worker_fails_the_job_and_resume_completes_it(cluster, data):
    steps, every = 6, 2
    run = data / "killed"
    args = ["--data", str(data / "data"), "--steps", str(steps), "--checkpoint-every", str(every)] + COMMON[2:]
    proc = submit(cluster, data, "killed", *args, tmp=data / "tmp-k", wait=False)
    deadline, pid = time.time() + 900, None
    while time.time() < deadline and proc.poll() is None:
        if (run / "checkpoint").exists() and "ckpt-" in (run / "checkpoint").read_text():
            pid = _worker_pid(1, run)
            if pid:
                os.kill(pid, signal.SIGKILL)
                break
        time.sleep(0.2)
    out, err = proc.communicate(timeout=600)
    assert pid, "worker 1 never found after the first checkpoint:\n" + out + err + cluster.log_tail()
    assert proc.returncode == 1, out + err
    job = json.loads(out)
    assert job["state"] == "FAILED"  # srun --kill-on-bad-exit ended the chief too: no hang
    status = run_cli("provision", "submit", "--status", job["job_id"], env=cluster.env, check=1)
    assert "FAILED" in status.stdout
    kept = (run / "checkpoint").read_text()
    done = submit(cluster, data, "killed", "--resume", "--json", tmp=data / "tmp-r")
    assert done.returncode == 0, done.stdout + done.stderr + cluster.log_tail()
    job2 = json.loads(done.stdout)
    chief, worker = (worker_summary(run / "slurm" / "worker-{}-{}.log".format(job2["job_id"], t)) for t in (0, 1))
    assert chief["start_step"] == worker["start_step"] >= every  # from the chief's last checkpoint
    assert 'model_checkpoint_path: "ckpt-{}"'.format(chief["start_step"]) in kept
    assert chief["end_step"] == worker["end_step"] == steps
    assert (run / "ckpt-{}.index".format(steps)).exists()
    assert list((data / "tmp-r").iterdir()) == []
