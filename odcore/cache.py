"""Where odstack keeps caches, in one place: $ODSTACK_CACHE, else ~/.cache/odstack.

  zoo/          pretrained model archives (`odrun train --pretrained NAME`), sha256-checked
  wheelhouse/   wheels for offline image builds (`provision image build`), per flavour
  collections/  Ansible collections extracted for `provision host`
  bottlenecks/, bench/ ...: whatever a verb documents in its --help

`odrun cache list` shows their sizes; `odrun cache clear [NAME ...]` removes them.
"""
import os
import shutil

ENV = "ODSTACK_CACHE"


def cache_root():
    return os.environ.get(ENV) or os.path.join(os.path.expanduser("~"), ".cache", "odstack")


def cache_dir(name):
    """The cache sub-folder `name` (not created)."""
    return os.path.join(cache_root(), name)


def du(path):
    """Bytes under `path` (files only, symlinks not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def entries():
    """[(name, path, bytes)] of the cache root's sub-folders and files, sorted by name."""
    root = cache_root()
    if not os.path.isdir(root):
        return []
    out = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        out.append((name, path, du(path) if os.path.isdir(path) else os.lstat(path).st_size))
    return out


def clear(names=None):
    """Remove the named cache entries (all when `names` is empty); returns [(name, bytes freed)]."""
    have = {name: (path, size) for name, path, size in entries()}
    chosen = list(names) if names else sorted(have)
    freed = []
    for name in chosen:
        if name not in have:
            continue
        path, size = have[name]
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        freed.append((name, size))
    return freed
