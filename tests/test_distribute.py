"""odrun.tasks.detect.distribute (cluster specs from Slurm / TF_CONFIG) and `provision submit` rendering (sbatch script,
Kubernetes manifests validated offline against the Kubernetes JSON schema). No training here: the real
multi-device / multi-worker runs are in tests/test_multiworker.py."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, have_module, require, run_cli

SLURM = FIXTURES / "slurm"


def recorded_tasks():
    """The two tasks' SLURM_* environments recorded on the test Slurm (fixtures/slurm/SOURCE.md)."""
    tasks, cur = [], None
    for line in (SLURM / "slurm-step-env.txt").read_text().splitlines():
        if line.startswith("== task"):
            cur = {}
            tasks.append(cur)
        elif "=" in line and cur is not None:
            k, v = line.split("=", 1)
            cur[k] = v
    return tasks


def test_slurm_cluster_from_a_recorded_step():
    from odrun.tasks.detect import distribute

    plans = [distribute.plan(env=env) for env in recorded_tasks()]
    assert [p.kind for p in plans] == ["multi_worker", "multi_worker"]
    # both tasks agree on the cluster; ports from SLURM_STEP_RESV_PORTS, index from node + local id
    assert plans[0].cluster == plans[1].cluster == {"worker": ["vm:24060", "vm:24061"]}
    assert [p.task_index for p in plans] == [0, 1]
    assert [p.is_chief for p in plans] == [True, False]


def test_slurm_two_cpu_tasks_per_node_where_slurm_cluster_resolver_fails(monkeypatch):
    """SlurmClusterResolver on the same step without GPUs: 0 GPUs per task -> it cannot build the spec."""
    require(have_module("tensorflow"), "TensorFlow not installed")
    from tensorflow.python.distribute.cluster_resolver.slurm_cluster_resolver import SlurmClusterResolver

    env = recorded_tasks()[1]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises((RuntimeError, ValueError)):
        SlurmClusterResolver(gpus_per_node=0).cluster_spec()
    from odrun.tasks.detect import distribute
    assert distribute.plan(env=env).cluster == {"worker": ["vm:24060", "vm:24061"]}


def test_slurm_multi_node_block_and_cyclic():
    from odrun.tasks.detect import distribute

    base = {"SLURM_STEP_NODELIST": "gpu[01-02],big7", "SLURM_STEP_TASKS_PER_NODE": "2(x2),1",
            "SLURM_STEP_NUM_TASKS": "5", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "3"}
    p = distribute.plan(env=dict(base, SLURMD_NODENAME="gpu02", SLURM_LOCALID="1", ODRUN_PORT_BASE="31000"))
    assert p.cluster["worker"] == ["gpu01:31000", "gpu01:31001", "gpu02:31000", "gpu02:31001", "big7:31000"]
    assert p.task_index == 3 and not p.is_chief
    # without reserved ports or ODRUN_PORT_BASE: derived from the job id, the same on every task
    q = distribute.plan(env=dict(base, SLURMD_NODENAME="big7", SLURM_LOCALID="0"))
    assert q.task_index == 4 and q.cluster["worker"][4] == "big7:{}".format(20000 + 4242 * 16 % 40000)


def test_tf_config_plans_and_bad_ones():
    from odcore.errors import UserError
    from odrun.tasks.detect import distribute

    conf = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 1}}
    p = distribute.plan(env={"TF_CONFIG": json.dumps(conf)})
    assert p.kind == "multi_worker" and p.num_workers == 3 and not p.is_chief
    for bad in ("{not json", json.dumps({"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}),
                json.dumps({"cluster": {"worker": ["b:1"]}, "task": {"type": "worker", "index": 5}})):
        with pytest.raises(UserError) as err:
            distribute.plan(env={"TF_CONFIG": bad})
        assert err.value.where == "$TF_CONFIG"
    with pytest.raises(UserError):
        distribute.plan(env={"TF_CONFIG": json.dumps(conf)}, cross_device_ops="nccl" if False else "hierarchical-copy")


def test_one_machine_plans():
    from odcore.errors import UserError
    from odrun.tasks.detect import distribute

    assert distribute.plan(env={}).kind == "single"
    p = distribute.plan(gpus=4, cross_device_ops="hierarchical-copy", env={})
    assert p.devices == ["/gpu:0", "/gpu:1", "/gpu:2", "/gpu:3"] and p.cross_device_ops == "hierarchical-copy"
    assert distribute.plan(env={"ODRUN_CPU_REPLICAS": "2"}).devices == ["/cpu:0", "/cpu:1"]
    with pytest.raises(UserError):
        distribute.plan(gpus=2, api="tf1", env={})
    with pytest.raises(UserError):
        distribute.plan(gpus=2, cross_device_ops="ring", env={})
    with pytest.raises(UserError) as err:
        distribute.check_batch(p, 6, 4, ["a"])
    assert "multiple of 4" in err.value.fix
    mw = distribute.plan(env={"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:1"]},
                                                       "task": {"type": "worker", "index": 0}})})
    with pytest.raises(UserError) as err:
        distribute.check_batch(mw, 4, 2, ["train.record"])
    assert "--shards 2" in err.value.fix


def test_gpus_flag_without_gpus_is_exit_2(tmp_path):
    require(have_module("tensorflow") and have_module("object_detection"), "TF + OD API not installed")
    from odrun.tasks.detect import synth
    synth.generate(str(tmp_path / "img"), count=4, seed=1)
    run_cli("odrun", "convert", tmp_path / "img", "--out", tmp_path / "data", check=0)
    proc = run_cli("odrun", "train", "--data", tmp_path / "data", "--workdir", tmp_path / "run", "--steps", "1",
                   "--batch", "2", "--gpus", "2", check=2, timeout=300)
    assert "--gpus 2 but TensorFlow sees 0 GPU(s)" in proc.stderr


# -- provision submit ------------------------------------------------------------------------------
TRAIN = ["--", "train", "--data", "/runs/data", "--workdir", "/runs/job1", "--steps", "100", "--batch", "16"]


def test_submit_dry_run_script(tmp_path):
    proc = run_cli("provision", "submit", "--dry-run", "--nodes", "2", "--gpus-per-node", "4", "--runs", tmp_path,
                   "--partition", "gpu", "--time", "02:00:00", *TRAIN, check=0)
    script = proc.stdout
    assert script.startswith("#!/bin/bash\n")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu", "#SBATCH --time=02:00:00",
                 "#SBATCH --output={}/job1/slurm/slurm-%j.out".format(tmp_path)):
        assert line + "\n" in script
    assert "srun --kill-on-bad-exit=1 --output={}/job1/slurm/worker-%j-%t.log".format(tmp_path) in script
    assert "run --image odstack:tf2-gpu --network host --gpus all" in script
    assert '--env SLURM_STEP_RESV_PORTS="$SLURM_STEP_RESV_PORTS"' in script
    assert not (tmp_path / "job1").exists()  # dry run writes nothing
    host = run_cli("provision", "submit", "--dry-run", "--no-container", "--", "train", "--workdir", tmp_path / "r",
                   check=0).stdout
    assert "odrun train --workdir {}".format(tmp_path / "r") in host and "provision run" not in host


def test_submit_without_runs_names_runs():
    """Issue #25: the missing --runs is the cause, not the /runs workdir it makes impossible."""
    proc = run_cli("provision", "submit", "--dry-run", *TRAIN, check=2)
    assert "error: --runs:" in proc.stderr and "--workdir must be under" not in proc.stderr


def test_submit_resolves_provision_on_the_node(tmp_path):
    """The script names `provision` (the node's PATH) or --provision PATH, never this host's venv; a node
    without it says so in the job log (exit 127)."""
    script = run_cli("provision", "submit", "--dry-run", "--runs", tmp_path, *TRAIN, check=0).stdout
    assert str(Path(sys.executable).parent) not in script and "exec provision run --image" in script
    check = [line for line in script.splitlines() if line.startswith("command -v ")]
    assert len(check) == 1
    proc = subprocess.run([shutil.which("bash"), "-c", check[0]], capture_output=True, text=True,
                          env=dict(os.environ, PATH=str(tmp_path)))
    assert proc.returncode == 127 and "not found on" in proc.stderr and "--provision PATH" in proc.stderr
    fake = tmp_path / "provision"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    proc = subprocess.run([shutil.which("bash"), "-c", check[0]], env=dict(os.environ, PATH=str(tmp_path)))
    assert proc.returncode == 0
    other = run_cli("provision", "submit", "--dry-run", "--runs", tmp_path, "--provision", "/opt/od stack/provision",
                    *TRAIN, check=0).stdout
    assert "exec '\"'\"'/opt/od stack/provision'\"'\"' run --image" in other


@pytest.mark.parametrize("args, where", [(["--", "convert", "x"], "provision submit"),
                                         (["--", "train", "--steps", "3"], "-- train"),
                                         (["--gpus-per-node", "3", "--tasks-per-node", "2", "--no-container",
                                           "--", "train", "--workdir", "r"], "--tasks-per-node"),
                                         (["--", "train", "--workdir", "/tmp/x"], "--workdir"),
                                         (["--status", "12;rm"], "--status")])
def test_submit_bad_input(args, where):
    proc = run_cli("provision", "submit", "--dry-run", *args, check=2)
    assert where in proc.stderr


def test_k8s_manifest_validates_against_the_kubernetes_schema():
    require(have_module("kubernetes_validate"), "kubernetes-validate not installed (pip install -e '.[dev]')")
    import kubernetes_validate

    proc = run_cli("provision", "submit", "--k8s", "--nodes", "2", "--gpus-per-node", "4", "--tasks-per-node", "2",
                   *TRAIN, check=0)
    docs = list(yaml.safe_load_all(proc.stdout))
    assert [d["kind"] for d in docs] == ["Service", "Job"]
    for doc in docs:  # strict: unknown fields are errors too; the schemas ship in the package (offline)
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    job = docs[1]["spec"]
    assert job["completionMode"] == "Indexed" and job["completions"] == job["parallelism"] == 4
    pod = job["template"]["spec"]
    assert pod["subdomain"] == docs[0]["metadata"]["name"] and docs[0]["spec"]["clusterIP"] == "None"
    [c] = pod["containers"]
    assert c["resources"]["limits"] == {"nvidia.com/gpu": 2}
    env = {e["name"]: e for e in c["env"]}
    assert "job-completion-index" in env["WORKER_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    # TF_CONFIG per pod: Kubernetes expands $(WORKER_INDEX); what odrun then parses
    tf_config = env["TF_CONFIG"]["value"].replace("$(WORKER_INDEX)", "3")
    from odrun.tasks.detect import distribute
    p = distribute.plan(env={"TF_CONFIG": tf_config})
    assert p.num_workers == 4 and p.task_index == 3
    assert p.cluster["worker"][3] == "odrun-train-3.odrun-train:2222"
    bad = dict(docs[1], spec=dict(job, completions="four", replicas=4))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)
