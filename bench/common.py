"""What every benchmark shares: its scratch space (removed at the end), its timing loop (`samples`)
and its report.

`report(name, result, ratios)` prints the script's JSON and, under `make bench` (bench/run_all.py sets
$ODSTACK_BENCH_RESULT), also writes it where run_all collects it into one table and bench/results.json.
A ratio is {"what": ..., "ratio": x, "goal": g or None, "higher_is_better": True}: met when x >= g
(or x <= g when lower is better).

Scratch: `scratch(name)` is a temp dir removed when the benchmark ends, unless $ODSTACK_BENCH_KEEP=1
(then it lives in ~/.cache/odstack/bench/NAME and is reused: `odrun cache clear bench` removes it).
"""
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KEEP = os.environ.get("ODSTACK_BENCH_KEEP", "") in ("1", "true", "yes")


def samples(fn, runs, inner=1):
    """Seconds per call of fn(), once per run (each the mean of INNER back-to-back calls): the
    benchmarks report their median, min and max in their own units."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter() - t0) / inner)
    return out


def ratio(what, value, goal=None, higher_is_better=True):
    value = None if value is None else round(float(value), 3)
    met = None
    if goal is not None and value is not None:
        met = value >= goal if higher_is_better else value <= goal
    return {"what": what, "ratio": value, "goal": goal, "higher_is_better": higher_is_better, "met": met}


def report(name, result, ratios=()):
    doc = {"bench": name, "result": result, "ratios": list(ratios)}
    print(json.dumps(doc, indent=2, default=str))
    target = os.environ.get("ODSTACK_BENCH_RESULT")
    if target:
        with open(target, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, default=str)
    return doc


@contextlib.contextmanager
def scratch(name):
    """A working folder for one benchmark; removed afterwards unless ODSTACK_BENCH_KEEP=1."""
    if KEEP:
        from odcore.cache import make_dir
        path = os.path.join(make_dir("bench"), name)
        os.makedirs(path, exist_ok=True)
        yield path
        return
    path = tempfile.mkdtemp(prefix="odstack-bench-{}-".format(name))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
