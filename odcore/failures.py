"""Explained failures: when a verb of either CLI fails, the explain knowledge base is applied to
what was caught and the cause and fix are printed under the error (odcore.cli.run calls these).

  crash(args, exc)     an unexpected exception: one error line, the explanation, and the traceback
                       in a log file (or on stderr with -v)
  failed(args, rc)     a verb that returned non-zero: the logs it wrote during this run (the OD API's
                       own error text lands there, see odrun.ui.quiet) are scanned for a known failure
  note_log(path)       a verb (or odrun.ui.quiet) names a log file to scan if the verb fails
Python 3.6-safe.
"""
import glob
import os
import sys
import tempfile
import time
import traceback

from odcore import explain

STARTED = time.time()
_LOGS = []
TAIL_BYTES = 4 << 20  # the end of a log holds the fatal error; cap what is scanned


def note_log(path):
    if path and str(path) not in _LOGS:
        _LOGS.append(str(path))


def _say(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _verbose(args):
    return bool(getattr(args, "verbose", False)) or os.environ.get("ODSTACK_VERBOSE") == "1"


def _traceback_file(prog, text):
    """Write the traceback to a log file and return its path (None when nothing is writable)."""
    try:
        fd, path = tempfile.mkstemp(prefix="{}-error-".format(prog), suffix=".log")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return path
    except (OSError, IOError):
        return None


def print_explanation(match):
    if match:
        _say(explain.render_text(match))


def crash(args, exc, prog="odstack"):
    """Report an unexpected exception the way a UserError is reported, plus what the knowledge
    base knows about it. Returns the exit code (1)."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    _say("error: {}{}".format(type(exc).__name__, ": " + first if first else ""))
    print_explanation(explain.explain_text(tb))
    if _verbose(args):
        _say(tb.rstrip())
    else:
        path = _traceback_file(prog, tb)
        if path:
            _say("  traceback: {} (or rerun with -v)".format(path))
    return 1


def _recent_logs(args):
    paths = list(_LOGS)
    for attr in ("workdir", "out", "model"):
        base = getattr(args, attr, None)
        if base and os.path.isdir(str(base)):
            paths.extend(glob.glob(os.path.join(str(base), "logs", "*.log")))
    fresh = []
    for p in paths:
        try:
            if os.path.isfile(p) and os.path.getmtime(p) >= STARTED - 1:
                fresh.append(p)
        except OSError:
            continue
    return sorted(set(fresh))


def _tail(path):
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            return fh.read().decode("utf-8", "replace")
    except (OSError, IOError):
        return ""


def failed(args, rc):
    """A verb returned `rc` != 0 without raising: explain the logs it wrote during this run."""
    if rc in (0, 2, 130):  # 2: a UserError already named the input and the fix
        return
    for path in _recent_logs(args):
        match = explain.explain_text(_tail(path))
        if match:
            _say("  in {}:".format(path))
            print_explanation(match)
            return
