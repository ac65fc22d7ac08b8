"""Where `odrun train` runs: one device, N devices of one machine, or many workers (Slurm / TF_CONFIG).

    plan = distribute.plan(gpus=2, cross_device_ops="nccl")   # before TensorFlow runs any op
    strategy = distribute.make_strategy(plan)                 # MirroredStrategy / MWMS / default
    out_dir = distribute.write_dir(plan, run_dir)             # run_dir on the chief, a temp dir elsewhere

Steps of `plan` (the first that applies wins):
  1. $TF_CONFIG set (what `model_main_tf2 --num_workers` and Kubernetes/JobSet manifests use):
     MultiWorkerMirroredStrategy over its cluster.
  2. Inside a Slurm job step with more than one task (`srun`, or `sbatch -n N` + `srun`): the cluster
     is built from SLURM_STEP_NODELIST + SLURM_STEP_TASKS_PER_NODE (expanded with TensorFlow's own
     slurm_cluster_resolver helpers), ports from SLURM_STEP_RESV_PORTS (slurm.conf MpiParams=ports=)
     or derived from SLURM_JOB_ID. Not `SlurmClusterResolver` itself: it divides the node's GPUs by
     the tasks per node and, on a CPU-only node with 2 tasks, gets 0 GPUs per task and fails
     (range() step 0 / "Requested more GPUs per node than available"); and it orders tasks by sorted
     host name, not by where Slurm put them. Here each task uses the GPUs Slurm made visible to it
     (CUDA_VISIBLE_DEVICES, or the CPU when there are none) and finds its own index by node name +
     SLURM_LOCALID, so any --distribution works.
  3. `--gpus N` (N > 1): MirroredStrategy over /gpu:0..N-1, all-reduce chosen with --cross-device-ops.
     $ODRUN_CPU_REPLICAS=N splits the CPU into N logical devices instead (tests the same code path on a
     machine without GPUs: tf.config.set_logical_device_configuration).
  4. Otherwise the default strategy (one device).

Batch and learning rate: the OD API's train_config.batch_size (`--batch`) is the GLOBAL batch; each
replica gets batch / replicas (tf.distribute.InputContext.get_per_replica_batch_size), so it must
divide evenly. The learning rate is used as configured, not scaled: the losses are averaged over
replicas, so N replicas x batch b trains like one device with batch N*b. `summary()` states both.
"""
import json
import os
import re
import shutil
import socket
import tempfile

from odcore.errors import UserError

CROSS_DEVICE_OPS = ("nccl", "hierarchical-copy", "reduce-to-one")
COLLECTIVES = ("auto", "ring", "nccl")  # MultiWorkerMirroredStrategy CommunicationImplementation
CPU_REPLICAS_ENV = "ODRUN_CPU_REPLICAS"
RANDOM_SEED_ENV = "ODRUN_RANDOM_SEED"  # fixed initial weights/augmentation: comparable runs (tests, bench)
PORT_BASE_ENV = "ODRUN_PORT_BASE"
DEFAULT_PORT_RANGE = (20000, 60000)  # ports derived from SLURM_JOB_ID fall in here


class Plan(object):
    """What to build: kind is 'single', 'mirrored' or 'multi_worker'."""

    def __init__(self, kind="single", devices=None, cluster=None, task_type="worker", task_index=0,
                 source=None, cross_device_ops=None, cpu_replicas=0):
        self.kind = kind
        self.devices = devices or []
        self.cluster = cluster or {}
        self.task_type = task_type
        self.task_index = task_index
        self.source = source
        self.cross_device_ops = cross_device_ops
        self.cpu_replicas = cpu_replicas

    @property
    def num_workers(self):
        return sum(len(v) for k, v in self.cluster.items() if k in ("chief", "worker")) or 1

    @property
    def is_chief(self):
        """The one task that writes checkpoints, events and summaries (MWMS's rule)."""
        if self.kind != "multi_worker":
            return True
        if "chief" in self.cluster:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    def tf_config(self):
        return {"cluster": self.cluster, "task": {"type": self.task_type, "index": self.task_index}}


# 1) TF_CONFIG --------------------------------------------------------------------------------
def from_tf_config(text):
    try:
        conf = json.loads(text)
        cluster, task = conf["cluster"], conf.get("task", {})
        task_type, index = task["type"], int(task["index"])
        if not isinstance(cluster, dict) or not all(isinstance(v, list) for v in cluster.values()):
            raise ValueError("cluster must map job names to lists of host:port")
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError("TF_CONFIG is not a valid cluster description: {}".format(exc), where="$TF_CONFIG",
                        fix='e.g. {"cluster": {"worker": ["h1:2222", "h2:2222"]}, '
                            '"task": {"type": "worker", "index": 0}}')
    if set(cluster) - {"chief", "worker"}:
        raise UserError("TF_CONFIG names jobs {} (parameter servers)".format(sorted(set(cluster) - {"chief", "worker"})),
                        where="$TF_CONFIG",
                        fix="the TF2 OD API trains with MultiWorkerMirroredStrategy: use only 'chief'/'worker'")
    if task_type not in cluster or not 0 <= index < len(cluster[task_type]):
        raise UserError("TF_CONFIG task {}[{}] is not in its cluster".format(task_type, index),
                        where="$TF_CONFIG", fix="set task.type/task.index to one of the cluster's entries")
    return Plan("multi_worker", cluster=cluster, task_type=task_type, task_index=index, source="TF_CONFIG")


# 2) Slurm ------------------------------------------------------------------------------------
def _expand(env):
    from tensorflow.python.distribute.cluster_resolver.slurm_cluster_resolver import (
        expand_hostlist, expand_tasks_per_node)
    hosts = expand_hostlist(env["SLURM_STEP_NODELIST"])
    tasks = expand_tasks_per_node(env["SLURM_STEP_TASKS_PER_NODE"])
    if len(tasks) < len(hosts):  # "2(x3)" expands per node; a single "2" may stand for all of them
        tasks = tasks + [tasks[-1]] * (len(hosts) - len(tasks))
    return hosts, tasks


def slurm_port_base(env):
    """First port of this step: Slurm's reserved ports, $ODRUN_PORT_BASE, or one derived from the job id."""
    resv = env.get("SLURM_STEP_RESV_PORTS")
    if resv:
        return int(re.match(r"(\d+)", resv).group(1))
    if env.get(PORT_BASE_ENV):
        return int(env[PORT_BASE_ENV])
    lo, hi = DEFAULT_PORT_RANGE
    return lo + (int(env.get("SLURM_JOB_ID", "0")) * 16) % (hi - lo)


def from_slurm(env):
    """The cluster of this job step: worker list in node order, this task's index in it."""
    hosts, tasks = _expand(env)
    base = slurm_port_base(env)
    workers, me = [], None
    node, local = env.get("SLURMD_NODENAME") or socket.gethostname(), int(env.get("SLURM_LOCALID", "0"))
    for host, count in zip(hosts, tasks):
        for i in range(count):
            if host == node and i == local:
                me = len(workers)
            workers.append("{}:{}".format(host, base + i))
    if me is None:  # node names that are not the hostname: fall back to Slurm's rank
        me = int(env["SLURM_PROCID"])
    if len(workers) != int(env.get("SLURM_STEP_NUM_TASKS", len(workers))):
        raise UserError("Slurm step lists {} tasks but the node list expands to {}".format(
            env.get("SLURM_STEP_NUM_TASKS"), len(workers)), where="$SLURM_STEP_TASKS_PER_NODE",
            fix="run odrun train with srun inside the allocation")
    return Plan("multi_worker", cluster={"worker": workers}, task_index=me, source="slurm")


def in_slurm_step(env):
    return bool(env.get("SLURM_STEP_NODELIST")) and int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1


# 3)/4) one machine ---------------------------------------------------------------------------
def add_flags(parser):
    parser.add_argument("--gpus", type=int, default=None, metavar="N",
                        help="train on N GPUs of this machine (MirroredStrategy; --batch is the global batch, "
                             "split evenly over the GPUs; default: one device). Inside a Slurm job step with several tasks, or with "
                             "$TF_CONFIG set, odrun trains multi-worker (MultiWorkerMirroredStrategy) by itself")
    parser.add_argument("--cross-device-ops", default=None, metavar="NAME",
                        choices=CROSS_DEVICE_OPS + COLLECTIVES,
                        help="all-reduce: " + ", ".join(CROSS_DEVICE_OPS) + " on one machine (default nccl; "
                             "hierarchical-copy is the known workaround when NCCL hangs), "
                             + ", ".join(COLLECTIVES) + " across workers (default auto)")


def plan(gpus=None, cross_device_ops=None, env=None, api="tf2"):
    """Decide how to train (see the module docstring); no TensorFlow op runs here."""
    env = os.environ if env is None else env
    if cross_device_ops and cross_device_ops not in CROSS_DEVICE_OPS + COLLECTIVES:
        raise UserError("unknown --cross-device-ops {!r}".format(cross_device_ops), where="--cross-device-ops",
                        fix="one of: " + ", ".join(CROSS_DEVICE_OPS) + " (one machine); " + ", ".join(COLLECTIVES)
                            + " (multi-worker)")
    if gpus is not None and gpus < 1:
        raise UserError("--gpus must be >= 1", where="--gpus", fix="e.g. --gpus 2")
    if env.get("TF_CONFIG"):
        p = from_tf_config(env["TF_CONFIG"])
    elif in_slurm_step(env):
        p = from_slurm(env)
    else:
        cpu = int(env.get(CPU_REPLICAS_ENV, "0") or 0)
        if cpu > 1:
            p = Plan("mirrored", devices=["/cpu:{}".format(i) for i in range(cpu)], cpu_replicas=cpu)
        elif gpus and gpus > 1:
            p = Plan("mirrored", devices=["/gpu:{}".format(i) for i in range(gpus)])
        else:
            p = Plan("single")
    if p.kind == "multi_worker" and cross_device_ops in CROSS_DEVICE_OPS:
        raise UserError("--cross-device-ops {} is for one machine".format(cross_device_ops),
                        where="--cross-device-ops", fix="across workers use one of: " + ", ".join(COLLECTIVES))
    if p.kind == "mirrored" and cross_device_ops in COLLECTIVES:
        raise UserError("--cross-device-ops {} is for multi-worker training".format(cross_device_ops),
                        where="--cross-device-ops", fix="on one machine use one of: " + ", ".join(CROSS_DEVICE_OPS))
    p.cross_device_ops = cross_device_ops
    if p.kind != "single" and api != "tf2":
        raise UserError("{} training needs the TF2 code path".format(p.kind.replace("_", "-")),
                        where="--api", fix="use --api tf2 (model_main_tf2's strategies)")
    return p


def backend_kwargs(p):
    """Extra keyword arguments for backend.train (none for one device: the TF1 backend takes none)."""
    return {} if p.kind == "single" else {"distribution": p}


def worker_config(p, config, save):
    """A non-chief worker's copy of pipeline.config (in its own temp dir: it never writes RUN_DIR)."""
    import atexit
    folder = tempfile.mkdtemp(prefix="odrun-worker{}-config-".format(p.task_index))
    atexit.register(shutil.rmtree, folder, True)
    path = os.path.join(folder, "pipeline.config")
    save(config, path)
    return path


def make_strategy(p):
    """The tf.distribute strategy for a plan. Call before any other TensorFlow op."""
    import tensorflow as tf
    if os.environ.get(RANDOM_SEED_ENV):
        tf.keras.utils.set_random_seed(int(os.environ[RANDOM_SEED_ENV]))
    if p is None or p.kind == "single":
        return tf.distribute.get_strategy()
    if p.kind == "mirrored":
        if p.cpu_replicas:
            cpus = tf.config.list_physical_devices("CPU")
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(p.cpu_replicas)])
            ops = p.cross_device_ops or "reduce-to-one"  # NCCL has no CPU kernels
        else:
            found = len(tf.config.list_physical_devices("GPU"))
            if found < len(p.devices):
                raise UserError("--gpus {} but TensorFlow sees {} GPU(s)".format(len(p.devices), found),
                                where="--gpus", fix="check `provision doctor` (driver, CUDA) or pass --gpus {}".format(
                                    max(found, 1)))
            ops = p.cross_device_ops or "nccl"
        return tf.distribute.MirroredStrategy(devices=p.devices, cross_device_ops=_cross_device_ops(tf, ops))
    impl = {"auto": "AUTO", "ring": "RING", "nccl": "NCCL"}[p.cross_device_ops or "auto"]
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(p.cluster), task_type=p.task_type, task_id=p.task_index, rpc_layer="grpc",
        num_accelerators={"GPU": len(tf.config.list_physical_devices("GPU"))})
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=getattr(tf.distribute.experimental.CommunicationImplementation, impl))
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)


def _cross_device_ops(tf, name):
    if name == "nccl":
        return tf.distribute.NcclAllReduce()
    if name == "hierarchical-copy":
        return tf.distribute.HierarchicalCopyAllReduce()
    return tf.distribute.ReductionToOneDevice()


def build_if_seeded(model):
    """With $ODRUN_RANDOM_SEED: create the model's variables now, eagerly, so every strategy draws the
    same initial weights (inside the training tf.function, op seeds depend on the traced graph, which
    differs between one device and N replicas)."""
    if not os.environ.get(RANDOM_SEED_ENV):
        return
    import tensorflow as tf
    images, shapes = model.preprocess(tf.zeros([1, 64, 64, 3], tf.float32))
    model.predict(images, shapes)


# chief / worker outputs --------------------------------------------------------------------
def write_dir(p, run_dir):
    """run_dir on the chief; a fresh temporary directory on other workers (removed by cleanup)."""
    if p is None or p.is_chief:
        return run_dir
    return tempfile.mkdtemp(prefix="odrun-worker{}-".format(p.task_index))


def cleanup(p, path, run_dir):
    if path != run_dir and p is not None and not p.is_chief:
        shutil.rmtree(path, ignore_errors=True)


def check_batch(p, batch_size, replicas, train_files):
    """Refuse what would fail (or hang) deep inside TF: uneven batches, fewer record files than workers."""
    if batch_size % replicas:
        raise UserError("batch {} does not split evenly over {} replicas".format(batch_size, replicas),
                        where="--batch", fix="use a multiple of {} (it is the global batch)".format(replicas))
    if p is not None and p.kind == "multi_worker" and len(train_files) < p.num_workers:
        # the OD API shards by FILE across workers: a worker with no file waits forever
        raise UserError("{} training record file(s) for {} workers".format(len(train_files), p.num_workers),
                        where="train_input_reader.input_path",
                        fix="convert with --shards {} (or more): each worker reads its own files".format(p.num_workers))


def summary(p, batch_size, replicas):
    """What the run summary says about the distribution."""
    out = {"strategy": {"single": "default", "mirrored": "MirroredStrategy",
                        "multi_worker": "MultiWorkerMirroredStrategy"}[p.kind if p else "single"],
           "replicas": replicas, "global_batch": batch_size, "per_replica_batch": batch_size // max(replicas, 1),
           "learning_rate": "as configured (not scaled with replicas; losses are averaged over replicas)"}
    if p is not None and p.kind == "multi_worker":
        out.update(workers=p.num_workers, task="{}:{}".format(p.task_type, p.task_index), source=p.source,
                   cluster=p.cluster)
    if p is not None and p.kind != "single":
        out["cross_device_ops"] = p.cross_device_ops or ("auto" if p.kind == "multi_worker" else
                                                         "reduce-to-one" if p.cpu_replicas else "nccl")
    return out
