"""Progress for the long stages: rich bars and spinners on a terminal; when stdout is not a
terminal (CI, `tee`, `nohup`, a pipe) periodic plain lines instead (step, loss, steps/s, ETA every
ODRUN_PROGRESS_EVERY seconds, default 10), so a piped run is never silent for minutes.

- StepProgress: train steps (first step = building the model + tracing: shown as such).
- ItemProgress: n/N items (detect images).
- status(text): a spinner (terminal) or start/tick/done lines (pipe) around one long call
  (loading the SavedModel, writing the export, evaluating).
"""
import contextlib
import os
import sys
import threading
import time

from odrun.ui import quiet

ENV_EVERY = "ODRUN_PROGRESS_EVERY"  # seconds between plain lines
ENV_MODE = "ODRUN_PROGRESS"  # "plain" or "rich" forces a mode; default: rich on a terminal
DEFAULT_EVERY = 10.0


def plain():
    """True when progress should be plain periodic lines (stdout is not a terminal)."""
    mode = os.environ.get(ENV_MODE, "").lower()
    if mode in ("plain", "rich"):
        return mode == "plain"
    return not (hasattr(sys.stdout, "isatty") and sys.stdout.isatty())


def every():
    try:
        return max(float(os.environ.get(ENV_EVERY, DEFAULT_EVERY)), 0.0)
    except ValueError:
        return DEFAULT_EVERY


def clock(seconds):
    """0:01:23 (the ETA / elapsed format of rich's columns)."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-:--:--"
    seconds = int(round(seconds))
    return "{}:{:02d}:{:02d}".format(seconds // 3600, seconds // 60 % 60, seconds % 60)


def _say(text, stream=None):
    stream = stream or sys.stdout
    stream.write(text + "\n")
    stream.flush()


class Ticker(object):
    """A daemon thread printing `message(elapsed)` every `every()` seconds until stopped."""

    def __init__(self, message, stream=None):
        self.message, self.stream = message, stream
        self.stop_event = threading.Event()
        self.started = time.time()
        self.thread = None

    def start(self):
        if every() > 0:
            self.thread = threading.Thread(target=self._loop, name="odrun-progress", daemon=True)
            self.thread.start()
        return self

    def _loop(self):
        while not self.stop_event.wait(every()):
            _say(self.message(time.time() - self.started), self.stream)

    def stop(self):
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(1.0)


class status(object):
    """`with status("loading the SavedModel"):` a spinner on a terminal; on a pipe a line at the
    start, one every ODRUN_PROGRESS_EVERY s while it runs, and one with its time at the end.
    Written to the terminal's stderr (quiet.terminal()) unless `stream` is given."""

    def __init__(self, text, enabled=True, stream=None):
        self.text, self.enabled, self.stream = text, enabled, stream
        self.spinner = self.ticker = None
        self.started = None

    def __enter__(self):
        self.started = time.time()
        if not self.enabled:
            return self
        if self.stream is None:  # the terminal's stderr: stdout stays for results / --json
            self.stream = quiet.terminal()
        mode = os.environ.get(ENV_MODE, "").lower()
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        if mode == "plain" or (mode != "rich" and not tty):
            _say(self.text + " ...", self.stream)
            self.ticker = Ticker(lambda t: "{} ... {}".format(self.text, clock(t)), self.stream).start()
        else:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
            # a live line: spinner, what runs, and for how long (a static line looks hung).
            # redirect_stderr=False: during a quiet session sys.stderr is the library log; rich's
            # default would send what TF/pycocotools write there to the terminal (only on a tty)
            self.spinner = Progress(SpinnerColumn("dots"), TextColumn("{task.description}", markup=False),
                                    TimeElapsedColumn(), console=Console(file=self.stream), transient=True,
                                    refresh_per_second=8, redirect_stderr=False)
            self.spinner.add_task(self.text + " ...", total=None)
            self.spinner.__enter__()
        return self

    def __exit__(self, exc_type, *exc):
        if not self.enabled:
            return False
        if self.ticker is not None:
            self.ticker.stop()
        if self.spinner is not None:
            self.spinner.__exit__(exc_type, *exc)
        if exc_type is None:
            _say("{}: done in {:.1f}s".format(self.text, time.time() - self.started), self.stream)
        return False


class PlainLines(object):
    """The plain-text twin of a rich bar: a line per `every()` seconds (and the last one)."""

    def __init__(self, description, total, start=0, unit="steps"):
        self.description, self.total, self.unit = description, total, unit
        self.completed = start
        self.fields = {}
        self.first = None  # (completed, time) at the first update: the rate excludes it
        self.last_line = 0.0
        self.started = time.time()
        self.ticker = None

    def __enter__(self):
        _say("{} {}/{} {}: starting".format(self.description, self.completed, self.total, self.unit))
        self.ticker = Ticker(self._waiting).start()
        return self

    def _waiting(self, elapsed):
        if self.first is not None:
            return "{} {}/{} {} (waiting, {} elapsed)".format(
                self.description, self.completed, self.total, self.unit, clock(elapsed))
        return "{}: building the model / first batch ... {}".format(self.description, clock(elapsed))

    def __exit__(self, exc_type, *exc):
        if self.ticker is not None:
            self.ticker.stop()
        if exc_type is None:
            self.line()
        return False

    def update(self, completed, **fields):
        now = time.time()
        if self.first is None:
            self.first = (completed, now)
            if self.ticker is not None:  # from here, lines come from the updates themselves
                self.ticker.stop()
                self.ticker = None
        self.completed = completed
        self.fields.update(fields)
        if now - self.last_line >= every() or completed >= self.total:
            self.line()

    def rate(self):
        if self.first is None or self.completed <= self.first[0]:
            return None
        return (self.completed - self.first[0]) / max(time.time() - self.first[1], 1e-9)

    def line(self):
        if self.completed == getattr(self, "_printed", None):
            return
        self._printed = self.completed
        self.last_line = time.time()
        rate = self.rate()
        eta = (self.total - self.completed) / rate if rate else None
        parts = ["{} {}/{} {}".format(self.description, self.completed, self.total, self.unit)]
        parts += ["{} {}".format(k, v) for k, v in self.fields.items()]
        parts += ["{} {}/s".format("{:.2f}".format(rate) if rate else "-", self.unit),
                  "elapsed " + clock(time.time() - self.started), "ETA " + clock(eta)]
        _say("  ".join(parts))


def _rich():
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    return Progress, BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _BarOrLines(object):
    """A rich bar (`self.progress`) on a terminal, or periodic plain lines (`self.lines`) when piped."""
    lines = None

    def __enter__(self):
        if self.lines is not None:
            self.lines.__enter__()
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.lines is not None:
            self.lines.__exit__(*exc)
        return self.progress.__exit__(*exc)


class StepProgress(_BarOrLines):
    """step i/N, loss, steps/s, elapsed, ETA. Rate excludes the first step (graph build)."""

    def __init__(self, total, start=0, description="train", enabled=True):
        Progress, Bar, MofN, Text, Elapsed, Remaining = _rich()
        self.enabled = enabled
        self.description = description
        self.lines = PlainLines(description, total, start, "steps") if enabled and plain() else None
        if self.lines is not None:
            enabled = False  # the rich bar stays off; the plain lines speak
        else:
            description += " (building the model)"
        self.progress = Progress(
            Text("[bold]{task.description}"), Bar(), MofN(),
            Text("loss {task.fields[loss]}"), Text("{task.fields[rate]} steps/s"),
            Elapsed(), Text("ETA"), Remaining(),
            disable=not enabled, transient=False, refresh_per_second=4,
            redirect_stderr=False)  # sys.stderr is the library log (see status)
        self.task = self.progress.add_task(description, total=total, completed=start, loss="-", rate="-")
        self.first = None
        self.start = start

    def update(self, step, losses):
        now = time.time()
        if self.lines is not None:
            loss = losses.get("Loss/total_loss", losses.get("loss"))
            self.lines.update(step, loss="{:.3f}".format(loss) if loss is not None else "-")
            return
        if self.first is None:
            self.first = (step, now)
        rate = "-"
        if step > self.first[0]:
            rate = "{:.2f}".format((step - self.first[0]) / (now - self.first[1]))
        loss = losses.get("Loss/total_loss", losses.get("loss"))
        self.progress.update(self.task, completed=step, rate=rate, description=self.description,
                             loss="{:.3f}".format(loss) if loss is not None else "-")

    @contextlib.contextmanager
    def busy(self, text):
        """A long pause between two steps (an evaluation): the bar says what it does meanwhile
        (its clock keeps counting); piped, a start line, ticks with the time, and a done line."""
        if not self.enabled:
            yield
            return
        if self.lines is not None:
            with status("{}: {}".format(self.description, text), stream=sys.stdout):
                yield
            return
        self.progress.update(self.task, description="{} ({} ...)".format(self.description, text))
        try:
            yield
        finally:
            self.progress.update(self.task, description=self.description)


class _Off(object):
    """A disabled bar."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self, task, n=1):
        pass


class ItemProgress(_BarOrLines):
    """n/N items, rate, elapsed, ETA; `advance(n)` after each batch."""

    def __init__(self, total, description, enabled=True, stderr=False):
        if not enabled:  # --json, piped: no bar, and no rich import (~0.1 s of a short convert)
            self.progress, self.task, self.lines = _Off(), None, None
            return
        from rich.console import Console
        Progress, Bar, MofN, Text, Elapsed, Remaining = _rich()
        self.progress = Progress(Text("[bold]{task.description}"), Bar(), MofN(), Elapsed(), Text("ETA"),
                                 Remaining(), disable=not enabled, redirect_stderr=False,
                                 console=Console(stderr=True) if stderr else None)
        self.task = self.progress.add_task(description, total=total)
        self.lines = PlainLines(description, total, 0, "images") if enabled and plain() else None
        if self.lines is not None:
            self.progress.disable = True

    def advance(self, n=1):
        if self.lines is not None:
            self.lines.update(self.lines.completed + n)
        self.progress.advance(self.task, n)


def enabled(args):
    return not getattr(args, "json", False) and not getattr(args, "quiet", False)
