"""Piped output is never hard-wrapped mid-sentence (CI logs, `tee`, files)."""
import re

from conftest import run_cli

LINE = re.compile(r"^(\[[✓!✗-]\] |    [✓!✗-] |      fix: |Doctor found issues|No failures)")


def test_doctor_piped_keeps_each_finding_on_one_line():
    proc = run_cli("provision", "doctor", "--no-tf")
    assert proc.returncode in (0, 1), proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) > 10
    wrapped = [line for line in lines if not LINE.match(line)]
    assert not wrapped, "continuation lines (hard-wrapped):\n" + "\n".join(wrapped)
    assert max(len(line) for line in lines) > 80  # long findings stay long


def test_make_console_soft_wraps_when_not_a_terminal(capsys):
    from odcore.console import make_console

    console = make_console()
    console.print("word " * 60)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
