"""Atomic output: write to a temp file beside the target, then rename, so a failed or
interrupted run never leaves a half-written file nor damages a previous good one."""
import contextlib
import hashlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp path in the target's directory; rename it onto `path` only on success."""
    path = str(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file 0600; give it the mode a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text, encoding="utf-8"):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding=encoding) as f:
            f.write(text)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of a file's bytes, read in chunks (the identity of label maps, weights, records)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- a folder replaced as one (issue 22)
STAGED, REPLACED = ".staged-", ".replaced-"  # hidden siblings: .OUT.staged-XXXX/, .OUT.replaced-XXXX/


def _siblings(out_dir, tag):
    import glob
    parent, base = os.path.dirname(out_dir), os.path.basename(out_dir)
    return sorted(glob.glob(os.path.join(parent, "." + glob.escape(base) + tag + "*")))


def _exchange(a, b):
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    import ctypes
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def recover_dir(out_dir):
    """Undo what a kill -9 left around OUT: a two-rename swap cut in the middle leaves the previous
    OUT in .OUT.replaced-XXXX and no OUT (put it back); other siblings of ours are removed.
    Only hidden names of our own making are touched: a user's OUT.old or OUT.partial never."""
    import shutil
    out_dir = os.path.realpath(os.path.abspath(str(out_dir)))
    replaced = [p for p in _siblings(out_dir, REPLACED) if os.path.isdir(p) and not os.path.islink(p)]
    if replaced and not os.path.lexists(out_dir):
        os.replace(replaced.pop(), out_dir)
    for path in _siblings(out_dir, STAGED) + replaced:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)


def publish_dir(stage, out_dir):
    """Make the finished folder `stage` the new `out_dir` as one step: an atomic exchange where the
    kernel has it (a reader sees all-old or all-new, never a mix), else two renames (recover_dir
    puts the old one back if a kill lands between them); the old content is removed after."""
    import shutil
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes it 0700
    if not os.path.lexists(out_dir):
        os.replace(stage, out_dir)
        return
    if _exchange(stage, out_dir):
        shutil.rmtree(stage, ignore_errors=True)  # now the previous content
        return
    import tempfile
    old = tempfile.mkdtemp(prefix="." + os.path.basename(out_dir) + REPLACED, dir=os.path.dirname(out_dir))
    os.rmdir(old)
    os.replace(out_dir, old)
    os.replace(stage, out_dir)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(out_dir):
    """Yield an empty hidden sibling folder to write the whole output into; on success it replaces
    `out_dir` as one (publish_dir); on any error or Ctrl-C it is removed and `out_dir` is untouched.
    Check `out_dir` with odcore.paths.check_output_dir(..., replaces=True) first."""
    import shutil
    import tempfile
    out_dir = os.path.realpath(os.path.abspath(str(out_dir)))  # a symlinked OUT: write where it points
    recover_dir(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix="." + os.path.basename(out_dir) + STAGED, dir=parent)
    try:
        yield stage
        publish_dir(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
