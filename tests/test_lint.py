"""ruff (config: pyproject.toml [tool.ruff]) finds nothing in the project's Python."""
import subprocess

from conftest import ROOT, bin_path, require

PATHS = ["odrun", "odcore", "provision", "tests", "bench", "setup.py"]


def test_ruff_finds_nothing():
    ruff = bin_path("ruff")
    require(ruff, "ruff not installed (pip install -e '.[dev]')")
    proc = subprocess.run([ruff, "check", "--no-cache", "--output-format", "concise"] + PATHS, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, "ruff findings (fix them, or `ruff check --fix`):\n" + proc.stdout + proc.stderr
