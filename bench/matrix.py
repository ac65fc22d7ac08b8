"""Benchmark: the compatibility matrix (`provision matrix`).

  1. load = YAML parse + validation of compat_matrix.yaml (cold: cache cleared each run),
     with PyYAML's C loader (what compat.py uses when libyaml is there) and the pure-Python one,
  2. queries in-process: tf(), cuda(full version), gpu(NVML names), check(every component), recommend(),
  3. `provision matrix recommend --gpu ... --json` as a user runs it, against the interpreter floor
     (`python -c pass`) and `python -c "import yaml, packaging.version"`.

Prints a JSON summary (median of N runs). Usage: python bench/matrix.py [--runs N]
The machine is shared (2 cores, six engineers): expect noisy numbers; medians are reported.
"""
import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from common import samples

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PROVISION = str(Path(sys.executable).parent / "provision")
GPUS = ["NVIDIA GeForce RTX 3090", "Tesla V100-SXM2-32GB", "NVIDIA A100-SXM4-80GB",
        "NVIDIA H100 80GB HBM3", "Tesla T4", "GeForce GTX 1080 Ti"]


def timed(fn, runs, inner=1):
    s = samples(fn, runs, inner)
    return {"median_ms": round(statistics.median(s) * 1e3, 3), "min_ms": round(min(s) * 1e3, 3),
            "max_ms": round(max(s) * 1e3, 3), "runs": runs}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    import yaml
    from provision import compat

    path = ROOT / "compat_matrix.yaml"
    text = path.read_text()
    out = {"file_bytes": len(text.encode())}

    def load_with(loader):
        compat.Matrix(yaml.load(text, Loader=loader), str(path))

    out["load_pure_python"] = timed(lambda: load_with(yaml.SafeLoader), args.runs)
    if hasattr(yaml, "CSafeLoader"):
        out["load_libyaml"] = timed(lambda: load_with(yaml.CSafeLoader), args.runs)
        out["libyaml_speedup"] = round(out["load_pure_python"]["median_ms"] / out["load_libyaml"]["median_ms"], 2)

    def cold_load():
        compat._CACHE.clear()
        compat.load(path)

    out["compat_load_cold"] = timed(cold_load, args.runs)
    m = compat.load(path)
    inner = 200
    out["query_tf"] = timed(lambda: m.tf("1.15.5"), args.runs, inner)
    out["query_cuda_full"] = timed(lambda: m.cuda("11.0.3"), args.runs, inner)
    out["query_gpu_nvml_names"] = timed(lambda: [m.gpu(g) for g in GPUS], args.runs, inner // 10)
    out["check_all_components"] = timed(lambda: m.check(
        tf="1.15", python="3.8", cuda="11.2", cudnn="8.1", numpy="1.19.5", protobuf="3.6.0",
        driver="400.1", gpu="RTX 3090"), args.runs, inner // 10)
    out["recommend"] = timed(lambda: m.recommend(gpu="NVIDIA GeForce RTX 3090", driver="470.82.01"),
                             args.runs, inner // 10)

    def run(cmd):
        subprocess.run(cmd, capture_output=True, check=False)

    cli = [PROVISION, "matrix", "recommend", "--gpu", "NVIDIA GeForce RTX 3090", "--json"]
    out["cli_recommend"] = timed(lambda: run(cli), args.runs)
    out["python_floor"] = timed(lambda: run([sys.executable, "-c", "pass"]), args.runs)
    out["python_yaml_packaging_import"] = timed(
        lambda: run([sys.executable, "-c", "import yaml, packaging.version, packaging.specifiers"]), args.runs)
    out["cli_over_floor"] = round(out["cli_recommend"]["median_ms"] / out["python_floor"]["median_ms"], 2)
    from common import ratio, report
    ratios = [ratio("`matrix recommend` CLI wall time / `python -c pass`", out["cli_over_floor"], higher_is_better=False)]
    if "libyaml_speedup" in out:
        ratios.append(ratio("libyaml load vs pure-Python load (speed-up)", out["libyaml_speedup"]))
    report("matrix", out, ratios)


if __name__ == "__main__":
    main()
