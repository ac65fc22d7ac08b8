"""A Docker engine and a local base image for the image/run tests.

    from dockerd import engine, base_image, cpu_image
    engine()      # a docker SDK client; as root, starts `dockerd` when `docker info` fails
    base_image()  # "odstack-test/bookworm-py3": a debootstrapped bookworm root with python3 + venv,
                  # `docker import`ed (no registry here: nothing can be pulled)
    cpu_image()   # the `cpu` flavour built on it with `provision image build` (result dict)

Each is built once per test process (lru_cache), so several test modules share them. Under CI=true
a missing part fails (conftest.require), it never skips.
"""
import functools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from conftest import require, run_cli

BASE_TAG = "odstack-test/bookworm-py3:latest"
CPU_TAG = "odstack-test:cpu"
LOG_DIR = Path(os.environ.get("ODSTACK_TEST_CACHE", "/var/cache/odstack-tests"))


def _ping():
    import docker

    try:
        cli = docker.from_env(version="auto", timeout=600)
        cli.ping()
        return cli
    except docker.errors.DockerException:
        return None


@functools.lru_cache(maxsize=None)
def engine():
    """A client for a running engine; as root, start dockerd (docker.io) when none answers."""
    require(shutil.which("dockerd") or _ping(), "Docker engine not installed (scripts/setup.sh --system)")
    cli = _ping()
    if cli is None and os.geteuid() == 0 and shutil.which("dockerd") and not os.environ.get("DOCKER_HOST"):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = open(str(LOG_DIR / "dockerd.log"), "ab")
        # Left running after the tests (like a system service): later runs reuse it.
        subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while cli is None and time.time() < deadline:
            time.sleep(1)
            cli = _ping()
    require(cli is not None, "no Docker engine answers and it cannot be started here (needs root + docker.io)")
    return cli


@functools.lru_cache(maxsize=None)
def base_image():
    """A python3 base image from a debootstrapped root (tests/rootfs.py caches the tarball)."""
    cli = engine()
    import docker

    try:
        cli.images.get(BASE_TAG)
        return BASE_TAG
    except docker.errors.ImageNotFound:
        pass
    from rootfs import bookworm_root_tar, can_build

    ok, why = can_build()
    require(ok, why)
    tar = bookworm_root_tar(include=("python3", "python3-venv"))
    # = `tar -C ROOT -c . | docker import - NAME`, through the SDK
    cli.api.import_image_from_file(str(tar), repository=BASE_TAG.split(":")[0], tag="latest",
                                   changes=['CMD ["python3"]'])
    cli.images.get(BASE_TAG)
    return BASE_TAG


@functools.lru_cache(maxsize=None)
def cpu_image():
    """`provision image build cpu --base-image <debootstrapped base> --tag odstack-test:cpu --json`."""
    base = base_image()
    proc = run_cli("provision", "image", "build", "cpu", "--base-image", base, "--tag", CPU_TAG, "--json",
                   timeout=1200)
    assert proc.returncode == 0, "image build failed:\n" + proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout)
