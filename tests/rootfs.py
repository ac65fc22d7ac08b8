"""Cached Debian bookworm root filesystems for tests (host playbooks, `docker import` images).

    from rootfs import bookworm_root_tar, extract_root
    tar = bookworm_root_tar(include=("python3",))   # Path of a cached .tar, built once
    root = extract_root(tar, tmp_path / "root")      # a fresh writable copy

The root is made by `debootstrap --variant=minbase` from the same Debian mirror apt uses on
this machine (first `deb.debian.org`-style URI in /etc/apt/sources.list*; override with
ODSTACK_DEBIAN_MIRROR). Tarballs live in /var/cache/odstack-tests/rootfs/ (override with
ODSTACK_ROOTFS_CACHE) keyed by suite+variant+packages+mirror, so a session builds each one once
(~45 s) and later test runs reuse it. A file lock makes concurrent builders (pytest-xdist,
several engineers' test runs) wait for the first one instead of racing.
"""
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("ODSTACK_ROOTFS_CACHE", "/var/cache/odstack-tests/rootfs"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def debian_mirror():
    """The Debian mirror this machine's apt uses (so tests need no other network)."""
    if os.environ.get("ODSTACK_DEBIAN_MIRROR"):
        return os.environ["ODSTACK_DEBIAN_MIRROR"]
    files = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        # deb822 ("URIs: ...") and one-line ("deb URI suite ...") formats
        for uri in re.findall(r"^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def can_build():
    """(ok, why) for `require`: debootstrap needs root and the debootstrap binary."""
    if os.geteuid() != 0:
        return False, "building a root filesystem needs root (debootstrap, chroot)"
    if not shutil.which("debootstrap"):
        return False, "debootstrap not installed (scripts/setup.sh --system)"
    return True, ""


@contextlib.contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # blocks until the builder holding it is done
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def bookworm_root_tar(include=("python3",), suite="bookworm", variant="minbase",
                      components=("main",)):
    """Path of a cached tarball of a debootstrapped root (built on first use)."""
    mirror = debian_mirror()
    key_src = "|".join([suite, variant, ",".join(sorted(include)), ",".join(components), mirror])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:12]
    name = "{}-{}-{}".format(suite, variant, key)
    tar = CACHE / (name + ".tar")
    if tar.exists():
        return tar
    with _locked(CACHE / (name + ".lock")):
        if tar.exists():  # another process built it while we waited
            return tar
        ok, why = can_build()
        if not ok:
            raise RuntimeError(why)
        work = Path(tempfile.mkdtemp(prefix=name + ".", dir=str(CACHE)))
        try:
            root = work / "root"
            cmd = ["debootstrap", "--variant=" + variant, "--components=" + ",".join(components)]
            if include:
                cmd.append("--include=" + ",".join(include))
            cmd += [suite, str(root), mirror]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                log = root / "debootstrap" / "debootstrap.log"
                detail = log.read_text()[-3000:] if log.exists() else proc.stderr[-3000:]
                raise RuntimeError("debootstrap failed ({}):\n{}".format(proc.returncode, detail))
            # apt lists and the .deb cache are not needed by users of the root: smaller tar
            shutil.rmtree(str(root / "var/cache/apt/archives"), ignore_errors=True)
            (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
            partial = work / "root.tar"
            subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."],
                           check=True)
            os.replace(str(partial), str(tar))  # atomic: readers never see half a tarball
        finally:
            shutil.rmtree(str(work), ignore_errors=True)
    return tar


def extract_root(tar, dest):
    """Unpack a cached root tarball into `dest` (a fresh, writable root) and return it."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-C", str(dest), "--numeric-owner", "-xf", str(tar)], check=True)
    return dest


if __name__ == "__main__":  # build/print the default root: python tests/rootfs.py
    print(bookworm_root_tar())
