"""`provision submit [--nodes N] [--gpus-per-node G] ... -- train ARGS...`: odrun train on a Slurm cluster.

Writes an sbatch script (RUN_DIR/slurm/submit-*.sbatch) that starts one task per worker with
`srun --kill-on-bad-exit=1` (one failed worker ends the job, which then FAILS rather than hangs)
and submits it with `sbatch --parsable`. Each task runs `odrun train ARGS` (the host's venv with
--no-container, else the odstack image via `provision run --network host`); odrun builds the
multi-worker cluster from the Slurm step by itself (odrun/tasks/detect/distribute.py). Logs: RUN_DIR/slurm/.

    provision submit --nodes 2 --gpus-per-node 4 --image odstack:tf2-gpu --runs /shared/runs \\
        -- train --data /runs/data --workdir /runs/job1 --steps 20000 --batch 64
    provision submit --dry-run ...          # print the script, submit nothing
    provision submit --status JOBID         # squeue, then sacct / scontrol when it has left the queue
    provision submit --k8s ...              # print the same job as a Kubernetes Indexed Job + Service
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from odcore.errors import UserError
from odcore.fileio import write_text
from provision.run_guard import job_user

# Slurm states (squeue/sacct/scontrol JobState) that mean the job did not finish well.
BAD_STATES = ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE")
# what a task forwards into the container: odrun builds the cluster from these
SLURM_VARS = ("SLURM_JOB_ID", "SLURM_PROCID", "SLURM_LOCALID", "SLURMD_NODENAME", "SLURM_STEP_NODELIST",
              "SLURM_STEP_TASKS_PER_NODE", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_RESV_PORTS")
K8S_PORT = 2222
# sbatch --time formats (man sbatch): minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
TIME_RE = re.compile(r"^(\d+|\d+:\d\d|\d+:\d\d:\d\d|\d+-\d+|\d+-\d+:\d\d|\d+-\d+:\d\d:\d\d)$")
# C0 controls and DEL (a newline would end a script line) and the C1 controls
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")
# what a `#SBATCH --output=` line can hold as it is: sbatch splits #SBATCH lines at blanks and reads
# quotes and `#` itself; any other log path goes on sbatch's command line only (argv, never parsed)
SBATCH_PLAIN_RE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


EXAMPLES = """examples:
  provision submit --nodes 2 --gpus-per-node 4 --runs /shared/runs \\
      -- train --data /runs/data --workdir /runs/job1 --steps 20000 --batch 64
  provision submit --dry-run --runs /shared/runs -- train --workdir /runs/j1
  provision submit --status 42
  provision submit --k8s --nodes 2 -- train --workdir /runs/job1"""


def add_parser(subparsers):
    p = subparsers.add_parser("submit", help="run odrun train on a Slurm cluster (sbatch), or render it for Kubernetes",
                              description=__doc__.split("\n\n")[0], epilog=EXAMPLES)
    p.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
    p.add_argument("--gpus-per-node", type=int, default=0, metavar="G", help="GPUs per node (default 0: CPU)")
    p.add_argument("--tasks-per-node", type=int, default=1, metavar="T",
                   help="workers per node (default 1: one worker uses all GPUs of its node)")
    p.add_argument("--cpus-per-task", type=int, metavar="C", help="CPUs per worker (default: Slurm's)")
    p.add_argument("--partition", help="Slurm partition (default: the cluster's default)")
    p.add_argument("--time", metavar="D-HH:MM:SS", help="time limit (default: the partition's)")
    p.add_argument("--job-name", default="odrun-train", help="job name (default odrun-train)")
    p.add_argument("--no-container", action="store_true",
                   help="run odrun from this host's venv on every node (default: the odstack image via provision run)")
    p.add_argument("--image", default="odstack:tf2-gpu", help="image for the tasks (default odstack:tf2-gpu)")
    p.add_argument("--provision", metavar="PATH", default="provision",
                   help="the provision command on the nodes (default: `provision` on the node's PATH)")
    p.add_argument("--runs", metavar="DIR", help="host folder mounted at /runs in the image (shared by all nodes)")
    p.add_argument("--data", metavar="DIR", help="host folder mounted read-only at /data in the image")
    p.add_argument("--wait", action="store_true", help="wait for the job to end (sbatch --wait); exit 1 if it failed")
    p.add_argument("--dry-run", action="store_true", help="print the sbatch script, submit nothing")
    p.add_argument("--status", metavar="JOBID", help="show a submitted job's state (squeue, sacct or scontrol)")
    p.add_argument("--k8s", action="store_true",
                   help="print a Kubernetes Indexed Job + headless Service instead (TF_CONFIG per pod, nvidia.com/gpu)")
    p.add_argument("--pvc", default="odstack-runs", help="--k8s: PersistentVolumeClaim mounted at /runs (default odstack-runs)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("train_args", nargs="*", metavar="-- train ARGS", help="the odrun train command")
    p.set_defaults(func=run)
    return p


# -- the job ------------------------------------------------------------------------------------
def _train_args(args):
    words = list(args.train_args)
    if words[:1] == ["--"]:
        words = words[1:]
    if words[:1] != ["train"]:
        raise UserError("expected `-- train ARGS...` after the options", where="provision submit",
                        fix="e.g. provision submit --nodes 2 -- train --data DATA --workdir RUN --steps 1000")
    workdir = None
    for i, w in enumerate(words):
        if w == "--workdir" and i + 1 < len(words):
            workdir = words[i + 1]
        elif w.startswith("--workdir="):
            workdir = w.split("=", 1)[1]
    if not workdir:
        raise UserError("the train command has no --workdir", where="-- train",
                        fix="pass --workdir RUN_DIR (on a filesystem every node sees)")
    return words, workdir


def _no_control(args, words):
    """Refuse control characters in every value that reaches the script (a newline adds a line)."""
    for flag in ("runs", "data", "image", "partition", "time", "job_name", "pvc"):
        value = getattr(args, flag, None)
        if isinstance(value, str) and CONTROL_RE.search(value):
            raise UserError("--{} contains a control character: {!r}".format(flag.replace("_", "-"), value),
                            where="--" + flag.replace("_", "-"), fix="remove newlines, tabs and other control characters")
    for i, w in enumerate(words):
        if CONTROL_RE.search(w):
            name = w.split("=", 1)[0] if w.startswith("--") else (words[i - 1] if i else w)
            raise UserError("train argument {!r} contains a control character".format(w),
                            where="-- train {}".format(name if name.startswith("--") else "ARGS"),
                            fix="remove newlines, tabs and other control characters")


def _counts(args):
    for name in ("nodes", "tasks_per_node"):
        if getattr(args, name) < 1:
            raise UserError("--{} must be >= 1".format(name.replace("_", "-")), where="--" + name.replace("_", "-"))
    if args.gpus_per_node < 0:
        raise UserError("--gpus-per-node must be >= 0", where="--gpus-per-node")
    if args.gpus_per_node and args.gpus_per_node % args.tasks_per_node:
        raise UserError("{} GPUs per node do not split over {} tasks".format(args.gpus_per_node, args.tasks_per_node),
                        where="--tasks-per-node", fix="use a divisor of --gpus-per-node")
    if args.cpus_per_task is not None and not 0 < args.cpus_per_task <= 100000:
        raise UserError("--cpus-per-task must be 1-100000", where="--cpus-per-task")
    if args.nodes > 100000:
        raise UserError("--nodes must be 1-100000", where="--nodes")
    if args.partition is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*", args.partition):
        raise UserError("invalid partition {!r}".format(args.partition), where="--partition", fix="letters, digits, . _ -")
    if args.time is not None and not TIME_RE.fullmatch(args.time):
        raise UserError("invalid time limit {!r}".format(args.time), where="--time",
                        fix="minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (man sbatch)")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", args.job_name):
        raise UserError("invalid job name {!r}".format(args.job_name), where="--job-name", fix="letters, digits, . _ -")


def log_dir(args, workdir):
    """Host path of RUN_DIR/slurm (container workdirs are /runs/... inside the image)."""
    run_dir = Path(workdir)
    if not args.no_container:
        if not args.runs:  # the cause to name first: without --runs no /runs path can exist
            raise UserError("with the image, --runs must name the shared host folder mounted at /runs",
                            where="--runs", fix="e.g. --runs /shared/runs -- train --workdir /runs/job1, "
                                                "or --no-container (this host's venv on every node)")
        if not workdir.startswith("/runs/"):
            raise UserError("with the image, --workdir must be under /runs (the --runs folder)",
                            where="--workdir", fix="e.g. --runs /shared/runs -- train --workdir /runs/job1, "
                                                   "or --no-container")
        run_dir = Path(args.runs) / workdir[len("/runs/"):]
    return run_dir.resolve() / "slurm"


def _tool(name):
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else (shutil.which(name) or name)


def task_command(args, words):
    """What every srun task runs."""
    if args.no_container:  # every word quoted: nothing in a value is read by the shell
        return " ".join(shlex.quote(w) for w in [_tool("odrun")] + words)
    cmd = [args.provision, "run", "--image", args.image, "--network", "host",
           "--gpus", "all" if args.gpus_per_node else "none", "--runs", str(Path(args.runs).resolve())]
    if args.data:
        cmd += ["--data", str(Path(args.data).resolve())]
    quoted = " ".join(shlex.quote(c) for c in cmd)
    env = " ".join('--env {0}="${0}"'.format(v) for v in SLURM_VARS)  # expanded by the task's shell
    return "bash -c {}".format(shlex.quote("exec {} {} -- {}".format(
        quoted, env, " ".join(shlex.quote(w) for w in words))))


def _node_check(args):
    """A clear line in the job log when the node has no `provision` (resolved there, not here)."""
    if args.no_container:
        return "# odrun: this host's venv, on a filesystem every node sees"
    exe = shlex.quote(args.provision)  # one quoted word, never inside the echo's double quotes
    return ("command -v {0} >/dev/null || {{ echo \"provision submit: not found on $(hostname) (PATH=$PATH):\" "
            "{0} \"- install odstack there or pass --provision PATH\" >&2; exit 127; }}").format(exe)


def sbatch_script(args, words, logs):
    lines = ["#!/bin/bash",
             "# written by provision submit: odrun train on {} node(s) x {} worker(s), {} GPU(s) per node".format(
                 args.nodes, args.tasks_per_node, args.gpus_per_node),
             "#SBATCH --job-name={}".format(args.job_name),
             "#SBATCH --nodes={}".format(args.nodes),
             "#SBATCH --ntasks-per-node={}".format(args.tasks_per_node)]
    out = "{}/slurm-%j.out".format(logs)
    if SBATCH_PLAIN_RE.match(out):
        lines.append("#SBATCH --output=" + out)
    else:
        lines.append("# the log path is passed as sbatch --output (a #SBATCH line cannot hold it): " + shlex.quote(out))
    if args.gpus_per_node:
        lines.append("#SBATCH --gpus-per-node={}".format(args.gpus_per_node))
    if args.cpus_per_task:
        lines.append("#SBATCH --cpus-per-task={}".format(args.cpus_per_task))
    if args.partition:
        lines.append("#SBATCH --partition={}".format(args.partition))
    if args.time:
        lines.append("#SBATCH --time={}".format(args.time))
    lines += ["set -euo pipefail",
              'echo "odrun train: job $SLURM_JOB_ID on $SLURM_JOB_NODELIST, $SLURM_NTASKS worker(s)"',
              _node_check(args),
              "# one task per worker; a worker that fails ends the step and the job fails (no hang)",
              "srun --kill-on-bad-exit=1 --output={} {}".format(shlex.quote("{}/worker-%j-%t.log".format(logs)),
                                                                task_command(args, words)),
              ""]
    return "\n".join(lines)


def _hand_to_job_user(args, logs):
    """As root, the image's job runs as a non-root user (provision run's rule): RUN_DIR must be its."""
    if args.no_container or os.geteuid() != 0:
        return

    ids = job_user().split(":")
    if all(i.isdigit() for i in ids):
        for d in (logs.parent, logs):
            os.chown(str(d), int(ids[0]), int(ids[-1]))


def submit(args):
    words, workdir = _train_args(args)
    _no_control(args, words)
    _counts(args)
    logs = log_dir(args, workdir)
    script = sbatch_script(args, words, logs)
    if args.dry_run:
        sys.stdout.write(script)
        return 0
    sbatch = shutil.which("sbatch")
    if not sbatch:
        raise UserError("sbatch not found: this machine is not a Slurm submit host",
                        fix="run on the cluster's head node (provision cluster sets one up), or --dry-run / --k8s")

    logs.mkdir(parents=True, exist_ok=True)
    _hand_to_job_user(args, logs)
    path = logs / time.strftime("submit-%Y%m%d-%H%M%S.sbatch")
    write_text(path, script)
    cmd = [sbatch, "--parsable", "--output={}/slurm-%j.out".format(logs)] + (["--wait"] if args.wait else []) + [str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    job = (proc.stdout.strip().splitlines() or [""])[0].split(";")[0]
    if not job.isdigit():
        raise UserError("sbatch refused the job: " + (proc.stderr.strip() or proc.stdout.strip()), where=str(path),
                        fix="check the partition/GPU counts against `sinfo -o '%P %D %c %G'`", code=1)
    result = {"job_id": job, "script": str(path), "logs": str(logs)}
    code = 0
    if args.wait:
        result.update(status(job))
        deadline = time.time() + 60  # sbatch --wait returns while the job may still show COMPLETING
        while result["state"] in ("COMPLETING", "RUNNING", "PENDING", "CONFIGURING") and time.time() < deadline:
            time.sleep(1)
            result.update(status(job))
        code = 0 if proc.returncode == 0 and result["state"] == "COMPLETED" else 1
    _print(args, result, "submitted job {job_id}; logs in {logs}; state: provision submit --status {job_id}")
    return code


# -- status -------------------------------------------------------------------------------------
def status(job):
    """{'state', 'exit_code', 'source'} from squeue (queued/running), else sacct, else scontrol."""
    if not re.match(r"^\d+(_\d+)?$", job):
        raise UserError("invalid job id {!r}".format(job), where="--status", fix="the number sbatch printed")
    out = _try(["squeue", "-h", "-j", job, "-o", "%T|%M|%R"])
    if out:
        state, elapsed, reason = out.splitlines()[0].split("|")
        return {"state": state, "elapsed": elapsed, "reason": reason, "source": "squeue"}
    out = _try(["sacct", "-n", "-P", "-X", "-j", job, "-o", "State,ExitCode,Elapsed"])
    if out:
        state, exit_code, elapsed = out.splitlines()[0].split("|")
        return {"state": state.split()[0], "exit_code": exit_code, "elapsed": elapsed, "source": "sacct"}
    out = _try(["scontrol", "show", "job", "-o", job])  # accounting off: the controller still remembers it
    if out:
        fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
        return {"state": fields.get("JobState"), "exit_code": fields.get("ExitCode"),
                "elapsed": fields.get("RunTime"), "reason": fields.get("Reason"), "source": "scontrol"}
    raise UserError("job {} is unknown to squeue, sacct and scontrol".format(job), where="--status",
                    fix="check the job id (squeue -u $USER)", code=1)


def _try(cmd):
    if not shutil.which(cmd[0]):
        return ""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


# -- Kubernetes ---------------------------------------------------------------------------------
def k8s_manifests(args, words):
    """[headless Service, Indexed Job]: pod i is worker i, TF_CONFIG built from its completion index."""
    name = args.job_name.lower().replace("_", "-").replace(".", "-")
    workers = args.nodes * args.tasks_per_node
    hosts = ["{}-{}.{}:{}".format(name, i, name, K8S_PORT) for i in range(workers)]
    tf_config = '{{"cluster": {{"worker": {}}}, "task": {{"type": "worker", "index": $(WORKER_INDEX)}}}}'.format(
        json.dumps(hosts))
    gpus = args.gpus_per_node // args.tasks_per_node if args.gpus_per_node else 0
    container = {
        "name": "odrun", "image": args.image, "command": ["odrun"], "args": words,
        "ports": [{"name": "worker", "containerPort": K8S_PORT}],
        "env": [{"name": "WORKER_INDEX", "valueFrom": {"fieldRef": {
                    "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
                {"name": "TF_CONFIG", "value": tf_config}],
        "volumeMounts": [{"name": "runs", "mountPath": "/runs"}],
    }
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"clusterIP": "None", "selector": {"job-name": name},
                        "ports": [{"name": "worker", "port": K8S_PORT}]}}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
           "spec": {"completionMode": "Indexed", "completions": workers, "parallelism": workers,
                    "backoffLimit": 0,  # one failed worker fails the job (MWMS cannot continue without it)
                    "template": {"spec": {"subdomain": name, "restartPolicy": "Never", "containers": [container],
                                          "volumes": [{"name": "runs", "persistentVolumeClaim": {
                                              "claimName": args.pvc}}]}}}}
    return [service, job]


def render_k8s(args):
    import yaml

    words, workdir = _train_args(args)
    _no_control(args, words)
    _counts(args)
    docs = k8s_manifests(args, words)
    if args.json:
        sys.stdout.write(json.dumps(docs, indent=2) + "\n")
    else:
        sys.stdout.write("# written by provision submit --k8s: apply with kubectl apply -f -\n")
        sys.stdout.write(yaml.safe_dump_all(docs, default_flow_style=False, sort_keys=False))
    return 0


def _print(args, result, text):
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        print(text.format(**result))


def run(args):
    if args.status:
        result = status(args.status)
        result["job_id"] = args.status
        _print(args, result, "job {job_id}: {state} (" + result["source"] + ")")
        return 1 if (result.get("state") or "").split()[0] in BAD_STATES else 0
    if args.k8s:
        return render_k8s(args)
    return submit(args)
