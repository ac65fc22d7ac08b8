"""The "outputs never inside inputs" guard, and the path rules that go with it.

One rule for every verb that writes: an output location that *is* an input, *contains* an
input or *lies inside* an input is refused (exit 2, UserError naming both paths and the fix)
before anything is written. Paths are compared after resolving symlinks (`os.path.realpath`),
so `--out link-to-my-data` is caught too; an output that does not exist yet is resolved
through its nearest existing parent.

Also here: `inside(path, roots)` (is a resolved path under one of the roots? used to keep
annotation image paths inside the dataset) and `clean_stale_temps(directory)` (remove the
hidden temp files and folders of our own naming that a kill -9 left behind).

Python 3.6-safe (odcore is copied into the TF 1.15 images).
"""
import os
import shutil

from odcore.errors import UserError

# Names our own atomic writers use: odcore.fileio.atomic_path writes `.NAME.XXXXXXXX.tmp`,
# convert's workers write into `.parts-XXXXXXXX/`. (export's `OUT.partial`/`OUT.old` siblings
# are cleaned by name by export itself: a user's folder may end in .partial.)
TEMP_PREFIX, TEMP_SUFFIX, PARTS_PREFIX = ".", ".tmp", ".parts-"


def real(path):
    """Absolute path with every symlink resolved (works for paths that do not exist yet)."""
    return os.path.realpath(os.path.abspath(os.path.expanduser(str(path))))


def is_within(path, root):
    """True if resolved `path` is `root` or lies inside it."""
    path, root = real(path), real(root)
    if path == root:
        return True
    return path.startswith(root.rstrip(os.sep) + os.sep)


def overlap(output, source):
    """How `output` collides with input `source`: 'is', 'contains', 'inside' or None."""
    out_r, src_r = real(output), real(source)
    if out_r == src_r:
        return "is"
    if is_within(src_r, out_r):
        return "contains"
    if is_within(out_r, src_r):
        return "inside"
    return None


_WORDS = {"is": "is the same location as", "contains": "contains", "inside": "lies inside"}


def check_output(output, inputs, flag="--out", verb=None):
    """Refuse (UserError, exit 2) an output location that is, contains or lies inside an input.

    `inputs`: iterable of (label, path) or paths; None/empty paths are ignored. Call it before
    anything is created or written.
    """
    if not output:
        return
    for entry in inputs:
        label, path = entry if isinstance(entry, tuple) else ("input", entry)
        if not path:
            continue
        how = overlap(output, path)
        if how is None:
            continue
        src = real(path).rstrip(os.sep)
        folder = src if os.path.isdir(src) or how == "inside" else os.path.dirname(src)
        suggestion = os.path.join(os.path.dirname(folder) or os.sep, os.path.basename(folder) + "-out")
        raise UserError(
            "the output {} {} the {} {} (writing there could overwrite or delete it)".format(
                real(output), _WORDS[how], label, src),
            where=flag,
            fix="choose a {} outside {}, e.g. {} {}".format(flag, folder, flag, suggestion) +
                (" ({})".format(verb) if verb else ""))


def inside(path, roots):
    """True if the resolved `path` lies inside (or is) one of the resolved `roots`."""
    return any(is_within(path, r) for r in roots if r)


def _ours(name):
    """Is `name` a temp of our own naming?"""
    if name.startswith(PARTS_PREFIX):
        return True
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX) and len(name) > 5


def stale_temps(directory, keep=()):
    """Temp files/folders of our own naming directly in `directory` (not recursive)."""
    try:
        names = os.listdir(str(directory))
    except OSError:
        return []
    keep = set(real(k) for k in keep)
    return [os.path.join(str(directory), n) for n in sorted(names)
            if _ours(n) and real(os.path.join(str(directory), n)) not in keep]


def clean_stale_temps(directory, keep=(), names=None):
    """Remove temps of our own naming that an interrupted (kill -9) run left in `directory`.

    Safe to call at the start of a run: these names are only ever written by our atomic
    writers, which rename them away on success and delete them on failure, so any that exist
    before the run starts belong to a dead run. `names` restricts the removal to names that
    start with one of these prefixes (e.g. only `.train.record.` temps). Returns the paths removed.
    """
    removed = []
    for path in stale_temps(directory, keep):
        base = os.path.basename(path)
        if names is not None and not any(base.startswith(n) or base.startswith("." + n) for n in names):
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(path)
        except OSError:
            continue
    return removed



def check_writable_dir(path, flag="--out"):
    """An output folder: refuse a path that is an existing file, or whose nearest existing
    folder cannot be written (read-only), before any work starts."""
    path = os.path.abspath(str(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError("{} is a file, not a folder".format(path), where=flag,
                        fix="pass a folder path for {} (it is created if missing)".format(flag))
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if os.path.exists(probe) and not os.path.isdir(probe):
        raise UserError("{} is a file, so {} cannot be created inside it".format(probe, path), where=flag,
                        fix="pass a {} whose parent folders are folders".format(flag))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError("{} is not writable (read-only folder or no permission)".format(probe), where=flag,
                        fix="pass a {} you can write to, or fix the folder's permissions".format(flag))
