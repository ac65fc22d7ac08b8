"""`provision run [--flavor F | --image I] [--gpus ...] [--data DIR] [--runs DIR] -- ODRUN_ARGS...`

Starts an odstack image as a training job: GPUs through device requests (never --privileged), the
dataset read-only at /data, the runs folder read-write at /runs, files owned by the calling user
(uid:gid; under sudo the invoking user's), logs streamed, the container's exit code returned,
Ctrl-C stops and removes the container. `--dry-run` prints the equivalent `docker run` line.
"""
import os
import shlex
import signal
import sys

from odcore.errors import EXIT_INTERRUPTED, UserError
from provision import engine, gpu, image, run_guard
from provision.run_guard import job_user, mount_flag


def default_flavor():
    """What the compat matrix recommends for this host's GPU/driver (cpu when none is found)."""
    gpu, cc, driver = host_gpu()
    try:
        from provision import compat
    except ImportError:
        return "cpu", "no compat matrix installed"
    matrix = compat.load()
    try:
        rec = matrix.recommend_host(gpu=gpu, cc=cc, driver=driver)
    except UserError:
        raise UserError("no image recommendation for GPU {!r}".format(gpu), where="--flavor",
                        fix="pick one: --flavor " + " | ".join(sorted(i["flavor"] for i in matrix.images())))
    return rec["flavor"], rec.get("reason", "")


def host_gpu():
    """(name, compute capability "X.Y", driver) of GPU 0 via NVML; Nones without a driver/GPU."""

    try:
        return gpu.first_gpu()
    except gpu.NvmlFailure:  # a CPU host or a half-working driver: let the matrix say cpu
        return None, None, None


def image_flavor(image):
    """The io.odstack.flavor label of a built image (None when unknown or no engine)."""
    try:
        from provision import engine

        return (engine.client().images.get(image).labels or {}).get("io.odstack.flavor")
    except Exception:  # noqa: BLE001 - best effort: only picks the --gpus default
        return None


def known_flavors():
    try:
        from provision import compat
        return sorted(i["flavor"] for i in compat.load().images())
    except ImportError:
        return []


def caller_ids():
    """uid:gid the job runs as without --user (provision.run_guard.job_user: never 0)."""
    return job_user()


def parse_gpus(value):
    """'all' | 'none' | '0,1' -> (docker --gpus text or None, DeviceRequest kwargs or None)."""
    value = (value or "none").strip()
    if value == "none":
        return None, None
    if value == "all":
        return "all", {"count": -1, "capabilities": [["gpu"]]}
    ids = [v.strip() for v in value.split(",") if v.strip()]
    if not ids or not all(v.isdigit() or v.startswith("GPU-") for v in ids):
        raise UserError("--gpus must be all, none or a list of GPU indices/UUIDs like 0,1 (got {!r})".format(value),
                        where="--gpus")
    return '"device={}"'.format(",".join(ids)), {"device_ids": ids, "capabilities": [["gpu"]]}


def plan(args):
    """Everything the container needs, as one dict (also what --dry-run prints)."""
    if args.image and args.flavor:
        raise UserError("pass --flavor or --image, not both", where="--image")
    reason = None
    flavor = args.flavor
    run_guard.check_flavor(flavor, known_flavors())
    shm_size = run_guard.check_shm_size(args.shm_size)
    if not args.image and not flavor:
        flavor, reason = default_flavor()
    image = args.image or "odstack:" + flavor
    kind = flavor or image_flavor(image)
    gpus = args.gpus or ("none" if kind == "cpu" else "all")
    gpu_flag, device_request = parse_gpus(gpus)
    mounts = []
    if args.data:
        data = run_guard.check_mount(args.data, "--data")
        if not data.is_dir():
            raise UserError("dataset folder not found: " + str(data), where="--data",
                            fix="pass the folder with your images/annotations or TFRecords")
        mounts.append((str(data), "/data", "ro"))
    runs = run_guard.check_mount(args.runs or "runs", "--runs")
    user = run_guard.job_user(args.user)
    if not args.dry_run and not runs.exists():  # --dry-run writes nothing
        runs.mkdir(parents=True)
        if os.geteuid() == 0 and user == run_guard.IMAGE_USER:  # root without sudo: the job's user owns it
            os.chown(str(runs), 1000, 1000)
    mounts.append((str(runs), "/runs", "rw"))
    odrun_args = list(args.odrun_args or [])
    if odrun_args[:1] == ["--"]:
        odrun_args = odrun_args[1:]
    ports = None
    if getattr(args, "serve", None):
        serve_mount, odrun_args, ports = run_guard.serve_job(args.serve, args.publish, odrun_args)
        mounts.append(serve_mount)
    return {"image": image, "flavor": flavor, "reason": reason, "gpus": gpus, "gpu_flag": gpu_flag,
            "device_request": device_request, "mounts": mounts, "user": user,
            "shm_size": shm_size, "ports": ports, "entrypoint": args.entrypoint, "args": odrun_args,
            "name": args.name, "detach": args.detach, "env": list(args.env or []),
            "network": getattr(args, "network", None)}


def docker_command(p):
    """The `docker run` line equivalent to plan `p`."""
    cmd = ["docker", "run", "--rm" if not p["detach"] else "--detach", "--init"]
    if p["name"]:
        cmd += ["--name", p["name"]]
    if p["gpu_flag"]:
        cmd += ["--gpus", p["gpu_flag"]]
    if p.get("network"):
        cmd += ["--network", p["network"]]
    cmd += ["--user", p["user"], "--shm-size", p["shm_size"]]
    for host_port, port in sorted((p.get("ports") or {}).items()):
        cmd += ["-p", "{}:{}".format(host_port, port)]
    for src, dst, mode in p["mounts"]:
        cmd += ["--mount", mount_flag(src, dst, mode)]  # not -v: a path with ':' would break it
    for kv in p["env"]:
        cmd += ["-e", kv]
    if p["entrypoint"]:
        cmd += ["--entrypoint", p["entrypoint"]]
    cmd.append(p["image"])
    return " ".join(shlex.quote(c) for c in cmd + p["args"])


def start(p):
    """Create and start the container; returns it. Engine errors become UserErrors."""
    import docker
    from docker.types import DeviceRequest, Mount


    cli = engine.client()
    kwargs = dict(command=p["args"], user=p["user"], shm_size=p["shm_size"], detach=True, init=True,
                  mounts=[Mount(dst, src, type="bind", read_only=(mode == "ro")) for src, dst, mode in p["mounts"]],
                  environment=p["env"], name=p["name"], labels={"io.odstack.job": "1"})
    if p["entrypoint"]:
        kwargs["entrypoint"] = p["entrypoint"]
    if p.get("ports"):  # {"127.0.0.1:8501": "8501"} -> {"8501/tcp": ("127.0.0.1", 8501)}
        kwargs["ports"] = {"{}/tcp".format(c): (h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]))
                           for h, c in p["ports"].items()}
    if p.get("network"):
        kwargs["network_mode"] = p["network"]
    if p["device_request"]:
        kwargs["device_requests"] = [DeviceRequest(**p["device_request"])]
    container = None
    try:
        try:
            cli.images.get(p["image"])
        except docker.errors.ImageNotFound:
            if not (p["flavor"] and offer_build(p)):
                raise missing_image(p) from None
        container = cli.containers.create(p["image"], **kwargs)
        container.start()
        return container
    except docker.errors.DockerException as exc:
        if container is not None:
            _remove(container)
        raise engine.engine_error(exc) from None
    except KeyboardInterrupt:  # Ctrl-C between create and the log stream: leave nothing behind
        if container is not None:
            _stop(container)
        raise


def missing_image(p):
    build = "provision image build {}".format(p["flavor"]) if p["flavor"] else \
        "provision image build FLAVOR --tag {}".format(p["image"])
    return UserError("image {} is not on this engine".format(p["image"]), where="--image" if not p["flavor"] else "--flavor",
                     fix="build it: " + build)


def offer_build(p):
    """At a terminal, offer to build the missing flavour; True when it was built."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    sys.stderr.write("image {} is not built yet. Build it now (several minutes)? [y/N] ".format(p["image"]))
    if input().strip().lower() not in ("y", "yes"):
        return False

    image.build(p["flavor"], tag=p["image"])
    return True


def _remove(container):
    import docker

    try:
        container.remove(force=True, v=True)
    except docker.errors.DockerException:
        pass


def _stop(container):
    """Ctrl-C: say so, give the job 10 s to stop, then remove it and its anonymous volumes."""
    import docker

    sys.stderr.write("\nstopping {} ...\n".format(container.short_id))
    try:
        container.stop(timeout=10)
    except docker.errors.DockerException:
        pass  # already gone: the removal below is all that is left
    finally:
        _remove(container)


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def follow(container):
    """Stream the logs until the container exits; return its exit code. Ctrl-C stops + removes it."""
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` is handled like Ctrl-C
    try:
        out = sys.stdout.buffer
        for chunk in container.logs(stream=True, follow=True):
            try:
                out.write(chunk)
                out.flush()
            except BrokenPipeError:  # `provision run ... | head`: keep the job, drop its output
                out = open(os.devnull, "wb")
        return int(container.wait().get("StatusCode", 1))
    except KeyboardInterrupt:
        _stop(container)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        _remove(container)


EXAMPLES = """examples:
  provision run --flavor cpu -- demo
  provision run --data ./dataset --runs ./runs \\
      -- convert /data/annotations --out /runs/data
  provision run --runs ./runs -- train --data /runs/data --workdir /runs/a
  provision run --flavor cpu --serve ./export -p 8501
  provision run -- --help                  # the odrun commands the image has"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "run", help="run an odrun job in a training image (GPUs, /data ro, /runs rw)",
        description="Run `odrun ODRUN_ARGS...` in an odstack image. The dataset folder is mounted read-only at "
                    "/data and the runs folder read-write at /runs; refer to them by those paths in ODRUN_ARGS.",
        epilog=EXAMPLES)
    p.add_argument("--flavor", help="image flavour (default: what `provision matrix recommend` says for this host)")
    p.add_argument("--image", help="image name instead of odstack:FLAVOR")
    p.add_argument("--gpus", help="all | none | 0,1 (default: all for GPU flavours, none for cpu)")
    p.add_argument("--data", metavar="DIR", help="dataset folder, mounted read-only at /data")
    p.add_argument("--runs", metavar="DIR", help="runs folder, mounted read-write at /runs (default ./runs)")
    p.add_argument("--shm-size", default="1g", help="shared memory for input pipelines (default 1g)")
    p.add_argument("--user", metavar="UID:GID",
                   help="run as (default: your uid:gid; under sudo the invoking user's; as root without sudo "
                        "the images' own user 1000:1000, so root only with --user 0)")
    p.add_argument("--env", "-e", action="append", metavar="K=V", help="environment variable for the job")
    p.add_argument("--name", help="container name")
    p.add_argument("--network", choices=("bridge", "host"), default=None,
                   help="container network (default: the engine's bridge; host: multi-worker training, "
                        "workers reach each other on the nodes' addresses)")
    p.add_argument("--entrypoint", help="run this instead of odrun (debugging: --entrypoint python3)")
    p.add_argument("--detach", action="store_true", help="start and print the container id (no log streaming)")
    p.add_argument("--serve", metavar="EXPORT_DIR",
                   help="run `odrun serve` on this export (mounted read-only at /models/NAME)")
    p.add_argument("-p", "--publish", metavar="[HOST:]PORT", default="8501",
                   help="with --serve: host port for the service (default 8501, on 127.0.0.1; "
                        "0.0.0.0:8501 for every interface)")
    p.add_argument("--dry-run", action="store_true", help="print the equivalent `docker run` command and exit")
    p.add_argument("odrun_args", nargs="...", metavar="-- ODRUN_ARGS", help="the odrun command to run")
    p.set_defaults(func=run)


def check_command(args):
    """No odrun command: refuse before anything is created (the image would only print `odrun --help`)."""
    words = list(args.odrun_args or [])
    if words[:1] == ["--"]:
        words = words[1:]
    if not words and not getattr(args, "serve", None) and not args.entrypoint:
        raise UserError("no odrun command to run in the image", where="-- ODRUN_ARGS",
                        fix="add it after --, e.g. `-- demo` or `-- train --data /data --workdir /runs/a` "
                            "(odrun's commands: provision run -- --help)")


def run(args):
    check_command(args)
    p = plan(args)
    if p["reason"] and not args.dry_run:
        sys.stderr.write("flavour {} ({})\n".format(p["flavor"], p["reason"]))
    if args.dry_run:
        print(docker_command(p))
        return 0
    container = start(p)
    if p["detach"]:
        print(container.id)
        sys.stderr.write("follow it: docker logs -f {0}; remove it when done: docker rm {0}\n".format(container.short_id))
        return 0
    return follow(container)
