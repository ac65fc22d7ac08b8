"""Where a request's time goes: ODRUN_SERVE_PROFILE=FILE makes `odrun serve` stamp each predict
request's stages (time.perf_counter) and write their sums, per stage, to FILE (JSON) at exit.
Off (the default) it costs one attribute test per stage. bench/README.md "serve speed" has the
breakdown it gave. Stages are the gaps between consecutive marks of one request, named by the
later mark; a batch's model call is marked on each of its requests. Each stage has its wall time
and the event loop thread's CPU time over it (what a busy machine inflates less; for a stage that
awaits, the CPU is the other requests' work done meanwhile)."""
import atexit
import gc
import json
import os
import threading
import time

TARGET = os.environ.get("ODRUN_SERVE_PROFILE") or None
ENABLED = TARGET is not None
_LOCK = threading.Lock()
_SUMS = {}  # stage -> [count, wall seconds, loop CPU seconds]
_BATCHES = {}  # batch size -> model calls
_CPU = getattr(time, "thread_time", time.process_time)  # this thread's CPU seconds (Python >= 3.7)


class Marks(object):
    """One request's stamps: mark("stage") records the time since the previous mark."""
    __slots__ = ("last", "cpu")

    def __init__(self):
        self.last, self.cpu = time.perf_counter(), _CPU()

    def mark(self, stage, at=None):
        """at: the perf_counter of a stage that ended on another thread (the model call)."""
        now = time.perf_counter() if at is None else at
        cpu = _CPU()
        with _LOCK:
            entry = _SUMS.setdefault(stage, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += now - self.last
            entry[2] += cpu - self.cpu
        self.last, self.cpu = now, cpu


class _Off(object):
    __slots__ = ()

    def mark(self, stage, at=None):
        pass


OFF = _Off()


def start():
    """A request's Marks (or a no-op when profiling is off)."""
    return Marks() if ENABLED else OFF


def batch(size):
    if ENABLED:
        with _LOCK:
            _BATCHES[size] = _BATCHES.get(size, 0) + 1


_GC = {}  # generation -> [collections, seconds]
_GC_START = [0.0]


def _gc_timer(phase, info):
    if phase == "start":
        _GC_START[0] = time.perf_counter()
        return
    entry = _GC.setdefault(info["generation"], [0, 0.0, 0.0])
    took = time.perf_counter() - _GC_START[0]
    entry[0] += 1
    entry[1] += took
    entry[2] = max(entry[2], took)


def write():
    stages = {k: {"count": n, "wall_ms": round(1000 * s / n, 3), "loop_cpu_ms": round(1000 * c / n, 3)}
              for k, (n, s, c) in _SUMS.items()}
    tmp = TARGET + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"stages": stages, "batch_sizes": {str(k): v for k, v in sorted(_BATCHES.items())},
                   "gc": {str(g): {"collections": n, "total_ms": round(1000 * s, 2), "longest_ms": round(1000 * m, 2)}
                          for g, (n, s, m) in sorted(_GC.items())}}, f, indent=1)
    os.replace(tmp, TARGET)


if ENABLED:
    atexit.register(write)
    gc.callbacks.append(_gc_timer)  # Python's collector pauses (they stop the event loop)
