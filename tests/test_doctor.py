"""provision doctor on recorded real system captures (tests/fixtures/doctor/<scenario>/, each
with SOURCE.md citing where every output came from), plus unit checks of the pure parts."""
import json

import pytest

from conftest import FIXTURES, run_cli

from provision.doctor import diagnose
from provision.doctor.system import (RecordedSystem, classify_nvml_message, parse_docker_info,
                                     parse_smi_xml)
from provision.doctor.tensorflow import cc_supported

SCENARIOS = FIXTURES / "doctor"


def findings(scenario, sections=None, with_tf=False):
    return {f.id: f for f in diagnose(RecordedSystem(SCENARIOS / scenario), sections, with_tf=with_tf)}


def test_every_scenario_cites_its_sources():
    scenarios = sorted(p for p in SCENARIOS.iterdir() if p.is_dir())
    assert {p.name for p in scenarios} >= {"healthy_gpu", "kernel_upgraded", "nouveau_loaded", "no_avx",
                                           "driver_mismatch", "no_toolkit"}
    for p in scenarios:
        text = (p / "SOURCE.md").read_text()
        assert "https://" in text, p.name


def test_healthy_gpu_host():
    f = findings("healthy_gpu")
    for cid in ("os.release", "os.kernel", "cpu.avx", "pci.gpus", "nvml.driver", "nvml.gpus", "kmod.loaded",
                "kmod.built_for_kernel", "nouveau.loaded", "nouveau.blacklisted", "kernel_hold.kernel",
                "kernel_hold.unattended", "containers.docker_cli", "containers.nvidia_runtime", "containers.toolkit"):
        assert f[cid].status == "ok", (cid, f[cid])
    assert "510.47.03" in f["nvml.driver"].evidence and "11.6" in f["nvml.driver"].evidence
    assert "Tesla P100-PCIE-16GB" in f["nvml.gpus"].evidence and "16384 MiB" in f["nvml.gpus"].evidence
    assert "10de:15f8" in f["pci.gpus"].evidence and "driver=nvidia" in f["pci.gpus"].evidence
    assert "3.16.0-31-generic" in f["kmod.built_for_kernel"].evidence
    assert "linux-image-aws" in f["kernel_hold.kernel"].evidence
    assert not [x for x in f.values() if x.status == "fail"]


def test_kernel_upgraded_driver_gone():
    f = findings("kernel_upgraded", ["pci", "nvml", "kmod"])
    k = f["kmod.built_for_kernel"]
    assert k.status == "fail" and "kernel upgraded, driver gone" in k.evidence
    assert "3.13.0-116-generic" in k.evidence and "3.13.0-88-generic" in k.evidence
    assert "provision host --tags driver" in k.fix and "kernel-hold" in k.fix
    assert f["nvml.driver"].status == "fail" and "not loaded" in f["nvml.driver"].evidence
    assert f["kmod.loaded"].status == "fail"
    assert f["pci.gpus"].status == "ok"  # found on the bus although the driver is broken


def test_nouveau_loaded_and_typo_blacklist():
    f = findings("nouveau_loaded", ["pci", "nouveau"])
    assert f["nouveau.loaded"].status == "fail"
    assert "0000:01:00.0" in f["nouveau.loaded"].evidence
    assert f["nouveau.loaded"].fix.startswith("provision host --tags nouveau")
    assert f["nouveau.blacklisted"].status == "warn" and "nouneau" in f["nouveau.blacklisted"].evidence
    assert "driver=nouveau" in f["pci.gpus"].evidence


def test_no_avx_cpu():
    f = findings("no_avx", ["cpu", "tensorflow"], with_tf=True)
    assert f["cpu.avx"].status == "fail" and "Illegal instruction" in f["cpu.avx"].evidence
    assert f["tensorflow.import"].status == "fail" and "SIGILL" in f["tensorflow.import"].evidence


def test_driver_library_mismatch():
    f = findings("driver_mismatch", ["nvml", "kmod", "kernel_hold"])
    d = f["nvml.driver"]
    assert d.status == "fail" and "version mismatch" in d.evidence.lower()
    assert "reboot" in d.fix and "kernel-hold" in d.fix
    assert f["kmod.loaded"].status == "ok" and "550.90.07" in f["kmod.loaded"].evidence
    assert f["kernel_hold.kernel"].status == "warn" and f["kernel_hold.kernel"].fix == "provision host --tags kernel-hold"
    # Debian's default unattended-upgrades config: the "linux-" blacklist line is commented out
    u = f["kernel_hold.unattended"]
    assert u.status == "warn" and "linux and nvidia" in u.evidence and u.fix == "provision host --tags kernel-hold"


def test_no_container_toolkit():
    f = findings("no_toolkit", ["pci", "nvml", "containers"])
    assert f["nvml.driver"].status == "ok"
    r = f["containers.nvidia_runtime"]
    assert r.status == "fail" and "io.containerd.runc.v2, runc" in r.evidence
    assert r.fix.startswith("provision host --tags toolkit")
    assert f["containers.toolkit"].status == "fail"


def test_cli_json_and_exit_codes():
    proc = run_cli("provision", "doctor", "--root", SCENARIOS / "kernel_upgraded", "--no-tf", "--json", check=1)
    data = json.loads(proc.stdout)
    import jsonschema
    from conftest import ROOT
    jsonschema.validate(data, json.loads((ROOT / "provision" / "data" / "doctor.schema.json").read_text()))
    assert set(data) == {"checks"}
    for c in data["checks"]:
        assert set(c) == {"id", "section", "status", "evidence", "fix"}
        assert c["status"] in ("ok", "warn", "fail", "skip")
    proc = run_cli("provision", "doctor", "--root", SCENARIOS / "healthy_gpu", "--no-tf",
                   "--section", "nvml", "--section", "kmod", check=0)
    assert "✓" in proc.stdout and "Tesla P100" in proc.stdout
    proc = run_cli("provision", "doctor", "--root", SCENARIOS / "nouveau_loaded", "--no-tf", "--section", "nouveau",
                   check=1)
    assert "✗" in proc.stdout and "fix: provision host --tags nouveau" in proc.stdout.replace("\n", " ")
    proc = run_cli("provision", "doctor", "--root", "/nonexistent", check=2)
    assert "commands.yaml" in proc.stderr


def test_a_crashing_check_becomes_a_finding(monkeypatch):
    from provision.doctor import cpu

    def boom(ctx):
        raise RuntimeError("probe exploded")
    monkeypatch.setattr(cpu, "cpu_flags", boom)
    f = findings("healthy_gpu", ["cpu", "pci"])
    assert f["cpu.avx"].status == "fail" and "RuntimeError: probe exploded" in f["cpu.avx"].evidence
    assert f["pci.gpus"].status == "ok"  # the others still ran


def test_nvml_error_mapping_from_real_messages():
    # pynvml's own exception objects (values from nvml.h) and nvidia-smi's printed texts
    import pynvml
    from provision.doctor.system import NVML_ERROR_KINDS

    assert NVML_ERROR_KINDS[pynvml.NVML_ERROR_LIBRARY_NOT_FOUND] == "no_library"
    assert NVML_ERROR_KINDS[pynvml.NVML_ERROR_DRIVER_NOT_LOADED] == "driver_not_loaded"
    assert NVML_ERROR_KINDS[pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH] == "version_mismatch"
    assert classify_nvml_message("Failed to initialize NVML: Driver/library version mismatch\n"
                                 "NVML library version: 570.124") == "version_mismatch"
    assert classify_nvml_message("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
                                 "driver. Make sure that the latest NVIDIA driver is installed and running.") \
        == "driver_not_loaded"
    assert classify_nvml_message(str(pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))) == "no_library"


def test_parsers_on_recorded_outputs():
    snap = parse_smi_xml((SCENARIOS / "healthy_gpu" / "recorded" / "nvidia-smi-q-x.xml").read_text())
    assert (snap.driver_version, snap.cuda_driver_version) == ("510.47.03", "11.6")
    assert [(g.name, g.memory_mib, g.bus_id) for g in snap.gpus] == [("Tesla P100-PCIE-16GB", 16384,
                                                                     "00000000:00:04.0")]
    info = parse_docker_info(" Runtimes: io.containerd.runc.v2 runc\n Default Runtime: runc\n")
    assert sorted(info["Runtimes"]) == ["io.containerd.runc.v2", "runc"] and info["DefaultRuntime"] == "runc"


@pytest.mark.parametrize("cc,archs,expected", [
    ("7.5", ["sm_35", "sm_50", "sm_60", "sm_70", "sm_75", "compute_80"], True),
    ("8.6", ["sm_35", "sm_50", "sm_60", "sm_70", "sm_75", "compute_80"], True),   # PTX JIT
    ("8.6", ["sm_35", "sm_50", "sm_60", "sm_70", "sm_75"], False),
    ("3.0", ["sm_35", "sm_50", "compute_70"], False),
    ("6.1", ["sm_60"], True),                                                     # same major, newer minor
])
def test_compute_capability_coverage(cc, archs, expected):
    assert cc_supported(cc, archs) is expected


def test_tf_probe_turns_sigill_and_hang_into_findings():
    """Real child processes: one killed by SIGILL (what a no-AVX CPU does to `import tensorflow`),
    one that outlives the timeout. The probe reports both instead of crashing or hanging."""
    import sys

    from provision.doctor import tfprobe

    died = tfprobe.run(sys.executable, 30, code="import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    assert died["status"] == "crashed" and died["signal"] == "SIGILL"
    hung = tfprobe.run(sys.executable, 0.5, code="import time; time.sleep(30)")
    assert hung["status"] == "timeout" and "did not finish" in hung["error"]
    missing = tfprobe.run(sys.executable, 30, code=tfprobe.PROBE.replace("import tensorflow as tf",
                                                                       "import tensorflow_not_here as tf"))
    assert missing["status"] == "missing" and "tensorflow_not_here" in missing["error"]


def test_dpkg_status_holds():
    # hand-made stanzas in dpkg's status-file format (the selection state is Status' first word)
    from provision.doctor.kernel_hold import dpkg_holds

    status = ("Package: linux-image-amd64\nStatus: hold ok installed\nVersion: 6.1.99-1\n\n"
              "Package: bash\nStatus: install ok installed\nVersion: 5.2\n\n"
              "Package: nvidia-driver\nStatus: hold ok installed\n")
    assert dpkg_holds(status) == ["linux-image-amd64", "nvidia-driver"]


def test_secure_boot_rejects_module():
    f = findings("secure_boot", ["kmod", "kernel_hold", "nvml"])
    sb = f["kernel_hold.secure_boot"]
    assert sb.status == "fail" and sb.evidence.startswith("SecureBoot enabled")
    assert "mokutil --import" in sb.fix
    assert f["kmod.built_for_kernel"].status == "ok" and f["kmod.loaded"].status == "fail"
    # on the healthy host (no mokutil recorded) the check is skipped, not guessed
    assert findings("healthy_gpu", ["kernel_hold"])["kernel_hold.secure_boot"].status == "skip"


def test_tensorflow_gpu_build_on_recorded_host():
    f = findings("healthy_gpu", ["tensorflow", "images"], with_tf=True)
    assert f["tensorflow.import"].status == "ok" and "2.8.0" in f["tensorflow.import"].evidence
    assert f["tensorflow.gpu"].status == "ok" and "CUDA 11.2 / cuDNN 8" in f["tensorflow.gpu"].evidence
    cc = f["tensorflow.compute_capability"]
    assert cc.status == "ok" and "Tesla P100-PCIE-16GB (cc 6.0)" in cc.evidence
    assert f["images.recommended"].status == "ok"


def test_tensorflow_findings_when_host_and_build_disagree(tmp_path):
    """The healthy capture with two recorded values changed (documented here): a TF built for
    CUDA 12.2 on the 510 driver (CUDA 11.6), and a build without sm_60 for the P100."""
    import shutil

    import yaml

    root = tmp_path / "host"
    shutil.copytree(SCENARIOS / "healthy_gpu", root, symlinks=True)
    doc = yaml.safe_load((root / "commands.yaml").read_text())
    doc["tf_probe"]["build_info"]["cuda_version"] = "12.2"
    doc["tf_probe"]["build_info"]["cuda_compute_capabilities"] = ["sm_70", "sm_75", "compute_80"]
    (root / "commands.yaml").write_text(yaml.safe_dump(doc))
    f = {x.id: x for x in diagnose(RecordedSystem(root), ["tensorflow"], with_tf=True)}
    assert f["tensorflow.gpu"].status == "fail" and "CUDA 12.2" in f["tensorflow.gpu"].evidence
    assert "11.6" in f["tensorflow.gpu"].evidence
    cc = f["tensorflow.compute_capability"]
    assert cc.status == "fail" and "no kernel image" in cc.evidence


def test_unattended_blacklist_from_playbook_file_counts(tmp_path):
    """`provision host --tags kernel-hold` writes 51odstack-kernel-hold (the role's template with
    its defaults); doctor must read every apt.conf.d file, not only 50unattended-upgrades."""
    import shutil
    root = tmp_path / "host"
    shutil.copytree(SCENARIOS / "driver_mismatch", root, symlinks=True)
    (root / "etc/apt/apt.conf.d/51odstack-kernel-hold").write_text(
        "Unattended-Upgrade::Package-Blacklist {\n    \"linux-\";\n    \"nvidia-\";\n"
        "    \"libnvidia-\";\n    \"cuda-drivers\";\n};\n")
    f = {c.id: c for c in diagnose(RecordedSystem(root), ["kernel_hold"])}
    assert f["kernel_hold.unattended"].status == "ok"
    assert "linux-" in f["kernel_hold.unattended"].evidence
