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
import re
import shutil

from odcore.errors import UserError

# Names our own atomic writers use: odcore.fileio.atomic_path writes `.NAME.XXXXXXXX.tmp`,
# convert's workers write into `.parts-XXXXXXXX/`. (export's `OUT.partial`/`OUT.old` siblings
# are cleaned by name by export itself: a user's folder may end in .partial.)
TEMP_PREFIX, TEMP_SUFFIX, PARTS_PREFIX = ".", ".tmp", ".parts-"
LOGS = "logs"  # RUN/logs, OUT/logs: where odrun.ui.quiet puts a verb's log (ours in any output folder)


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


# mkstemp's names: `.NAME.` + 8 of [a-z0-9_] + `.tmp` (6 or more accepted: older versions' temps).
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{6,}\.tmp$")


def _ours(name):
    """Is `name` a temp of our own naming? (`.my-notes.tmp`, a user's, is not.)"""
    if name.startswith(PARTS_PREFIX):
        return True
    return bool(_TEMP_NAME.match(name))


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


# ---------------------------------------------------------------- the output guard (issue 22)
# What marks a folder as an earlier output of a verb (the file that verb always writes, and the
# keys that file holds): a non-empty output folder that is not one of these is refused, never
# overwritten nor deleted. Checked by content, so a user's folder that happens to hold a file of
# that name is still refused.
PREVIOUS = {
    "export": ("metadata.json", ("classes",)),     # odrun export (detector and classifier)
    "convert": ("summary.json", ("classes",)),     # odrun convert (detect, segment, classify)
    "detect": ("detections.json", None),           # odrun detect --out (a JSON list)
    "predict": ("predictions.json", None),         # odrun predict --out / detect on a classifier
}
VERB_OF = {"export": "odrun export", "convert": "odrun convert", "detect": "odrun detect",
           "predict": "odrun predict"}


def _read_json(path):
    import json
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_previous_output(folder, kind):
    """True if `folder` is an earlier output of `kind` (see PREVIOUS)."""
    name, keys = PREVIOUS[kind]
    path = os.path.join(str(folder), name)
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    data = _read_json(path)
    if keys is None:
        return isinstance(data, list)
    return isinstance(data, dict) and all(k in data for k in keys)


def known_entries(folder, kind):
    """The names an earlier output of `kind` wrote (None: it does not say)."""
    name, _keys = PREVIOUS[kind]
    data = _read_json(os.path.join(str(folder), name))
    if not isinstance(data, dict):
        return None
    if kind == "export" and isinstance(data.get("files"), list):
        return set(data["files"]) | {name}
    listed = data.get("outputs") or data.get("files")  # detect/segment convert; classify convert
    if kind == "convert" and isinstance(listed, dict):
        found = {name, "report.png"}
        for value in listed.values():
            for p in (value if isinstance(value, list) else [value]):
                found.add(os.path.basename(str(p)))
        return found
    return None


def _listing(names, limit=5):
    names = sorted(names)
    return ", ".join(names[:limit]) + (" and {} more".format(len(names) - limit) if len(names) > limit else "")


def check_replaceable(output, kind, flag="--out", replaces=False):
    """A non-empty `output` folder must be an earlier output of `kind`; when the verb replaces the
    whole folder (`replaces`), it must also hold nothing that output did not write."""
    output = os.path.abspath(str(output))
    if not os.path.isdir(output):
        return
    names = [n for n in os.listdir(output) if not _ours(n) and n != LOGS]
    if not names:
        return
    verb = VERB_OF[kind]
    if not is_previous_output(output, kind):
        raise UserError(
            "{} already holds files ({}) and is not an earlier `{}` output (no valid {} in it); "
            "nothing was written".format(output, _listing(names), verb, PREVIOUS[kind][0]),
            where=flag, fix="choose a new or empty {0}, e.g. {0} {1}, or move those files out".format(
                flag, output.rstrip(os.sep) + "-" + kind))
    known = known_entries(output, kind) if replaces else None
    foreign = [n for n in names if known is not None and n not in known]
    if foreign:
        raise UserError(
            "{} is an earlier `{}` output but also holds files it did not write ({}); replacing it would "
            "delete them; nothing was written".format(output, verb, _listing(foreign)),
            where=flag, fix="move those files out of {}, or choose another {}".format(output, flag))


def check_output_dir(output, inputs, flag="--out", verb=None, kind=None, replaces=False):
    """THE output guard for a folder every verb writes (see docs/safe-io.md, "## Outputs"):

    1. it is not, does not contain and does not lie inside an input (check_output);
    2. it is a folder we can write, or can be created (check_writable_dir);
    3. when not empty, it is an earlier output of the same `kind`, and (`replaces`: the verb
       swaps the whole folder) holds nothing else (check_replaceable).
    Call it before anything is created or written; UserError (exit 2) names the path and the fix."""
    check_output(output, inputs, flag=flag, verb=verb)
    check_writable_dir(output, flag=flag)
    if kind:
        check_replaceable(output, kind, flag=flag, replaces=replaces)


def check_output_file(path, inputs, flag):
    """The same guard for an output FILE (a log, an access log, a report): not an input, not inside
    one, not a folder, not a symlink nor a device/FIFO, in a folder we can write. (For `odrun serve
    --access-log FILE`: inputs = [("model folder (--model)", EXPORT_DIR)].)"""
    check_output(path, inputs, flag=flag)
    path = os.path.abspath(str(path))
    if os.path.islink(path) or (os.path.exists(path) and not os.path.isfile(path)):
        raise UserError("{} is {}, not a regular file".format(
            path, "a symlink" if os.path.islink(path) else "a folder or a device"), where=flag,
            fix="pass the path of a regular file (created if missing) for {}".format(flag))
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise UserError("the folder {} does not exist".format(parent), where=flag,
                        fix="create it first (mkdir -p {}) or pass a file in an existing folder".format(parent))
    check_writable_dir(parent, flag=flag)
