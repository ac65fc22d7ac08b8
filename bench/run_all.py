"""Run every benchmark in bench/ one after another (`make bench`), each with its defaults.

Each script prints its own JSON summary and ratios; results are recorded in bench/README.md.
Pass names to run a subset: `python bench/run_all.py convert detect`.
"""
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["matrix", "doctor", "convert", "train", "detect", "tf1", "host", "images"]


def main(names):
    failed = []
    for name in names or ORDER:
        script = HERE / (name + ".py")
        print("== bench/{}.py".format(name), flush=True)
        start = time.time()
        code = subprocess.call([sys.executable, str(script)])
        print("== bench/{}.py exit {} in {:.0f} s".format(name, code, time.time() - start), flush=True)
        if code:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
