"""`provision cluster` (playbooks/cluster.yml, role slurm) against real debootstrapped Debian 12 roots.

Two roots as one inventory through community.general.chroot: `head` (slurm_head and a node) and `node1`
(a node with 4 GPUs). Real: apt + the Debian archive's slurmctld/slurmd/munge packages, the role's
templates, Ansible's check mode. Hand-made (labelled): /usr/sbin/policy-rc.d (exit 101, never start
daemons in a chroot) and node1's /usr/bin/nvidia-smi, a stand-in that prints a RECORDED real
`nvidia-smi -L` of a 4x A100 node with MIG (tests/fixtures/slurm/SOURCE.md). Services are never started
in a chroot; the daemons themselves are exercised for real in tests/test_multiworker.py.
"""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, have_module, require, run_cli
from rootfs import bookworm_root_tar, can_build, extract_root

pytestmark = [pytest.mark.ansible, pytest.mark.slow, pytest.mark.long]  # ~4.5 min
INCLUDE = ("python3", "python3-apt", "initramfs-tools")  # the host playbooks' cached root


def snapshot(root):
    out = {}
    for top in ("etc", "usr", "var/lib/dpkg"):
        for path in (root / top).rglob("*"):
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mode, st.st_mtime_ns)
    return out


def provision(base, inventory, *args, check=None):
    run_dir = base / "runs" / str(len(list(base.glob("runs/*"))))
    proc = run_cli("provision", "cluster", "--inventory", inventory, "--json", "--run-dir", run_dir, *args,
                   check=check, timeout=1200)
    try:
        return proc, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("no JSON summary (exit {}):\n{}\n{}".format(proc.returncode, proc.stdout, proc.stderr))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    ok, why = can_build()
    require(ok, why)
    require(have_module("ansible_runner"), "ansible-runner not installed (pip install -e '.[host]')")
    base = tmp_path_factory.mktemp("clusterlab")
    tar = bookworm_root_tar(include=INCLUDE)
    roots = {n: extract_root(tar, base / n) for n in ("head", "node1")}
    for root in roots.values():
        # a real host has /proc: Ansible's hardware facts (CPUs, MemTotal) read it
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
        guard = root / "usr/sbin/policy-rc.d"
        guard.write_text("#!/bin/sh\n# test chroot: never start services\nexit 101\n")
        guard.chmod(0o755)
    smi = roots["node1"] / "usr/bin/nvidia-smi"
    shutil.copy(str(FIXTURES / "slurm" / "nvidia-smi-L-a100-mig.txt"), str(roots["node1"] / "nvidia-smi-L.txt"))
    smi.write_text("#!/bin/sh\n# hand-made stand-in printing a recorded real nvidia-smi -L (test fixture)\n"
                   "cat /nvidia-smi-L.txt\n")
    smi.chmod(0o755)
    inv = base / "cluster.ini"
    inv.write_text("\n".join([
        "[slurm_head]", "head ansible_host={} slurm_node_addr=127.0.0.1".format(roots["head"]),
        "[slurm_nodes]", "head ansible_host={} slurm_node_addr=127.0.0.1".format(roots["head"]),
        "node1 ansible_host={} slurm_node_addr=127.0.0.2".format(roots["node1"]),
        "[all:vars]", "ansible_connection=community.general.chroot", "ansible_python_interpreter=/usr/bin/python3",
        ""]))
    try:
        before = {n: snapshot(r) for n, r in roots.items()}
        check_first = provision(base, inv, "--check")
        after_check = {n: snapshot(r) for n, r in roots.items()}
        first = provision(base, inv, check=0)
        second = provision(base, inv, check=0)
        yield {"roots": roots, "inv": inv, "base": base, "before": before, "after_check": after_check,
               "check_first": check_first, "first": first, "second": second}
    finally:
        for root in roots.values():
            if subprocess.run(["umount", str(root / "proc")]).returncode == 0:
                shutil.rmtree(str(root), ignore_errors=True)


def test_check_mode_on_fresh_hosts_writes_nothing(lab):
    proc, summary = lab["check_first"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary["check"] is True and all(summary["hosts"][h]["changed"] >= 1 for h in ("head", "node1"))
    assert lab["after_check"] == lab["before"]
    assert "etc/slurm/slurm.conf" not in lab["after_check"]["head"]


def test_rendered_slurm_conf(lab):
    for name in ("head", "node1"):  # the same file everywhere
        conf = (lab["roots"][name] / "etc/slurm/slurm.conf").read_text()
        assert conf == (lab["roots"]["head"] / "etc/slurm/slurm.conf").read_text()
    lines = conf.splitlines()
    assert "SlurmctldHost=head(127.0.0.1)" in lines and "GresTypes=gpu" in lines
    assert "AuthType=auth/munge" in lines and "ProctrackType=proctrack/cgroup" in lines
    nodes = {line.split()[0]: line for line in lines if line.startswith("NodeName=")}
    assert set(nodes) == {"NodeName=head", "NodeName=node1"}
    assert "NodeAddr=127.0.0.2" in nodes["NodeName=node1"] and "Gres=gpu:4" in nodes["NodeName=node1"]
    assert "Gres=" not in nodes["NodeName=head"]  # no nvidia-smi there
    cpus = int(subprocess.run(["nproc", "--all"], capture_output=True, text=True).stdout)
    assert " CPUs={} ".format(cpus) in nodes["NodeName=node1"]
    mem = int(nodes["NodeName=node1"].split("RealMemory=")[1].split()[0])
    total = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    assert 0.9 * total < mem < total
    # Slurm's own view of this hardware (slurmd -C, run in the node root) agrees with what the role wrote
    proc = subprocess.run(["chroot", str(lab["roots"]["node1"]), "slurmd", "-C"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    detected = dict(kv.split("=", 1) for kv in proc.stdout.split() if "=" in kv)
    assert int(detected["CPUs"]) == cpus and mem <= int(detected["RealMemory"])


def test_rendered_gres_and_cgroup_conf(lab):
    gres = (lab["roots"]["node1"] / "etc/slurm/gres.conf").read_text()
    assert "NodeName=node1 Name=gpu File=/dev/nvidia[0-3]" in gres  # Debian's Slurm has no gpu_nvml.so
    assert not (lab["roots"]["node1"] / "usr/lib/x86_64-linux-gnu/slurm-wlm/gpu_nvml.so").exists()
    assert "Name=gpu" not in (lab["roots"]["head"] / "etc/slurm/gres.conf").read_text()
    cg = (lab["roots"]["head"] / "etc/slurm/cgroup.conf").read_text().splitlines()
    assert "ConstrainDevices=yes" in cg and "CgroupPlugin=autodetect" in cg


def test_munge_key_is_the_heads_everywhere(lab):
    keys = [(lab["roots"][n] / "etc/munge/munge.key") for n in ("head", "node1")]
    assert keys[0].read_bytes() == keys[1].read_bytes() and len(keys[0].read_bytes()) >= 32
    assert oct(keys[1].stat().st_mode & 0o777) == "0o400"
    # the key never reaches the artifacts (no_log)
    secret = keys[0].read_bytes()
    import base64
    b64 = base64.b64encode(secret).decode()
    for f in (lab["base"] / "runs").rglob("*"):
        if f.is_file():
            assert b64[:40] not in f.read_text(errors="replace")


def test_packages_installed_and_second_run_changes_nothing(lab):
    for name, pkg in (("head", "slurmctld"), ("node1", "slurmd"), ("head", "slurmd"), ("node1", "munge")):
        proc = subprocess.run(["chroot", str(lab["roots"][name]), "dpkg-query", "-W", "-f", "${Status}", pkg],
                              capture_output=True, text=True)
        assert proc.stdout == "install ok installed", (name, pkg, proc.stderr)
    assert not (lab["roots"]["node1"] / "usr/sbin/slurmctld").exists()
    _, first = lab["first"]
    _, second = lab["second"]
    assert all(first["hosts"][h]["changed"] > 0 for h in ("head", "node1"))
    assert {h: row["changed"] for h, row in second["hosts"].items()} == {"head": 0, "node1": 0}


def test_check_mode_after_a_change_shows_the_diff_and_writes_nothing(lab):
    before = {n: snapshot(r) for n, r in lab["roots"].items()}
    proc, summary = provision(lab["base"], lab["inv"], "--check", "-e", "slurm_partition=big", check=0)
    assert "+PartitionName=big Nodes=ALL" in proc.stderr and "-PartitionName=gpu Nodes=ALL" in proc.stderr
    assert summary["hosts"]["head"]["changed"] >= 1
    assert {n: snapshot(r) for n, r in lab["roots"].items()} == before
