"""Issue 22: `provision doctor --root` on damaged captures. Each case starts from the recorded host
tests/fixtures/doctor/healthy_gpu (its SOURCE.md cites every file) and damages one thing:
- a commands.yaml over 1 MiB is read whole (up to 16 MiB), never cut; above that, exit 2 naming it;
- a malformed `tf_probe` entry or recorded `nvidia-smi -q -x` XML is exit 2 naming the file (and, reached
  through a System built directly, a finding naming it), never "check crashed ... a bug in doctor";
- with /proc/cpuinfo unreadable, AVX2/FMA and AVX-512 are warnings "unknown", never ok.
"""
import json
import os
import shutil

import pytest

from conftest import FIXTURES, run_cli

from provision.doctor import diagnose
from provision.doctor.system import RecordedSystem

HEALTHY = FIXTURES / "doctor" / "healthy_gpu"


@pytest.fixture
def capture(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(str(HEALTHY), str(root), symlinks=True)
    return root


def doctor(root, *args, check=None):
    return run_cli("provision", "doctor", "--root", root, "--json", *args, check=check)


def checks(proc):
    assert "Traceback" not in proc.stderr and "bug in doctor" not in proc.stdout
    return {c["id"]: c for c in json.loads(proc.stdout)["checks"]}


def test_commands_yaml_over_one_mib_is_read_whole(capture):
    before = checks(doctor(capture))
    text = (capture / "commands.yaml").read_text()
    padding = "# padding line of a very long capture header (test)\n" * 25000  # ~1.3 MB before the commands
    (capture / "commands.yaml").write_text(padding + text)
    assert (capture / "commands.yaml").stat().st_size > 1 << 20
    after = checks(doctor(capture))
    assert after == before and after["tensorflow.import"]["status"] == "ok"


def test_commands_yaml_over_the_cap_is_exit_2(capture):
    with open(str(capture / "commands.yaml"), "a") as f:
        f.write("# x\n" * (17 << 18))  # 17 MiB
    proc = doctor(capture, check=2)
    assert str(capture / "commands.yaml") in proc.stderr and "larger than 16 MB" in proc.stderr


@pytest.mark.parametrize("entry,field", [
    ("tf_probe: {status: ok}", "tf_probe"),
    ("tf_probe: {status: fine}", "tf_probe/status"),
    ("tf_probe: [1, 2]", "tf_probe"),
    ("tf_probe: {status: ok, version: 2.8.0, gpus: 5}", "tf_probe/gpus"),
    ("tf_probe: {status: ok, version: 2.8.0, built_with_cuda: yes please}", "tf_probe/built_with_cuda"),
    ("tf_probe: {status: ok, version: 2.8.0, build_info: {cuda_compute_capabilities: [35]}}",
     "tf_probe/build_info/cuda_compute_capabilities/0"),
    ("tf_probe: {status: ok, version: [2, 8]}", "tf_probe/version"),
])
def test_malformed_tf_probe_is_exit_2_naming_the_field(capture, entry, field):
    text = (capture / "commands.yaml").read_text()
    (capture / "commands.yaml").write_text(text[:text.index("tf_probe:")] + entry + "\n")
    proc = doctor(capture, check=2)
    assert str(capture / "commands.yaml") in proc.stderr and "field " + field + " " in proc.stderr, proc.stderr


BAD_XML = [("", "not valid XML"), ("<nvidia_smi_log><gpu id='0'>", "not valid XML"),
           ("<html><body>502 Bad Gateway</body></html>", "root element <html>"),
           ("<nvidia_smi_log><gpu id='0'><compute_cap>eight</compute_cap></gpu></nvidia_smi_log>", "compute_cap"),
           ('<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            "<nvidia_smi_log><driver_version>&b;</driver_version><gpu>", "not valid XML")]


@pytest.mark.parametrize("xml,words", BAD_XML)
def test_malformed_recorded_xml_is_exit_2_naming_the_file(capture, xml, words):
    xml_file = capture / "recorded" / "nvidia-smi-q-x.xml"
    xml_file.write_text(xml)
    proc = doctor(capture, "--no-tf", check=2)
    assert str(xml_file) in proc.stderr and words in proc.stderr, proc.stderr


def test_malformed_inline_xml_names_commands_yaml(capture):
    text = (capture / "commands.yaml").read_text()
    text = text.replace("stdout_file: recorded/nvidia-smi-q-x.xml", 'stdout: "<nvidia_smi_log><gpu>"')
    (capture / "commands.yaml").write_text(text)
    proc = doctor(capture, "--no-tf", check=2)
    assert "commands.yaml (commands/nvidia-smi -q -x/stdout)" in proc.stderr


@pytest.mark.parametrize("xml,words", BAD_XML[1:4])
def test_a_system_built_directly_turns_bad_xml_into_a_finding(capture, xml, words):
    """Checks reached without the up-front validation (a System injected as the tests do)."""
    xml_file = capture / "recorded" / "nvidia-smi-q-x.xml"
    xml_file.write_text(xml)
    found = {f.id: f for f in diagnose(RecordedSystem(capture), ["nvml", "tensorflow"], with_tf=True)}
    for f in found.values():
        assert "bug in doctor" not in (f.fix or "") and "check crashed" not in f.evidence
    assert found["nvml.driver"].status == "fail"
    assert found["nvml.driver"].evidence.startswith("recorded capture: {}: ".format(xml_file))
    assert words in found["nvml.driver"].evidence


@pytest.mark.parametrize("how", ["missing", "fifo", "dev_zero", "unreadable"])
def test_unreadable_cpuinfo_is_unknown_never_ok(capture, how):
    cpuinfo = capture / "proc" / "cpuinfo"
    cpuinfo.unlink()
    if how == "fifo":
        os.mkfifo(str(cpuinfo))
    elif how == "dev_zero":
        cpuinfo.symlink_to("/dev/zero")
    elif how == "unreadable":
        os.mkdir(str(cpuinfo))  # exists, cannot be read as a file (root reads any mode-000 file)
    found = checks(doctor(capture, "--section", "cpu"))
    for cid in ("cpu.avx", "cpu.avx2_fma", "cpu.avx512"):
        assert found[cid]["status"] == "warn", found[cid]
    assert "unknown" in found["cpu.avx2_fma"]["evidence"] and "unknown" in found["cpu.avx512"]["evidence"]
