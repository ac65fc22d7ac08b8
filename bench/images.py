"""Image build time and size, and container start-up costs, for the cpu flavour on this engine.

    .venv/bin/python bench/images.py [--base-image odstack-test/bookworm-py3:latest] [--runs 3] [--cold]

--cold also times a `--no-cache` build (≈ 2.5 min, 2 GB more layers; the image is removed after).
The base image comes from tests/dockerd.py (a debootstrapped bookworm root with python3).
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import samples

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def timed(fn, runs):
    s = samples(fn, runs)
    return round(statistics.median(s), 2), round(min(s), 2), round(max(s), 2)


def provision(*args):
    exe = str(Path(sys.executable).parent / "provision")
    proc = subprocess.run([exe] + list(args), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-image")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cold", action="store_true")
    args = ap.parse_args()
    import dockerd
    from provision import image

    base = args.base_image or dockerd.base_image()
    out = {"base_image": base}
    t = time.time()
    image.wheelhouse("cpu", quiet=True)
    out["wheelhouse_s"] = round(time.time() - t, 1)
    out["wheelhouse_mb"] = round(sum(p.stat().st_size for p in (image.WHEELHOUSE / "cpu").glob("*.whl")) / 1e6)
    tag = "odstack-bench:cpu"
    if args.cold:
        res = json.loads(provision("image", "build", "cpu", "--base-image", base, "--tag", tag, "--no-cache", "--json"))
        out["cold_build_s"] = res["seconds"]
    res = json.loads(provision("image", "build", "cpu", "--base-image", base, "--tag", tag, "--json"))
    out["image_mb"] = round(res["size"] / 1e6)
    out["base_mb"] = round(dockerd.engine().images.get(base).attrs["Size"] / 1e6)
    out["warm_build_s"] = timed(lambda: provision("image", "build", "cpu", "--base-image", base, "--tag", tag,
                                                  "--json"), args.runs)
    from common import scratch
    with scratch("images-runs") as runs:
        return bench(args, base, tag, out, Path(runs))


def bench(args, base, tag, out, runs):
    import dockerd
    out["run_version_s"] = timed(lambda: provision("run", "--image", tag, "--runs", str(runs), "--", "--version"),
                                 args.runs)
    out["run_import_tf_odapi_s"] = timed(lambda: provision(
        "run", "--image", tag, "--runs", str(runs), "--entrypoint", "python3", "--", "-c",
        "import tensorflow, object_detection.builders.model_builder"), args.runs)
    local_py = timed(lambda: subprocess.run([sys.executable, "-c", "import tensorflow"], check=True), args.runs)
    out["host_import_tf_s"] = local_py
    dockerd.engine().images.remove(tag, noprune=False)
    from common import ratio, report
    report("images", out, [ratio("`provision run -- --version` overhead / host TF import (s/s)",
                                 out["run_version_s"][0] / out["host_import_tf_s"][0], higher_is_better=False),
                           ratio("TF + OD API import in the container / host TF import",
                                 out["run_import_tf_odapi_s"][0] / out["host_import_tf_s"][0],
                                 higher_is_better=False)])


if __name__ == "__main__":
    main()
