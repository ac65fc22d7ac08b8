"""`pip install odstack` outside a checkout: build the sdist and, from it, the wheel; install the
wheel into a fresh virtualenv and run the commands from cwd=/tmp, as a new user would.

Kept fast and offline: the sdist and wheel are built with setuptools' own PEP 517 hooks
(`setuptools.build_meta`, no isolated build env to download), and the new venv sees this venv's
third-party packages through a .pth line (a path line is not scanned for .pth files, so this venv's
editable odstack finder is NOT activated there): odstack itself comes from the wheel only, which
the first test asserts. The file-list test fails when a data file of the checkout (the
top-level compat_matrix.yaml, playbooks/, images/, requirements/, and the packages' data/) is
missing from the wheel.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, have_module, require
from rootfs import bookworm_root_tar, can_build, extract_root

sys.path.insert(0, str(ROOT))
from odcore.install import SHARED  # noqa: E402 - the one list setup.py copies into odcore/share

SHARE = "odcore/share/"
PACKAGES = ("odrun", "odcore", "provision")
TMP = Path("/tmp")


def _hook(hook, src, out):
    """Run a setuptools PEP 517 hook in `src`; returns the built file's path."""
    code = "import sys; from setuptools import build_meta as b; print(b.{}(sys.argv[1]))".format(hook)
    proc = subprocess.run([sys.executable, "-c", code, str(out)], cwd=str(src), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / proc.stdout.strip().splitlines()[-1]


def _source_files():
    """The tree a fresh clone would have (tracked files, plus new files not ignored yet)."""
    proc = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=str(ROOT),
                          capture_output=True, text=True, check=True)
    return [f for f in proc.stdout.splitlines() if (ROOT / f).is_file()]


def checkout_data_files():
    """Wheel paths every data file of the checkout must have: top-level shared data under
    odcore/share/, and the packages' non-Python files (their README.md docs aside)."""
    want = set()
    for f in _source_files():
        top = f.split("/")[0]
        if top in SHARED:
            want.add(SHARE + f)
        elif top in PACKAGES and not f.endswith((".py", ".md")):
            want.add(f)
    return want


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for f in _source_files():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(str(ROOT / f), str(src / f))
    (base / "dist").mkdir()
    sdist = _hook("build_sdist", src, base / "dist")
    with tarfile.open(str(sdist)) as tar:
        tar.extractall(str(base / "unpacked"))
    [from_sdist] = list((base / "unpacked").iterdir())
    wheel = _hook("build_wheel", from_sdist, base / "dist")  # the wheel pip would build from the sdist
    return {"base": base, "sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def venv(built):
    env_dir = built["base"] / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "odstack-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                           "-q", str(built["wheel"])], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env_dir


def cli(venv, prog, *args, check=0, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ODSTACK_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run([str(venv / "bin" / prog)] + [str(a) for a in args], cwd=str(TMP), env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert check is None or proc.returncode == check, "{} {}: exit {} != {}\n{}\n{}".format(
        prog, " ".join(map(str, args)), proc.returncode, check, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def test_wheel_and_sdist_carry_every_data_file(built):
    names = set(zipfile.ZipFile(str(built["wheel"])).namelist())
    missing = sorted(checkout_data_files() - names)
    assert not missing, "data files missing from the wheel: {}".format(missing)
    assert SHARE + "compat_matrix.yaml" in names and SHARE + "images/cpu/Dockerfile" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    with tarfile.open(str(built["sdist"])) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    for name in SHARED:
        assert name in members, name + " missing from the sdist"


def test_odstack_comes_from_the_wheel(venv):
    py = venv / "bin" / "python"
    out = subprocess.run([str(py), "-c", "import provision, odrun, odcore, odcore.install as i; "
                          "print(provision.__file__); print(odrun.__file__); print(i.mode())"],
                         cwd=str(TMP), capture_output=True, text=True, check=True).stdout.split()
    for path in out[:2]:
        assert path.startswith(str(venv) + os.sep), path
    assert out[2] == "wheel"
    # a missing TF / OD API names the pip lines of this install (from the wheel's requirements/)
    fix = subprocess.run([str(py), "-c", "from odcore.install import tf_fix; print(tf_fix())"], cwd=str(TMP),
                         capture_output=True, text=True, check=True).stdout
    assert "pip install 'odstack[tf]'" in fix and "tf-models-official==" in fix and "scripts/setup.sh" not in fix


def test_provision_commands_from_tmp(venv, tmp_path):
    assert cli(venv, "provision", "--version").stdout.strip().startswith("provision ")
    assert cli(venv, "odrun", "--version").stdout.strip().startswith("odrun ")
    assert "1.15" in cli(venv, "provision", "matrix", "show", "tf", "1.15").stdout
    bad = json.loads(cli(venv, "provision", "matrix", "check", "--tf", "1.15", "--cuda", "11.2", "--json",
                         check=1).stdout)
    assert bad["ok"] is False and {p["component"] for p in bad["problems"]} == {"cuda"}
    rec = json.loads(cli(venv, "provision", "matrix", "recommend", "--cc", "6.1", "--json").stdout)
    assert rec["flavor"] == "tf1.15-gpu"
    doc = cli(venv, "provision", "doctor", "--no-tf", "--json", check=None)
    assert doc.returncode in (0, 1), doc.stderr
    assert {c["section"] for c in json.loads(doc.stdout)["checks"]} >= {"os", "cpu"}
    plan = json.loads(cli(venv, "provision", "image", "build", "cpu", "--dry-run", "--wheelhouse", "none",
                          "--json").stdout)
    assert plan["dockerfile"].startswith(str(venv)) and plan["tag"] == "odstack:cpu"
    files = set(plan["context_files"])
    assert {"images/cpu/Dockerfile", "images/cpu/requirements.lock", "images/common/odrun.sh", "images/common/install-odstack.sh",
            "odrun/cli.py", "odcore/errors.py"} <= files
    assert not [f for f in files if f.startswith("odcore/share")]


def test_explain_from_tmp(venv):
    ex = json.loads(cli(venv, "provision", "explain", "--json",
                        "Failed to initialize NVML: Driver/library version mismatch").stdout)
    assert ex["matches"][0]["id"] == "nvml-version-mismatch"


def test_odrun_from_tmp(venv, tmp_path):
    assert "convert" in cli(venv, "odrun", "--help").stdout
    from odrun.tasks.detect.synth import make_voc

    make_voc(str(tmp_path / "voc"), 6)
    out = json.loads(cli(venv, "odrun", "convert", tmp_path / "voc", "--out", tmp_path / "data", "--json").stdout)
    assert out["images"]["total"] == 6
    assert (tmp_path / "data" / "label_map.pbtxt").exists() and (tmp_path / "data" / "train.record").exists()


@pytest.mark.ansible
def test_host_check_against_a_debootstrapped_root(venv, tmp_path):
    ok, why = can_build()
    require(ok, why)
    require(have_module("ansible_runner"), "ansible-runner not installed (pip install -e '.[host]')")
    root = extract_root(bookworm_root_tar(include=("python3", "python3-apt", "initramfs-tools")), tmp_path / "root")
    guard = root / "usr/sbin/policy-rc.d"  # the standard chroot guard: never start services
    guard.write_text("#!/bin/sh\nexit 101\n")
    guard.chmod(0o755)
    inv = tmp_path / "roots.ini"
    inv.write_text("[roots]\nroot ansible_host={}\n[roots:vars]\nansible_connection=community.general.chroot\n"
                   "ansible_python_interpreter=/usr/bin/python3\n".format(root))
    proc = cli(venv, "provision", "host", "--inventory", inv, "--check", "--tags", "nouveau", "--json",
               "--run-dir", tmp_path / "run", timeout=600)
    summary = json.loads(proc.stdout)
    assert summary["check"] is True and summary["hosts"]["root"]["failed"] == 0
    assert summary["hosts"]["root"]["changed"] >= 1
    assert not list((root / "etc" / "modprobe.d").glob("*nouveau*"))  # check mode wrote nothing
    shutil.rmtree(str(root), ignore_errors=True)
