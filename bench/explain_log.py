"""Benchmark: `provision explain --log` on a 50 MB training log (issue #12: < 2 s), vs `grep -c`.

  1. write a 50 MB log in scratch: real TF 2.15 start-up/training lines (step lines that differ
     only in numbers, deprecation warnings, the AVX notice, a BFC allocator warning) and, near the
     end, one real error (a missing checkpoint),
  2. time `provision explain --log LOG --json` as a user runs it (start-up included), check the
     error ranks first; with --unique also a variant where every line differs (the worst case
     for the line de-duplication the matcher does),
  3. peer: `grep -c -i error LOG` (what people run first), on the same file,
  4. report seconds and the ratio explain/grep; goal: explain < 2 s.

Usage: python bench/explain_log.py [--mb 50] [--runs 3] [--unique]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ratio, report, scratch

PROVISION = str(Path(sys.executable).parent / "provision")
LINES = [
    "I1201 10:00:{s:02d}.{us:06d} 140000000000000 model_lib_v2.py:705] Step {i} per-step time 0.{us:03d}s",
    "INFO:tensorflow:{{'Loss/classification_loss': 0.{us}, 'Loss/localization_loss': 0.12, 'Loss/total_loss': 0.{i}}}",
    "W1201 10:00:{s:02d}.{us:06d} 140000000000000 deprecation.py:50] From /usr/lib/python3/dist-packages/tensorflow/"
    "python/util/deprecation.py:660: calling map_fn_v2 (from tensorflow.python.ops.map_fn) with dtype is deprecated",
    "2026-12-01 10:00:{s:02d}.{us:06d}: I tensorflow/core/platform/cpu_feature_guard.cc:182] This TensorFlow binary "
    "is optimized to use available CPU instructions in performance-critical operations.",
    "2026-12-01 10:00:{s:02d}.{us:06d}: W tensorflow/core/common_runtime/bfc_allocator.cc:237] Allocator (GPU_0_bfc) "
    "ran out of memory trying to allocate {i}.14MiB with freed_by_count=0.",
]
ERROR = ("tensorflow.python.framework.errors_impl.NotFoundError: Unsuccessful TensorSliceReader constructor: "
         "Failed to find any matching files for /data/ckpt/ckpt-0")


def write_log(path, mb, unique=False):
    size, i = 0, 0
    with open(str(path), "w") as fh:
        while size < mb * 1e6:
            line = LINES[i % len(LINES)].format(i=i, s=i % 60, us=i % 999999)
            if unique:
                line = "{} {}".format(line, "x" * (i % 37) + hex(i * 2654435761 % 2 ** 32))
            if size > mb * 0.98e6 and ERROR not in (line,) and i % 1000 == 0:
                fh.write(ERROR + "\n")
            fh.write(line + "\n")
            size += len(line) + 1
            i += 1
        fh.write(ERROR + "\n")


def timed(cmd, runs):
    samples, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--unique", action="store_true",
                    help="also time the worst case: every line different (slow, ~40 s here)")
    args = ap.parse_args()
    with scratch("explain-log") as tmp:
        log, uniq = Path(tmp) / "train.log", Path(tmp) / "unique.log"
        write_log(log, args.mb)
        if args.unique:
            write_log(uniq, args.mb, unique=True)
        t_explain, out = timed([PROVISION, "explain", "--log", str(log), "--json"], args.runs)
        top = json.loads(out.stdout)["matches"][0]["id"]
        t_unique = top_u = None
        if args.unique:
            t_unique, out_u = timed([PROVISION, "explain", "--log", str(uniq), "--json"], 1)
            top_u = json.loads(out_u.stdout)["matches"][0]["id"]
        t_grep, _ = timed(["grep", "-c", "-i", "error", str(log)], args.runs)
        result = {"log_mb": round(log.stat().st_size / 1e6, 1), "explain_s": round(t_explain, 3),
                  "explain_top": top, "explain_unique_lines_s": t_unique and round(t_unique, 3), "explain_unique_top": top_u,
                  "grep_c_s": round(t_grep, 3)}
    report("explain_log", result, [
        ratio("explain 50 MB log: seconds (goal < 2)", t_explain, 2.0, higher_is_better=False),
        ratio("explain / grep -c error on the same log", t_explain / t_grep if t_grep else None),
    ])


if __name__ == "__main__":
    main()
