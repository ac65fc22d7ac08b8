"""One "can this image run on this GPU/driver" rule: doctor's image checks and `provision matrix
recommend` agree on every recorded host (tests/fixtures/doctor/<scenario>, real captures, see each
SOURCE.md), and every NVML reader goes through provision.gpu."""
import json
import re

import pytest

from conftest import FIXTURES, ROOT, run_cli

from provision import compat
from provision.doctor import diagnose
from provision.doctor.nvml import gpu_cc
from provision.doctor.system import NvmlFailure, RecordedSystem

SCENARIOS = sorted(p for p in (FIXTURES / "doctor").iterdir() if p.is_dir())


def host(scenario):
    try:
        snap = RecordedSystem(scenario).nvml()
    except NvmlFailure:
        return None
    if not snap.gpus:
        return None
    return snap.gpus[0].name, gpu_cc(snap.gpus[0]), snap.driver_version


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_doctor_and_matrix_recommend_agree(scenario):
    f = {x.id: x for x in diagnose(RecordedSystem(scenario), ["images"], with_tf=False)}
    doctor_flavor = f["images.recommended"].evidence.split()[0]
    can = f["images.flavours"].evidence.split("; cannot:")[0]
    runnable = set(re.findall(r"([\w.-]+) \(", can[len("can run: "):]))
    found = host(scenario)
    if found is None:  # no working NVML: both fall back to the CPU image
        assert doctor_flavor == "cpu"
        assert compat.load().recommend()["flavor"] == "cpu" and runnable == {"cpu"}
        return
    name, cc, driver = found
    try:  # what a user would type: the GPU's name when the matrix knows it, else its compute capability
        compat.load().gpu(name)
        which = ["--gpu", name]
    except compat.UnknownKey:
        which = ["--cc", cc]
    rec = json.loads(run_cli("provision", "matrix", "recommend", *which, "--driver", driver, "--json",
                             check=0).stdout)
    assert rec["flavor"] == doctor_flavor, (scenario.name, rec, f["images.recommended"].evidence)
    if rec["flavor"] != "cpu":  # the image recommend picks is one doctor says this host can run, or not
        assert (rec["flavor"] in runnable) == bool(rec["driver_ok"]), (scenario.name, rec, can)
    assert "cpu" in runnable


def test_forward_compat_is_one_rule():
    """A datacenter GPU on an older driver branch that the image's CUDA forward-compatibility
    package supports: recommend says driver_ok, and the same rule (runs_on) says it can run.
    Hand-made inputs (no recorded host has this combination)."""
    m = compat.load(ROOT / "compat_matrix.yaml")
    for img in m.images():
        branches = img.get("forward_compat_drivers") or {}
        for major, floor in branches.items():
            dc = [g for g in m.gpus() if g.get("class") == "datacenter"
                  and compat.cc_tuple(g["compute_capability"]) in
                  [compat.cc_tuple(c) for c in img["compute_capabilities"]]]
            if not dc:
                continue
            ok, why = m.runs_on(img, [dc[0]["compute_capability"]], floor, dc[0]["name"])
            assert ok and "forward-compatibility" in why, (img["flavor"], floor, why)
            return
    pytest.skip("no image in the matrix lists forward_compat_drivers")


def test_one_nvml_reader():
    """Only provision/gpu.py imports pynvml."""
    users = [str(p.relative_to(ROOT)) for p in (ROOT / "provision").rglob("*.py")
             if re.search(r"^\s*import pynvml|^\s*from pynvml", p.read_text(), re.M)]
    assert users == ["provision/gpu.py"]
