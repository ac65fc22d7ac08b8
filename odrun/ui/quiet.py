"""Quiet by default: library noise goes to RUN/logs/VERB.log, the terminal keeps ours.

What TensorFlow and friends print, and where it goes while a verb runs (`session`):

- TF's C++ logging (oneDNN/cuda banners, `I tensorflow/...`, `W ...`) writes to file
  descriptor 2: fd 2 is pointed (dup2) at the log file, so C++ and subprocesses land there.
- TF's Python logger, absl, `warnings` (deprecations) and pycocotools' prints write to
  sys.stderr / sys.stdout: sys.stderr is the log file during the verb, and `library_stdout()`
  sends a noisy call's prints there too.
- Ours: progress bars, summaries and `--json` go to sys.stdout (untouched); messages for the
  terminal go to `terminal()` (the real stderr). A UserError or a traceback is printed after
  the session has restored fd 2 and sys.stderr, so real errors always reach the terminal,
  followed by where the log is.

`-v` / `--verbose` (or ODRUN_VERBOSE=1) turns all of it off: the raw stream, as before.
The log keeps everything: TF_CPP_MIN_LOG_LEVEL is 0 (all C++ levels) unless the user set it.
"""
import contextlib
import io
import logging
import os
import sys
import tempfile
import time

from odcore.paths import check_output_file

ENV_VERBOSE = "ODRUN_VERBOSE"
LOGS = "logs"
# verb -> the argparse dest naming the directory whose logs/ folder gets VERB.log; None: no output
# folder, a temp file the verb names (serve: its own lines, access log included, stay on the terminal
# through terminal(); TFLite's XNNPACK line and TF's grappler warnings go to the log)
LOG_DIR_ARG = {"train": "workdir", "eval": "workdir", "export": "workdir", "demo": "workdir",
               "detect": "out", "predict": "out", "convert": "out", "serve": None}
# verb -> (the argparse dest of its --log FILE, the dest of the input folder FILE must not lie in):
# a verb with no output folder lets the user name its log (default: the temp file above)
LOG_FILE_ARG = {"serve": ("log", "model")}
# verbs that replace their whole output folder at the end (odcore.fileio.staged_dir): their log is
# written to a temp file and moved into OUT/logs/ after the swap (a log opened inside OUT would be
# swapped out with the old content)
REPLACED = {"convert"}

_STATE = {"terminal": None, "log": None}


def add_flag(parser):
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's, absl's and pycocotools' raw output on the terminal "
                             "(default: they go to the run's logs/<verb>.log)")


def verbose(args=None):
    return bool(getattr(args, "verbose", False)) or os.environ.get(ENV_VERBOSE, "") not in ("", "0")


def terminal():
    """The real stderr (the terminal), also while a session sends sys.stderr to the log."""
    return _STATE["terminal"] or sys.stderr


def log_path():
    """The log file of the running session, or None."""
    return _STATE["log"]


def active():
    return _STATE["log"] is not None


@contextlib.contextmanager
def library_stdout():
    """Send a library's prints (pycocotools' summary) to the log while quiet, else to stderr
    (stdout is for our table / --json either way)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _log_file(base, verb, log_file=None):
    """LOG_FILE (--log) when given; BASE/logs/VERB.log when BASE exists, else a temp file moved there
    at the end (a verb that fails on bad input must not create its output directory just for a log)."""
    if log_file:
        path = os.path.abspath(log_file)
        _STATE["made"] = [] if os.path.exists(path) else [path]  # ours only if this run created it
        return path, None
    if base and os.path.isdir(base) and verb not in REPLACED:
        folder = os.path.join(base, LOGS)
        made = [p for p in (folder, os.path.join(folder, verb + ".log")) if not os.path.exists(p)]
        os.makedirs(folder, exist_ok=True)
        _STATE["made"] = made  # removed again if the verb stops on bad input (nothing written)
        return os.path.join(folder, verb + ".log"), None
    fd, tmp = tempfile.mkstemp(prefix="odrun-{}-".format(verb), suffix=".log")
    os.close(fd)
    final = os.path.join(base, LOGS, verb + ".log") if base else None
    if final is None:
        _STATE["made"] = [tmp]  # no folder to move it to: removed again if the verb stops on bad input
    return tmp, final


def _settle(path, final):
    """Move a temp log under its run directory if the verb created it; -> the log's path."""
    if not final or not os.path.isdir(os.path.dirname(os.path.dirname(final))):
        return path
    os.makedirs(os.path.dirname(final), exist_ok=True)
    with open(path, "rb") as src, open(final, "ab") as dst:
        dst.write(src.read())
    os.unlink(path)
    return final


def _route_python_logging(stream):
    """Python's logging and warnings into `stream`: handlers made before the session (absl's,
    TF's if already imported) point at the old sys.stderr, so redirect them too."""
    logging.captureWarnings(True)
    warn = logging.getLogger("py.warnings")  # (with no handler of its own Python drops them)
    if not any(getattr(h, "stream", None) is stream for h in warn.handlers):
        warn.addHandler(logging.StreamHandler(stream))
    saved = []
    for logger in [logging.getLogger()] + [logging.getLogger(n) for n in ("tensorflow", "absl", "py.warnings")]:
        for h in logger.handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.__stderr__, sys.stderr):
                saved.append((h, h.stream))
                _set_stream(h, stream)
    return saved


def _set_stream(handler, stream):
    if hasattr(handler, "setStream"):
        handler.setStream(stream)
    else:  # Python 3.6
        handler.stream = stream


def _unhook(log, stderr):
    """Handlers created during the session (TF's logger takes sys.stderr when first asked for)
    would write to the closed log afterwards: point them back at stderr."""
    logging.captureWarnings(False)
    warn = logging.getLogger("py.warnings")
    for h in list(warn.handlers):
        if getattr(h, "stream", None) is log:
            warn.removeHandler(h)
    loggers = [logging.getLogger()] + [l for l in logging.Logger.manager.loggerDict.values()
                                       if isinstance(l, logging.Logger)]
    for logger in loggers:
        for h in logger.handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is log:
                _set_stream(h, stderr)


@contextlib.contextmanager
def session(verb, base, enabled=True, log_file=None):
    """Run a verb with library noise in BASE/logs/VERB.log, or in LOG_FILE (see the module docstring)."""
    if not enabled or active():
        yield None
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")  # everything into the log
    path, final = _log_file(base, verb, log_file)
    log = open(path, "a", buffering=1, encoding="utf-8", errors="replace")
    log.write("# odrun {} {}\n".format(verb, time.strftime("%Y-%m-%d %H:%M:%S")))
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fd = os.dup(2)
    terminal_stream = io.TextIOWrapper(io.FileIO(os.dup(saved_fd), "w"), encoding=sys.stderr.encoding or "utf-8",
                                       errors="replace", line_buffering=True)
    saved_stderr = sys.stderr
    os.dup2(log.fileno(), 2)
    sys.stderr = log
    _STATE.update(terminal=terminal_stream, log=path)
    handlers = _route_python_logging(log)
    failed = None
    try:
        yield path
    except (KeyboardInterrupt, SystemExit):
        if verb in REPLACED:  # the output folder stayed all-old: it gets no log of this run either
            failed = False
        raise
    except Exception as exc:
        from odcore.errors import UserError
        failed = not isinstance(exc, UserError)  # bad input needs no library log
        raise
    finally:
        log.flush()
        for h, stream in handlers:
            _set_stream(h, stream)
        _unhook(log, saved_stderr)
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        sys.stderr = saved_stderr
        terminal_stream.close()
        _STATE.update(terminal=None, log=None)
        log.close()
        if failed is False:  # bad input: leave no log behind in the user's folder
            _forget(path, final, log_file)
        path = _settle(path, final) if failed is not False else path
        if failed:
            sys.stderr.write("library output (TensorFlow, absl): {}\n".format(path))
            _print_tail(path)


def _forget(path, final, log_file=None):
    """Remove the log (and a logs/ folder) this session created, for a verb refused on bad input."""
    made = _STATE.pop("made", None) or []
    if final is not None and not log_file:  # a temp log outside the (missing) base
        made = [path]
    for p in reversed(made):
        try:
            os.rmdir(p) if os.path.isdir(p) else os.unlink(p)
        except OSError:
            pass


def _print_tail(path, lines=8):
    """The last error-looking lines of the log: TF's C++ `E`/`F` lines often name the cause."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().splitlines()
    except OSError:
        return
    picked = [l for l in text if l[:1] in ("E", "F") and " " in l[:40] or "Error" in l][-lines:]
    for line in picked:
        sys.stderr.write("  | " + line[:300] + "\n")


def wrap(verb, func):
    """A verb's `func` run inside a session (what odrun.cli does for every verb)."""
    def run(args):
        dest = LOG_DIR_ARG.get(verb)
        base = getattr(args, dest, None) if dest else None
        enabled = not verbose(args) and verb in LOG_DIR_ARG
        log_file = _checked_log_file(verb, args) if enabled else None
        with session(verb, base, enabled=enabled, log_file=log_file):
            return func(args)
    run.__wrapped__ = func
    return run


def _checked_log_file(verb, args):
    """The verb's --log FILE, refused (exit 2, before anything is opened) where odcore.paths'
    output-file guard refuses it: inside the input folder, a folder, a symlink, a missing folder."""
    dest, input_dest = LOG_FILE_ARG.get(verb, (None, None))
    path = getattr(args, dest, None) if dest else None
    if path:
        inputs = [("input folder (--{})".format(input_dest), getattr(args, input_dest))] \
            if getattr(args, input_dest, None) else []
        check_output_file(path, inputs, flag="--" + dest)
    return path


def install(parser):
    """-v on every verb of `parser`, and every verb's func wrapped in a session."""
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb, sub in action.choices.items():
                add_flag(sub)
                func = sub.get_default("func")
                if func is not None:
                    sub.set_defaults(func=wrap(verb, func))
