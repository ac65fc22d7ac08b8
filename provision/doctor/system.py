"""Everything doctor knows about a machine comes through a `System`: files under a root
directory, commands through a runner, NVML, the Docker daemon and a TensorFlow probe.

`LiveSystem` reads this machine. `RecordedSystem` replays a captured machine (a directory
laid out like `/`, plus `commands.yaml` holding recorded command outputs), so the same
checks run unchanged on real outputs taken from bug reports."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from provision.doctor import engine_socket, tfprobe
from provision.gpu import NVML_ERROR_KINDS, GpuInfo, NvmlFailure, NvmlSnapshot, classify_nvml_message, read as read_nvml  # noqa: F401 - the NVML types live in provision.gpu; re-exported here

BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
PROBE_CAP = 1 << 20  # bytes: /proc and /sys files, os-release are far smaller
# a recorded capture's commands.yaml and stdout_file outputs: read whole up to this, refused above it
# (provision/doctor/capture.py), never cut
RECORDED_CAP = 16 << 20
SMI_CC = re.compile(r"^[0-9]+\.[0-9]+$")


class CaptureError(Exception):
    """A recorded capture holds something malformed: a finding naming its file, not a doctor bug."""


def read_capped(path, cap=PROBE_CAP):
    """A probe file's text, at most `cap` bytes; None for what is not a regular file (a FIFO,
    a device such as a symlink to /dev/zero) or unreadable: never blocks, never grows without
    bound. /proc and /sys files report size 0 but are regular and read normally."""
    import stat

    try:
        fd = os.open(str(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, left = [], cap
        while left > 0:
            block = os.read(fd, min(left, 65536))
            if not block:
                break
            chunks.append(block)
            left -= len(block)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


@dataclass
class Result:
    """One command's outcome; `missing` means the executable is not there at all."""
    returncode: int
    stdout: str = ""
    stderr: str = ""
    missing: bool = False

    @property
    def output(self):
        return (self.stdout + "\n" + self.stderr).strip()


class DockerUnavailable(Exception):
    pass


class System:
    """Base: file access relative to `root`. Subclasses provide run/nvml/docker_info/tf_probe."""

    live = False

    def __init__(self, root="/"):
        self.root = Path(root)

    def path(self, p):
        return self.root / str(p).lstrip("/")

    def read(self, p):
        try:
            return read_capped(self.path(p))
        except (OSError, ValueError):
            return None

    def exists(self, p):
        return self.path(p).exists()

    def listdir(self, p):
        try:
            return sorted(os.listdir(self.path(p)))
        except OSError:
            return []

    def readlink_name(self, p):
        try:
            return os.path.basename(os.readlink(self.path(p)))
        except OSError:
            return None

    def which(self, name):
        for d in BIN_DIRS:
            candidate = self.path(d) / name
            if candidate.exists():
                return str(Path(d) / name)
        return None

    def uname_r(self):
        res = self.run(["uname", "-r"])
        return res.stdout.strip() if res.returncode == 0 else None


class LiveSystem(System):
    live = True

    def __init__(self, root="/", timeout=10.0):
        super().__init__(root)
        self.timeout = timeout

    def which(self, name):
        return shutil.which(name) or super().which(name)

    def run(self, argv, timeout=None):
        exe = self.which(argv[0])
        if not exe:
            return Result(127, missing=True, stderr=argv[0] + ": command not found")
        try:
            proc = subprocess.run([exe] + list(argv[1:]), capture_output=True, text=True,
                                  timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            return Result(124, stderr="timed out after {}s".format(timeout or self.timeout))
        except OSError as exc:
            return Result(126, stderr=str(exc))
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def nvml(self):
        return read_nvml()

    def docker_info(self):

        path = engine_socket.local_socket()
        if path:  # the local socket: stdlib HTTP, no SDK import (bench/doctor.py)
            try:
                return engine_socket.info(path)
            except (OSError, ValueError) as exc:
                if isinstance(exc, PermissionError) or not os.path.exists(path):
                    raise DockerUnavailable("Error while fetching server API version: {}: {}".format(
                        type(exc).__name__, exc))
                raise DockerUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        try:
            import docker
        except ImportError:
            raise DockerUnavailable("the docker Python SDK is not installed (pip install docker)")
        try:
            client = docker.from_env(timeout=5)
            client.ping()
            return client.info()
        except Exception as exc:  # DockerException, requests errors, socket errors
            raise DockerUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def tf_probe(self, timeout=120.0, python=None):
        return tfprobe.run(python or sys.executable, timeout)


class RecordedSystem(System):
    """A captured machine: files under `root`, command outputs in `root/commands.yaml`:

        commands:
          "uname -r": {rc: 0, stdout: "...", source: URL}
          "nvidia-smi -q -x": {rc: 9, stdout: "NVIDIA-SMI has failed ..."}
          "dkms status": {stdout_file: recorded/dkms.txt}

    A command not listed is "not installed" (exit 127). `data`: commands.yaml as
    provision.doctor.capture.check_commands_file validated it (read here, whole, when not given)."""

    def __init__(self, root, data=None):
        super().__init__(root)
        if data is None:
            data = yaml.safe_load(read_capped(self.root / "commands.yaml", RECORDED_CAP) or "") or {}
        self.commands = data.get("commands") or {}
        self.tf = data.get("tf_probe")

    def source(self, argv):
        """The file a recorded command's output comes from (for findings about it)."""
        entry = self.commands.get(" ".join(argv)) or {}
        ref = entry.get("stdout_file")
        return str(self.root / ref) if ref else "{} (commands/{})".format(self.root / "commands.yaml", " ".join(argv))

    def run(self, argv, timeout=None):
        entry = self.commands.get(" ".join(argv))
        if entry is None:
            return Result(127, missing=True, stderr=argv[0] + ": command not found")
        stdout = entry.get("stdout", "")
        if entry.get("stdout_file"):
            stdout = read_capped(self.root / entry["stdout_file"], RECORDED_CAP) or ""
        return Result(int(entry.get("rc", 0)), stdout, entry.get("stderr", ""))

    def nvml(self):
        res = self.run(["nvidia-smi", "-q", "-x"])
        if res.missing:
            raise NvmlFailure("no_library", "nvidia-smi/NVML not installed")
        if res.returncode != 0:
            raise NvmlFailure(classify_nvml_message(res.output), res.output)
        try:
            return parse_smi_xml(res.stdout)
        except ValueError as exc:
            raise CaptureError("{}: {}".format(self.source(["nvidia-smi", "-q", "-x"]), exc))

    def docker_info(self):
        res = self.run(["docker", "info"])
        if res.missing:
            raise DockerUnavailable("docker: command not found")
        info = parse_docker_info(res.stdout)
        if res.returncode != 0:
            raise DockerUnavailable(res.output.splitlines()[-1] if res.output else "daemon unreachable")
        return info

    def which(self, name):
        """A recorded command's executable existed on the captured host."""
        if any(cmd.split()[0] == name for cmd in self.commands):
            return "/usr/bin/" + name
        return super().which(name)

    def tf_probe(self, timeout=120.0, python=None):
        if self.tf is None:
            return {"status": "missing", "error": "No module named 'tensorflow'"}
        return self.tf


def parse_smi_xml(text):
    """`nvidia-smi -q -x` -> NvmlSnapshot (nvidia-smi reads the same NVML fields); ValueError naming what
    is wrong when the text is not such XML."""
    from lxml import etree

    parser = etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False)
    try:
        root = etree.fromstring((text or "").strip().encode(), parser=parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError("not valid XML ({})".format(exc)) from None
    if root.tag != "nvidia_smi_log":
        raise ValueError("not `nvidia-smi -q -x` output (root element <{}>, expected <nvidia_smi_log>)".format(
            root.tag))
    snap = NvmlSnapshot(root.findtext("driver_version"), root.findtext("cuda_version"))
    for gpu in root.findall("gpu"):
        total = gpu.findtext("fb_memory_usage/total") or ""
        m = re.match(r"(\d+)", total)
        cc = gpu.findtext("compute_cap")  # newer drivers only
        if cc is not None and not SMI_CC.match(cc.strip()):
            raise ValueError("<compute_cap> of GPU {} is {!r}, not MAJOR.MINOR".format(gpu.get("id", "?"), cc[:40]))
        snap.gpus.append(GpuInfo(
            name=gpu.findtext("product_name"),
            bus_id=gpu.get("id", ""),
            memory_mib=int(m.group(1)) if m else None,
            compute_capability=cc.strip() if cc else None))
    return snap


def parse_docker_info(text):
    """The handful of `docker info` fields doctor needs, keyed like the SDK's info() dict."""
    info = {}
    for line in (text or "").splitlines():
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        value = value.strip()
        if key == "Server Version":
            info["ServerVersion"] = value
        elif key == "Runtimes":
            info["Runtimes"] = {name: {} for name in value.split()}
        elif key == "Default Runtime":
            info["DefaultRuntime"] = value
        elif key == "CDI spec directories":
            info["CDISpecDirs"] = []
    return info
