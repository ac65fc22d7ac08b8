"""Both console scripts exist, answer --help/--version fast, and odrun stays Python 3.6 code."""
import subprocess

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


def test_odrun_and_odcore_are_python36_compatible():
    vermin = bin_path("vermin")
    require(vermin, "vermin not installed")
    proc = subprocess.run([vermin, "-t=3.6-", "--no-tips", "--violations", "--eval-annotations",
                           "--backport", "dataclasses", str(ROOT / "odrun"), str(ROOT / "odcore")],
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


def test_atomic_write_has_umask_mode_and_leaves_nothing_on_failure(tmp_path):
    import os
    import pytest
    from odcore.fileio import atomic_path, write_text

    target = tmp_path / "out.txt"
    old = os.umask(0o022)
    try:
        write_text(target, "ok")
    finally:
        os.umask(old)
    assert target.read_text() == "ok"
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
