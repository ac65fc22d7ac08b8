"""provision doctor on this very machine (no GPU, no NVIDIA driver): it must say so, and its
CPU verdict must match /proc/cpuinfo. One run, with the TensorFlow probe."""
import json
import os

import pytest

from conftest import have_module, require, run_cli


@pytest.fixture(scope="module")
def live():
    proc = run_cli("provision", "doctor", "--json", "--tf-timeout", "300", timeout=400)
    data = json.loads(proc.stdout)
    checks = {c["id"]: c for c in data["checks"]}
    return proc, checks


def test_exit_code_matches_failures(live):
    proc, checks = live
    assert proc.returncode == (1 if any(c["status"] == "fail" for c in checks.values()) else 0), proc.stderr


def test_json_validates_against_schema(live):
    import jsonschema

    from conftest import ROOT
    proc, _ = live
    schema = json.loads((ROOT / "provision" / "data" / "doctor.schema.json").read_text())
    jsonschema.validate(json.loads(proc.stdout), schema)


def test_no_gpu_and_no_nvml_here(live):
    require(have_module("pynvml"), "nvidia-ml-py not installed (pip install -e '.[host]')")
    _, checks = live
    base = "/sys/bus/pci/devices"
    vendors = [open(os.path.join(base, d, "vendor")).read().strip() for d in os.listdir(base)] \
        if os.path.isdir(base) else []
    assert "0x10de" not in vendors  # the premise: no NVIDIA device on this machine
    assert checks["pci.gpus"]["status"] == "warn" and "no NVIDIA GPU" in checks["pci.gpus"]["evidence"]
    nvml = checks["nvml.driver"]
    assert nvml["status"] == "skip"
    assert "NVMLError_LibraryNotFound" in nvml["evidence"] and "NVML error 12" in nvml["evidence"]
    for cid in ("kmod.loaded", "nouveau.loaded", "containers.toolkit"):
        assert checks[cid]["status"] == "skip", checks[cid]


def test_cpu_verdict_matches_proc_cpuinfo(live):
    _, checks = live
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
    assert checks["cpu.avx"]["status"] == ("ok" if "avx" in flags else "fail")
    if "avx2" in flags:
        assert "AVX2" in checks["cpu.avx2_fma"]["evidence"]


def test_tensorflow_probe_here(live):
    require(have_module("tensorflow"), "TensorFlow not installed (run scripts/setup.sh)")
    _, checks = live
    imp = checks["tensorflow.import"]
    assert imp["status"] == "ok", imp
    from importlib import metadata
    dists = [d for d in ("tensorflow-cpu", "tensorflow") if _installed(metadata, d)]
    assert "TensorFlow " + metadata.version(dists[0]) in imp["evidence"]
    gpu = checks["tensorflow.gpu"]
    assert gpu["status"] == "ok" and "CPU-only build" in gpu["evidence"]
    assert checks["tensorflow.compute_capability"]["status"] == "skip"


def _installed(metadata, dist):
    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False
