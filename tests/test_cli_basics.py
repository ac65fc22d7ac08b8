"""Both console scripts exist, answer --help/--version fast, and odrun stays Python 3.6 code."""
import subprocess
import sys

from conftest import ROOT, require, run_cli, bin_path


def test_console_scripts_help():
    for prog in ("provision", "odrun"):
        proc = run_cli(prog, "--help", check=0)
        assert prog in proc.stdout
        proc = run_cli(prog, "--version", check=0)
        assert proc.stdout.strip().startswith(prog + " ")


def test_unknown_command_is_usage_error():
    proc = run_cli("odrun", "no-such-verb")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_odrun_is_python36_compatible():
    vermin = bin_path("vermin")
    require(vermin, "vermin not installed")
    proc = subprocess.run([vermin, "-t=3.6-", "--no-tips", "--violations", "--eval-annotations",
                           "--backport", "dataclasses", str(ROOT / "odrun")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vermin_catches_py37_code(tmp_path):
    """The check above can fail: a 3.8-only construct is reported."""
    vermin = bin_path("vermin")
    require(vermin, "vermin not installed")
    bad = tmp_path / "bad.py"
    bad.write_text("if (n := 3):\n    pass\n")
    proc = subprocess.run([vermin, "-t=3.6-", "--no-tips", "--violations", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
