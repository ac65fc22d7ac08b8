"""Benchmark: `provision doctor` wall time.

  1. in-process diagnose(--no-tf) on this machine (the checks themselves),
  2. `provision doctor --no-tf --json` as a user runs it (Python start-up + CLI imports + checks),
  3. `provision doctor --json` with the TensorFlow probe,
  4. the baseline everyone runs to ask "is my GPU visible?":
     python -c "import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))"

Prints a JSON summary (median of N runs, min, max). Usage: python bench/doctor.py [--runs N]
The machine is shared (2 cores, six engineers): expect noisy numbers; medians are reported.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import samples

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PROVISION = str(Path(sys.executable).parent / "provision")


def timed(fn, runs):
    s = samples(fn, runs)
    return {"median_s": round(statistics.median(s), 3), "min_s": round(min(s), 3),
            "max_s": round(max(s), 3), "runs": runs}


# A user's install has .pyc files; a sandbox with PYTHONDONTWRITEBYTECODE=1 recompiles every
# module on every start (~0.4 s here), which is not what a user waits for.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if proc.returncode not in (0, 1):
        raise SystemExit("{} failed ({}): {}".format(cmd, proc.returncode, proc.stderr[-500:]))
    return proc


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tf-runs", type=int, default=3)
    args = ap.parse_args()

    from provision.doctor import diagnose
    from provision.doctor.system import LiveSystem

    diagnose(LiveSystem(), with_tf=False)  # warm imports (pynvml, docker SDK)
    results = {
        "diagnose_no_tf_in_process": timed(lambda: diagnose(LiveSystem(), with_tf=False), args.runs),
        "python_c_pass": timed(lambda: run([sys.executable, "-c", "pass"]), args.runs),
        "cli_doctor_no_tf": timed(lambda: run([PROVISION, "doctor", "--no-tf", "--json"]), args.runs),
        "cli_doctor_full": timed(lambda: run([PROVISION, "doctor", "--json", "--tf-timeout", "300"]), args.tf_runs),
        "python_list_physical_devices": timed(lambda: run([
            sys.executable, "-c", "import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))"]),
            args.tf_runs),
    }
    checks = json.loads(run([PROVISION, "doctor", "--no-tf", "--json"]).stdout)["checks"]
    results["checks_run_no_tf"] = len(checks)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
