"""Benchmark `provision host` on real debootstrapped Debian 12 roots (chroot connection).

    .venv/bin/python bench/host.py [--roots 2] [--keep DIR]

Measures, wall time: building/reusing the cached root tarball, extracting a root, the first run of
the main tags (nouveau, kernel-hold, docker, toolkit: installs docker.io from the Debian mirror),
the second run (must report changed=0), a --check run on a fresh root, and `provision host --help`.
Roots are reached in parallel as one inventory, so --roots shows how the run scales with hosts.

--driver: instead, install the real driver (nvidia-driver + nvidia-kernel-dkms from Debian non-free)
in a root with /proc and /dev bind-mounted (DKMS needs them) and time the DKMS build; prints
`dkms status`. Several minutes; not part of the test suite.
"""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from rootfs import bookworm_root_tar, extract_root  # noqa: E402

INCLUDE = ("python3", "python3-apt", "initramfs-tools")
PROVISION = str(Path(sys.executable).parent / "provision")
ARGS = ["--tags", "nouveau,kernel-hold,docker,toolkit", "-e", "nvidia_container_toolkit_manage_repo=false",
        "-e", "nvidia_container_toolkit_install=false", "--json"]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def provision(inventory, run_dir, *extra):
    proc = subprocess.run([PROVISION, "host", "-i", str(inventory), "--run-dir", str(run_dir)] + ARGS + list(extra),
                          capture_output=True, text=True)
    summary = json.loads(proc.stdout)
    changed = sum(h["changed"] for h in summary["hosts"].values())
    return proc.returncode, changed


def inventory(base, name, roots):
    path = base / (name + ".ini")
    lines = ["[roots]"] + ["{} ansible_host={}".format(r.name, r) for r in roots]
    lines += ["[roots:vars]", "ansible_connection=community.general.chroot", "ansible_python_interpreter=/usr/bin/python3"]
    path.write_text("\n".join(lines) + "\n")
    return path


def driver(base):
    """Real driver install + DKMS build in one root; /proc, /dev, /dev/pts mounted for the run."""
    tar = bookworm_root_tar(include=INCLUDE)
    root = extract_root(tar, base / "root-driver")
    (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (root / "usr/sbin/policy-rc.d").chmod(0o755)
    inv = inventory(base, "driver", [root])
    mounts = [(["-t", "proc", "proc"], root / "proc"), (["--bind", "/dev"], root / "dev"),
              (["--bind", "/dev/pts"], root / "dev/pts")]
    done = []
    try:
        for opts, target in mounts:
            subprocess.run(["mount"] + opts + [str(target)], check=True)
            done.append(target)
        for tags in ("driver-repo", "driver"):
            t = time.perf_counter()
            proc = subprocess.run([PROVISION, "host", "-i", str(inv), "--tags", tags, "--json",
                                   "--run-dir", str(base / tags)], capture_output=True, text=True)
            summary = json.loads(proc.stdout)
            print("| --tags {} | {:.1f} s | exit {} | changed {} |".format(
                tags, time.perf_counter() - t, proc.returncode, summary["hosts"]["root-driver"]["changed"]))
            for f in summary["failures"]:
                print(f["task"], f["msg"][-1500:])
        print(subprocess.run(["chroot", str(root), "dkms", "status"], capture_output=True, text=True).stdout)
        t = time.perf_counter()
        proc = subprocess.run([PROVISION, "host", "-i", str(inv), "--tags", "driver", "--json",
                               "--run-dir", str(base / "again")], capture_output=True, text=True)
        summary = json.loads(proc.stdout)
        print("| second --tags driver | {:.1f} s | exit {} | changed {} |".format(
            time.perf_counter() - t, proc.returncode, summary["hosts"]["root-driver"]["changed"]))
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--roots", type=int, default=2)
    ap.add_argument("--driver", action="store_true", help="real driver install + DKMS build in one root")
    ap.add_argument("--keep", help="keep roots here instead of a temp dir")
    args = ap.parse_args()
    base = Path(args.keep or tempfile.mkdtemp(prefix="bench-host-"))
    if args.driver:
        driver(base)
        return
    results = {}
    results["root tarball (cached after first build)"], tar = timed(lambda: bookworm_root_tar(include=INCLUDE))

    def make(name):
        root = extract_root(tar, base / name)
        (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
        (root / "usr/sbin/policy-rc.d").chmod(0o755)
        return root

    results["extract one root"], first = timed(lambda: make("root-0"))
    roots = [first] + [make("root-{}".format(i)) for i in range(1, args.roots)]
    inv = inventory(base, "main", roots)
    results["first run, {} roots (installs docker.io)".format(args.roots)], r1 = timed(lambda: provision(inv, base / "r1"))
    results["second run (idempotent)"], r2 = timed(lambda: provision(inv, base / "r2"))
    fresh = inventory(base, "fresh", [make("root-fresh")])
    results["--check on a fresh root"], r3 = timed(lambda: provision(fresh, base / "r3", "--check"))
    results["provision host --help"], _ = timed(lambda: subprocess.run([PROVISION, "host", "--help"], capture_output=True))
    assert r1[0] == 0 and r2 == (0, 0) and r3[0] == 0, (r1, r2, r3)
    print("| what | wall time |\n| --- | --- |")
    for what, secs in results.items():
        print("| {} | {:.1f} s |".format(what, secs))
    print("\nchanged: first run {}, second run {}, check mode would change {}".format(r1[1], r2[1], r3[1]))
    from common import ratio, report
    report("host", {"seconds": results, "changed": {"first": r1[1], "second": r2[1], "check": r3[1]}},
           [ratio("idempotent second run / first run (wall time)",
                  results["second run (idempotent)"] / results["first run, {} roots (installs docker.io)".format(args.roots)],
                  higher_is_better=False)])
    if not args.keep:
        shutil.rmtree(str(base), ignore_errors=True)


if __name__ == "__main__":
    main()
