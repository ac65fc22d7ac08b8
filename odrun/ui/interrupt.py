"""Ctrl-C during training: the first one asks the training loop to save a checkpoint at the
current step and stop (exit 130, `--resume` continues there); a second one stops at once.

The first SIGINT only sets a flag (a KeyboardInterrupt raised inside a TensorFlow call or a
checkpoint write would lose the step or leave a half-written checkpoint); the loop checks
`requested` after each step. The handler then puts SIGINT back to the operating system's
default, so a second Ctrl-C ends the process immediately, even inside a long C++ call (what a
killed save leaves is removed by the next run: odrun.workdir.rundir.RunDir.clean_stale).
"""
import os
import signal
import threading


class Interrupted(KeyboardInterrupt):
    """Raised by a training loop after its Ctrl-C checkpoint: step and checkpoint prefix (or None)."""

    def __init__(self, step, checkpoint):
        KeyboardInterrupt.__init__(self, "interrupted at step {}".format(step))
        self.step, self.checkpoint = step, checkpoint


class Guard(object):
    """`with Guard() as g: ... if g.requested: save, raise Interrupted(...)`.

    Outside the main thread (a library caller's worker) signals cannot be handled: a no-op.
    """

    def __init__(self, say=None):
        self.requested = False
        self.say = say
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._first)
        return self

    def _first(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # the second Ctrl-C: stop at once
        if os.isatty(1):  # rich hides the cursor while a bar runs; a second Ctrl-C leaves no cleanup
            os.write(1, b"\x1b[?25h")
        if self.say is not None:
            self.say("\nCtrl-C: saving a checkpoint at the current step, then stopping "
                     "(Ctrl-C again stops at once, without it)")

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
        return False


def message(exc, run_dir):
    """What the terminal says after a Ctrl-C checkpoint."""
    if exc.checkpoint:
        return ("interrupted at step {}: saved checkpoint {}; continue with: odrun train --workdir {} "
                "--resume".format(exc.step, exc.checkpoint, run_dir))
    return "interrupted at step {} (no step trained: nothing to save)".format(exc.step)
