"""Get an Ansible collection without Galaxy.

Galaxy is often unreachable (air-gapped GPU clusters, this project's CI), but every collection of
the community package ships inside PyPI's `ansible` wheel (~55 MB). We download that wheel once
with pip and extract only the collection asked for (community.general is ~10 MB) into a
collections path, instead of installing the whole 545 MB package.
"""
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from odcore import cache
from odcore.cache import cache_root

CACHE = Path(cache_root())
# ansible 12.x is the community package built for ansible-core 2.19 (our pin: <2.20).
ANSIBLE_SPEC = os.environ.get("ODSTACK_ANSIBLE_WHEEL_SPEC", "ansible>=12,<13")


def collections_path():
    return CACHE / "collections"


def installed_version(name, path=None):
    namespace, coll = name.split(".")
    manifest = Path(path or collections_path()) / "ansible_collections" / namespace / coll / "MANIFEST.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text())["collection_info"]["version"]


def _wheel(download_dir):
    wheels = sorted(download_dir.glob("ansible-*.whl"))
    if wheels:
        return wheels[-1]
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                           "-q", "-d", str(download_dir), ANSIBLE_SPEC], capture_output=True, text=True)
    wheels = sorted(download_dir.glob("ansible-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise RuntimeError("pip download {} failed: {}".format(ANSIBLE_SPEC, proc.stderr.strip()[-800:]))
    return wheels[-1]


def ensure_collection(name="community.general", path=None):
    """Install collection `name` under `path` (default ~/.cache/odstack/collections) from the
    `ansible` wheel if it is not there yet; return the collections path to put in
    ANSIBLE_COLLECTIONS_PATH."""
    path = Path(path or collections_path())
    if installed_version(name, path):
        return path
    namespace, coll = name.split(".")
    path.mkdir(parents=True, exist_ok=True)
    cache.mark(path)  # `odrun cache clear` removes only marked entries
    with open(path / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test workers: one extracts, others wait
        if installed_version(name, path):
            return path
        download_dir = CACHE / "pip"
        download_dir.mkdir(parents=True, exist_ok=True)
        cache.mark(download_dir)
        prefix = "ansible_collections/{}/{}/".format(namespace, coll)
        tmp = Path(tempfile.mkdtemp(dir=str(path)))
        try:
            with zipfile.ZipFile(str(_wheel(download_dir))) as whl:
                members = [m for m in whl.namelist() if m.startswith(prefix)]
                if not members:
                    raise RuntimeError("{} is not in {}".format(name, ANSIBLE_SPEC))
                whl.extractall(str(tmp), members)
            dest = path / "ansible_collections" / namespace / coll
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(str(dest), ignore_errors=True)
            os.replace(str(tmp / prefix), str(dest))  # whole collection appears at once
        finally:
            shutil.rmtree(str(tmp), ignore_errors=True)
    return path


if __name__ == "__main__":
    p = ensure_collection(*(sys.argv[1:2] or ["community.general"]))
    print(p, installed_version(sys.argv[1] if len(sys.argv) > 1 else "community.general", p))
