"""Where odstack keeps caches, in one place: $ODSTACK_CACHE, else ~/.cache/odstack.

  zoo/          pretrained model archives (`odrun train --pretrained NAME`), sha256-checked
  wheelhouse/   wheels for offline image builds (`provision image build`), per flavour
  collections/  Ansible collections extracted for `provision host`
  bottlenecks/, bench/ ...: whatever a verb documents in its --help

Every entry odstack creates goes through `make_dir(name)`, which writes the marker file
MARKER inside it: `odrun cache clear` removes only entries holding that marker (a regular file
in a real folder, not through a symlink), so a cache root pointed at a project folder, or a
shared folder, keeps everything odstack did not put there (issue 22).

`odrun cache list` shows their sizes; `odrun cache clear [NAME ...]` removes them.
"""
import os
import shutil

ENV = "ODSTACK_CACHE"
MARKER = ".odstack-cache"  # written by make_dir; its text says what it is for a reader who finds it
_MARKER_TEXT = "made by odstack; `odrun cache clear` removes this folder (and only folders with this file)\n"


def cache_root():
    return os.environ.get(ENV) or os.path.join(os.path.expanduser("~"), ".cache", "odstack")


def cache_dir(name):
    """The cache sub-folder `name` (not created: make_dir creates it with its marker)."""
    return os.path.join(cache_root(), name)


def make_dir(name):
    """Create the cache entry `name` (if missing) with its marker; returns its path. Every cache
    writer calls this (or `mark`) before writing into the entry."""
    path = cache_dir(name)
    os.makedirs(path, exist_ok=True)
    _write_marker(path)
    return path


def mark(path):
    """`path` (created by the caller) lies in the cache root: mark the root's entry holding it as
    ours. A path outside the root (a --wheelhouse DIR of the user's) is left alone."""
    root, path = os.path.abspath(cache_root()), os.path.abspath(str(path))
    if not path.startswith(root.rstrip(os.sep) + os.sep):
        return
    top = os.path.join(root, os.path.relpath(path, root).split(os.sep)[0])
    if os.path.isdir(top) and not os.path.islink(top):
        _write_marker(top)


def _write_marker(folder):
    marker = os.path.join(folder, MARKER)
    if not os.path.lexists(marker):
        with open(marker, "w", encoding="utf-8") as f:
            f.write(_MARKER_TEXT)


def root_link():
    """(root, resolved) when the cache root is (or lies under) a symlink, else None."""
    root = os.path.abspath(cache_root())
    resolved = os.path.realpath(root)
    return (root, resolved) if resolved != root else None


def is_ours(path):
    """An entry odstack made: a real folder (not a symlink) holding the marker as a regular file."""
    marker = os.path.join(path, MARKER)
    return (os.path.isdir(path) and not os.path.islink(path)
            and os.path.isfile(marker) and not os.path.islink(marker))


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


def entries(ours=True):
    """[(name, path, bytes)] of the cache root's entries, sorted by name: those odstack made
    (`ours`), or the others (`ours=False`: a user's files, entries without the marker)."""
    root = cache_root()
    if not os.path.isdir(root):
        return []
    out = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if is_ours(path) != ours:
            continue
        size = du(path) if os.path.isdir(path) and not os.path.islink(path) else os.lstat(path).st_size
        out.append((name, path, size))
    return out


def clear(names=None):
    """Remove the named cache entries odstack made (all of ours when `names` is empty); entries
    without the marker are never removed. Returns [(name, bytes freed)]."""
    have = {name: (path, size) for name, path, size in entries()}
    chosen = list(names) if names else sorted(have)
    freed = []
    for name in chosen:
        if name not in have:
            continue
        path, size = have[name]
        if is_ours(path):  # checked again right before the removal
            shutil.rmtree(path)
            freed.append((name, size))
    return freed
