"""Run a command in a real pseudo-terminal, as a user at a terminal does: stdout and stderr are
the pty's slave (isatty() is True, so rich draws its bars and spinners and TensorFlow's and
rich's terminal-only paths run), and everything the terminal would show is captured.

    term = PtyRun([odrun, "train", ...]).start()
    term.wait_for(lambda text: "2/8" in text)
    term.interrupt()                 # Ctrl-C: SIGINT to the process, as the tty driver sends it
    rc = term.wait(); text = term.text()
"""
import os
import pty  # noqa: F401  (documents the dependency; os.openpty is the call)
import re
import signal
import subprocess
import threading
import time

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def _child_setup():
    """A session of its own with the pty as controlling terminal; SIGINT at its default (a
    background job of a non-interactive shell inherits it ignored, see conftest.sigint_default)."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class PtyRun(object):
    def __init__(self, argv, env=None, cwd=None, columns=120, rows=40):
        self.argv = [str(a) for a in argv]
        self.env = dict(env if env is not None else os.environ, COLUMNS=str(columns), LINES=str(rows),
                        TERM="xterm-256color")
        for key in ("ODRUN_PROGRESS", "NO_COLOR", "CI"):
            self.env.pop(key, None)  # a terminal run, as a user has it
        self.cwd = cwd
        self.chunks = []  # (seconds since start, bytes)
        self.proc = None
        self.started = None

    def start(self):
        master, slave = os.openpty()
        self.started = time.time()
        self.proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave, stderr=slave, env=self.env,
                                     cwd=self.cwd, preexec_fn=_child_setup, close_fds=True)
        os.close(slave)
        self.master = master
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self):
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not data:
                break
            self.chunks.append((time.time() - self.started, data))

    def raw(self):
        return b"".join(c for _, c in self.chunks).decode("utf-8", errors="replace")

    def text(self):
        """What the terminal showed, escape sequences and carriage returns removed."""
        return ANSI.sub("\n", self.raw())

    def wait_for(self, ready, timeout=600, poll=0.05):
        """Wait until ready(text) is true (True) or the process ends / the time is up (False)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ready(self.text()):
                return True
            if self.proc.poll() is not None:
                return ready(self.text())
            time.sleep(poll)
        return False

    def interrupt(self):
        self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout=600):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.reader.join(5)
        try:
            os.close(self.master)
        except OSError:
            pass
        return rc


def run(argv, timeout=600, **kwargs):
    """(exit code, terminal text) of a command run to its end in a pty."""
    term = PtyRun(argv, **kwargs).start()
    rc = term.wait(timeout)
    return rc, term.text()
