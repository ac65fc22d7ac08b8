"""Run every benchmark in bench/ (`make bench`), each with its defaults, then one table of ratios.

    python bench/run_all.py                 # all of them, in ORDER (then any other bench/*.py)
    python bench/run_all.py convert detect  # a subset

Each script reports through bench/common.report; the collected reports go to bench/results.json
(name, exit code, seconds, result, ratios). Scratch space is removed by each script (see bench/common.py).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["matrix", "doctor", "explain", "explain_log", "convert", "inspect_records", "train", "detect", "serve", "classify", "masks", "scale",
         "tf1", "host", "images"]
NOT_BENCHMARKS = {"run_all", "common"}


def names_available():
    found = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_BENCHMARKS and not p.stem.startswith("_"))
    return [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]


def run_one(name):
    fd, result_path = tempfile.mkstemp(prefix="odstack-bench-", suffix=".json")
    os.close(fd)
    env = dict(os.environ, ODSTACK_BENCH_RESULT=result_path)
    start = time.time()
    code = subprocess.call([sys.executable, str(HERE / (name + ".py"))], env=env)
    seconds = round(time.time() - start, 1)
    try:
        with open(result_path, encoding="utf-8") as f:
            doc = json.load(f) if os.path.getsize(result_path) else {}
    finally:
        os.unlink(result_path)
    return {"bench": name, "exit": code, "seconds": seconds, "result": doc.get("result"),
            "ratios": doc.get("ratios", [])}


def table(reports):
    lines = ["| bench | what | ratio | goal | met |", "| --- | --- | --- | --- | --- |"]
    for rep in reports:
        if rep["exit"]:
            lines.append("| {} | FAILED (exit {}) | | | |".format(rep["bench"], rep["exit"]))
        for r in rep["ratios"]:
            goal = "" if r.get("goal") is None else ("≥ " if r.get("higher_is_better", True) else "≤ ") + str(r["goal"])
            met = {True: "yes", False: "NO", None: ""}[r.get("met")]
            lines.append("| {} | {} | {} | {} | {} |".format(rep["bench"], r["what"], r["ratio"], goal, met))
    return "\n".join(lines)


def main(names):
    unknown = [n for n in names if n not in names_available()]
    if unknown:
        print("no such benchmark: {} (have: {})".format(", ".join(unknown), ", ".join(names_available())))
        return 2
    reports = []
    for name in names or names_available():
        print("== bench/{}.py".format(name), flush=True)
        rep = run_one(name)
        print("== bench/{}.py exit {} in {:.0f} s".format(name, rep["exit"], rep["seconds"]), flush=True)
        reports.append(rep)
    with open(str(HERE / "results.json"), "w", encoding="utf-8") as f:
        json.dump({"reports": reports}, f, indent=2, default=str)
    print()
    print(table(reports))
    failed = [r["bench"] for r in reports if r["exit"]]
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
