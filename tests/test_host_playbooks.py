"""The real playbooks, through `provision host`, against real Debian bookworm roots.

Roots come from tests/rootfs.py (debootstrap --variant=minbase, cached tarball) and are reached
with community.general.chroot, several at once as one inventory. What is hand-made here, and why:
- /usr/sbin/policy-rc.d (exit 101) in every root: the standard chroot guard so that package
  postinsts (docker.io) never start a daemon on the test machine.
- root-a gets a stand-in kernel "6.1.0-odstack" (empty /boot/vmlinuz, a /boot/config with the
  initramfs compressors, empty /lib/modules): enough for the REAL initramfs-tools to build and
  update /boot/initrd.img, so the test can look inside it with lsinitramfs.
- root-c has /usr/bin/nvidia-uninstall, a stand-in for what a `.run` driver install leaves behind;
  it only touches a marker file, which proves check mode never ran it.
Nothing else is mocked: apt, dpkg, apt-mark, update-initramfs, the Debian archive's packages.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import bin_path, have_module, require, run_cli
from rootfs import bookworm_root_tar, can_build, extract_root

pytestmark = [pytest.mark.ansible, pytest.mark.slow]

KERNEL = "6.1.0-odstack"
INCLUDE = ("python3", "python3-apt", "initramfs-tools")  # what a Debian/Ubuntu server has
MAIN_TAGS = "nouveau,kernel-hold,docker,toolkit"
# NVIDIA's repository is not reachable from this machine: the toolkit role only registers the
# runtime with Docker here (its repository/package steps are covered by ansible-lint and check mode).
NO_NVIDIA_REPO = ["-e", "nvidia_container_toolkit_manage_repo=false", "-e", "nvidia_container_toolkit_install=false"]


def sh(root, command):
    return subprocess.run(["chroot", str(root), "sh", "-c", command], capture_output=True, text=True)


class Lab:
    def __init__(self, base):
        self.base = base
        self.tar = bookworm_root_tar(include=INCLUDE)

    def root(self, name, kernel=False, runfile=False, os_version=None):
        root = extract_root(self.tar, self.base / name)
        guard = root / "usr/sbin/policy-rc.d"
        guard.write_text("#!/bin/sh\n# test chroot: never start services\nexit 101\n")
        guard.chmod(0o755)
        if kernel:
            proc = sh(root, (
                "set -e; K={k}; : > /boot/vmlinuz-$K; printf 'CONFIG_RD_GZIP=y\\nCONFIG_RD_ZSTD=y\\n' > /boot/config-$K; "
                "mkdir -p /lib/modules/$K; cd /lib/modules/$K; touch modules.builtin modules.order modules.builtin.modinfo; "
                "depmod $K; update-initramfs -c -k $K").format(k=KERNEL))
            assert proc.returncode == 0, proc.stderr
        if runfile:
            tool = root / "usr/bin/nvidia-uninstall"
            tool.write_text("#!/bin/sh\n# hand-made stand-in for a .run driver's uninstaller (test fixture)\n"
                            "touch /nvidia-uninstall-ran\n")
            tool.chmod(0o755)
        if os_version:  # pretend to be another release (the platform checks read os-release)
            osr = (root / "usr/lib/os-release").read_text()
            if os_version == "ubuntu-18.04":
                osr = osr.replace("ID=debian", "ID=ubuntu").replace('VERSION_ID="12"', 'VERSION_ID="18.04"')
                os_version = "buster/sid"
            else:
                osr = osr.replace('VERSION_ID="12"', 'VERSION_ID="{}"'.format(os_version))
            (root / "etc/os-release").unlink()
            (root / "etc/os-release").write_text(osr)
            (root / "etc/debian_version").write_text(os_version + ("" if "/" in os_version else ".9") + "\n")
        return root

    def inventory(self, name, roots, extra=""):
        lines = ["[roots]"] + ["{} ansible_host={}".format(n, r) for n, r in roots.items()]
        lines += [extra, "[roots:vars]", "ansible_connection=community.general.chroot",
                  "ansible_python_interpreter=/usr/bin/python3"]
        path = self.base / (name + ".ini")
        path.write_text("\n".join(lines) + "\n")
        return path

    def provision(self, inventory, *args, check=None, env=None):
        run_dir = self.base / "runs" / "{}-{}".format(Path(inventory).stem, len(list(self.base.glob("runs/*"))))
        proc = run_cli("provision", "host", "--inventory", inventory, "--json", "--run-dir", run_dir, *args,
                       check=check, env=env, timeout=900)
        try:
            summary = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("no JSON summary (exit {}):\n{}\n{}".format(proc.returncode, proc.stdout, proc.stderr))
        return proc, summary


def reports(summary, host, task):
    return [r["msg"] for r in summary["reports"] if r["host"] == host and r["task"] == task]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    ok, why = can_build()
    require(ok, why)
    require(have_module("ansible_runner"), "ansible-runner not installed (pip install -e '.[host]')")
    lab = Lab(tmp_path_factory.mktemp("hostlab"))
    yield lab
    # ~300 MB per root: keep only the run directories (inventories, artifacts, summaries)
    for root in lab.base.glob("root-*"):
        shutil.rmtree(str(root), ignore_errors=True)


@pytest.fixture(scope="module")
def applied(lab):
    """Two roots as one inventory: run the main tags twice (the second run must change nothing)."""
    roots = {"root-a": lab.root("root-a", kernel=True), "root-b": lab.root("root-b")}
    initrd = roots["root-a"] / "boot" / ("initrd.img-" + KERNEL)
    before = initrd.stat().st_mtime_ns
    inv = lab.inventory("main", roots)
    env = dict(os.environ, ODSTACK_TEST_SECRET="s3cr3t-value-never-in-artifacts")
    first = lab.provision(inv, "--tags", MAIN_TAGS, *NO_NVIDIA_REPO, env=env)
    second = lab.provision(inv, "--tags", MAIN_TAGS, *NO_NVIDIA_REPO)
    return {"roots": roots, "first": first, "second": second, "initrd_before": before, "initrd": initrd}


def test_first_run_changes_every_host(applied):
    proc, summary = applied["first"]
    assert proc.returncode == 0, proc.stderr
    assert set(summary["hosts"]) == {"root-a", "root-b"}
    for host, row in summary["hosts"].items():
        assert row["changed"] > 0 and row["failed"] == 0 and row["unreachable"] == 0, (host, row)
    # the live lines: one per task and host
    assert "changed     root-a       nouveau: Blacklist the nouveau driver" in proc.stderr
    for host in ("root-a", "root-b"):
        msg = reports(summary, host, "Report that a reboot is required")
        assert msg and msg[0].startswith("reboot required on " + host), summary["reports"]


def test_second_run_changes_nothing(applied):
    proc, summary = applied["second"]
    assert proc.returncode == 0, proc.stderr
    for host, row in summary["hosts"].items():
        assert row["changed"] == 0, (host, row, proc.stderr)
    assert not reports(summary, "root-a", "Report that a reboot is required")


def test_nouveau_blacklisted_and_initramfs_rebuilt(applied):
    for root in applied["roots"].values():
        text = (root / "etc/modprobe.d/blacklist-nouveau.conf").read_text()
        assert "\nblacklist nouveau\noptions nouveau modeset=0\n" in text
    # the handler ran the real update-initramfs: the initrd is newer and carries the blacklist
    assert applied["initrd"].stat().st_mtime_ns > applied["initrd_before"]
    listing = sh(applied["roots"]["root-a"], "lsinitramfs /boot/initrd.img-" + KERNEL).stdout.split()
    assert "etc/modprobe.d/blacklist-nouveau.conf" in listing


def test_kernel_held_and_unattended_upgrades_blacklisted(applied):
    for root in applied["roots"].values():
        held = sh(root, "apt-mark showhold").stdout.split()
        assert held == ["linux-headers-amd64", "linux-image-amd64"]
        conf = (root / "etc/apt/apt.conf.d/51odstack-kernel-hold").read_text()
        assert "Unattended-Upgrade::Package-Blacklist {" in conf
        for pattern in ("linux-", "nvidia-", "libnvidia-"):
            assert '    "{}";'.format(pattern) in conf
        # apt itself parses it (a syntax error would fail here)
        dump = sh(root, "apt-config dump Unattended-Upgrade::Package-Blacklist").stdout
        assert 'Unattended-Upgrade::Package-Blacklist:: "nvidia-";' in dump


def test_docker_installed_and_configured_with_nvidia_runtime(applied):
    for root in applied["roots"].values():
        status = sh(root, "dpkg-query -W -f='${Status}' docker.io").stdout
        assert status == "install ok installed"
        assert (root / "usr/sbin/dockerd").exists()
        daemon = json.loads((root / "etc/docker/daemon.json").read_text())
        assert daemon["log-opts"] == {"max-file": "3", "max-size": "50m"}
        assert daemon["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": []}
        assert "default-runtime" not in daemon
    # no daemon was started inside a root (chroot detection + policy-rc.d)
    roots = {str(r) for r in applied["roots"].values()}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            assert os.readlink("/proc/{}/root".format(pid)) not in roots, "a process runs inside a test root"
        except OSError:
            pass


def test_artifacts_hold_no_process_environment(applied):
    proc, summary = applied["first"]
    run_dir = Path(summary["run_dir"])
    command = json.loads((run_dir / "artifacts" / "run" / "command").read_text())
    assert "ODSTACK_TEST_SECRET" not in command["env"]
    assert set(command["env"]) >= {"PATH", "ANSIBLE_COLLECTIONS_PATH"}
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert b"s3cr3t-value" not in path.read_bytes(), path
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["hosts"] == summary["hosts"]


def test_unhold_switch_with_limit(lab, applied):
    """The seeds' `apt-mark unhold`, on one host of the inventory (--limit)."""
    roots = applied["roots"]
    inv = lab.inventory("main", roots)
    proc, summary = lab.provision(inv, "--limit", "root-b", "--tags", "kernel-hold",
                                  "-e", "kernel_hold_enabled=false", check=0)
    assert list(summary["hosts"]) == ["root-b"]
    assert summary["hosts"]["root-b"]["changed"] == 2
    assert sh(roots["root-b"], "apt-mark showhold").stdout.strip() == ""
    assert not (roots["root-b"] / "etc/apt/apt.conf.d/51odstack-kernel-hold").exists()
    # the other host is untouched
    assert sh(roots["root-a"], "apt-mark showhold").stdout.split() == ["linux-headers-amd64", "linux-image-amd64"]


def test_this_machine_in_check_mode(tmp_path):
    """The default target (this machine, local connection) with --check: reports, writes nothing."""
    ok, why = can_build()  # root is what matters here
    require(ok, why)
    blacklist = Path("/etc/modprobe.d/blacklist-nouveau.conf")
    existed = blacklist.exists()
    proc = run_cli("provision", "host", "--check", "--tags", "nouveau,kernel-hold", "--json",
                   "--run-dir", tmp_path / "run", timeout=600)
    summary = json.loads(proc.stdout)
    assert list(summary["hosts"]) == ["localhost"]
    osr = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    system = (osr.get("ID", ""), osr.get("VERSION_ID", "").strip('"'))
    if system in {("debian", "12"), ("ubuntu", "18.04"), ("ubuntu", "20.04"), ("ubuntu", "22.04"), ("ubuntu", "24.04")}:
        assert proc.returncode == 0, proc.stderr
        assert summary["hosts"]["localhost"]["changed"] > 0 or existed
        assert blacklist.exists() == existed  # check mode wrote nothing
    else:  # another system: the platform check must refuse it clearly, before any change
        assert proc.returncode == 1
        assert summary["failures"][0]["task"] == "Refuse unsupported systems"


def snapshot(root):
    """Every file's path, size, mode and mtime (content changes move mtime)."""
    out = {}
    for top in ("etc", "boot", "usr", "opt", "var/lib/dpkg", "var/lib/apt"):
        for path in (root / top).rglob("*"):
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mode, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def driver_root(lab):
    return lab.root("root-c", kernel=True, runfile=True)


def test_check_mode_changes_nothing(lab, driver_root):
    inv = lab.inventory("check", {"root-c": driver_root})
    before = snapshot(driver_root)
    proc, summary = lab.provision(inv, "--check", "--skip-tags", "verify", *NO_NVIDIA_REPO, check=0)
    assert summary["check"] is True
    assert summary["hosts"]["root-c"]["changed"] >= 5  # blacklist, docker, holds, daemon.json, apt source...
    assert snapshot(driver_root) == before
    assert not (driver_root / "nvidia-uninstall-ran").exists()
    # --check implies --diff: the would-be file contents are shown
    assert "+blacklist nouveau\n" in proc.stderr and "+options nouveau modeset=0\n" in proc.stderr
    assert '+    "nvidia-";' in proc.stderr  # unattended-upgrades blacklist
    # without the non-free source the driver plan is incomplete, and says so
    [msg] = reports(summary, "root-c", "Report the incomplete plan")
    assert "run provision host --tags driver-repo first" in msg


def test_driver_package_plan(lab, driver_root):
    """Enable non-free for real (--tags driver-repo), then plan the driver in check mode."""
    inv = lab.inventory("driver", {"root-c": driver_root})
    proc, summary = lab.provision(inv, "--tags", "driver-repo", check=0)
    sources = (driver_root / "etc/apt/sources.list.d/odstack-debian-nonfree.sources").read_text()
    assert "Components: contrib non-free non-free-firmware" in sources
    # a leftover of another driver flavour (Debian's Tesla 470 branch): real package, small. Its
    # dependency nvidia-installer-cleanup reacts to a .run install, so hide our stand-in meanwhile.
    runfile = driver_root / "usr/bin/nvidia-uninstall"
    runfile.rename(runfile.with_suffix(".aside"))
    proc = sh(driver_root, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
                           "nvidia-tesla-470-alternative")
    runfile.with_suffix(".aside").rename(runfile)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    before = sh(driver_root, "dpkg-query -W -f='${Package}\\n'").stdout
    proc, summary = lab.provision(inv, "--check", "--tags", "driver", check=0)
    [plan] = reports(summary, "root-c", "Show the driver package plan")
    assert plan["branch"] == "535"  # Debian 12 packages the 535 branch (>= tf2-gpu's min_driver 535.54)
    headers = "linux-headers-" + os.uname().release
    expected_headers = headers if sh(driver_root, "apt-cache show " + headers).returncode == 0 else "linux-headers-amd64"
    assert plan["packages"] == ["nvidia-driver", "nvidia-kernel-dkms", expected_headers]
    assert plan["remove"] == ["nvidia-tesla-470-alternative"]
    assert plan["runfile_uninstall"] is True
    for pkg in ("nvidia-driver", "nvidia-kernel-dkms", "dkms", "linux-headers-amd64", "firmware-nvidia-gsp"):
        assert pkg in plan["install"], pkg
    # check mode: nothing installed or purged, the .run uninstaller not run
    assert sh(driver_root, "dpkg-query -W -f='${Package}\\n'").stdout == before
    assert not (driver_root / "nvidia-uninstall-ran").exists()


def test_failures_are_reported_with_exit_code(lab):
    """An unreachable host, two refused systems and a failing task, in one parallel run.
    (root-old and root-bionic are Debian 12 roots with a hand-edited os-release.)"""
    roots = {"root-old": lab.root("root-old", os_version="11"), "root-nogpu": lab.root("root-nogpu"),
             "root-bionic": lab.root("root-bionic", os_version="ubuntu-18.04")}
    ghost = "ghost ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1 ansible_ssh_common_args='-o ConnectTimeout=5'"
    inv = lab.inventory("failures", roots, extra=ghost)
    proc, summary = lab.provision(inv, "--tags", "verify", check=1)
    assert summary["exit_code"] == 1
    hosts = summary["hosts"]
    assert hosts["ghost"]["unreachable"] == 1
    assert hosts["root-old"]["failed"] == 1 and hosts["root-nogpu"]["failed"] == 1 and hosts["root-bionic"]["failed"] == 1
    by_host = {f["host"]: f for f in summary["failures"]}
    assert by_host["ghost"]["state"] == "unreachable"
    assert "Connection refused" in by_host["ghost"]["msg"] or "port 1" in by_host["ghost"]["msg"]
    assert by_host["root-old"]["task"] == "Refuse unsupported systems"
    assert "Debian 11" in by_host["root-old"]["msg"] and "is not supported" in by_host["root-old"]["msg"]
    assert by_host["root-bionic"]["task"] == "Refuse Ubuntu 18.04 with this ansible-core"
    assert "pip install 'ansible-core>=2.16,<2.17'" in by_host["root-bionic"]["msg"]
    assert by_host["root-nogpu"]["task"] == "Require a working GPU"
    assert "nvidia-smi not found" in by_host["root-nogpu"]["msg"]
    assert "verify_require_gpu=false" in by_host["root-nogpu"]["msg"]
    # the human output: lines and the final verdict with the exit code
    assert "unreachable ghost" in proc.stderr
    assert "failed or unreachable: ghost, root-bionic, root-nogpu, root-old (exit 1" in proc.stderr


def test_ctrl_c_stops_the_run(lab):
    """SIGINT while a play runs (docker.io being installed): everything stops, exit 130."""
    import signal
    import time

    root = lab.root("root-int")
    inv = lab.inventory("interrupt", {"root-int": root})
    run_dir = lab.base / "runs" / "interrupt"
    proc = subprocess.Popen([bin_path("provision"), "host", "-i", str(inv), "--tags", "docker",
                             "--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # wait until the play is under way (facts gathered)
        seen.append(line)
        if "Refuse unsupported systems" in line:
            break
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, "".join(seen) + rest
    assert time.monotonic() - t < 60
    assert "interrupted: ansible-playbook stopped" in rest
    assert (run_dir / "artifacts" / "run" / "status").read_text() in ("failed", "canceled")
    # nothing left behind: no ansible-playbook (its workers run in their own sessions), and nothing in
    # the root once a package operation already under way has finished: when the Ctrl-C lands during
    # apt, dpkg (and its triggers, e.g. update-ca-certificates) completes the package it is on, as it
    # should (a killed dpkg breaks the package database); it must then exit by itself.
    time.sleep(2)
    leftovers = subprocess.run(["pgrep", "-f", "ansible-playbook.*" + str(inv)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""

    def in_root():
        found = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink("/proc/{}/root".format(pid)) == str(root):
                    with open("/proc/{}/cmdline".format(pid), "rb") as f:
                        found[pid] = f.read().replace(b"\0", b" ").decode(errors="replace")[:120]
            except OSError:
                pass
        return found

    left = in_root()
    package_work = ("dpkg", "apt", "update-ca-certificates", "postinst", "c_rehash", "openssl", "ln ", "readlink",
                    "/bin/sh", "sed", "cat", "rm ", "find")
    assert all(any(w in cmd for w in package_work) for cmd in left.values()), left  # only package work goes on
    deadline = time.monotonic() + 240
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = in_root()
    assert not left, "still running in the root 240 s after the interrupt: {}".format(left)
