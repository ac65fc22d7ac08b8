"""Issue #25 ("A day with odstack"): the provision frictions a first-day user meets."""
import pytest

from conftest import run_cli


@pytest.mark.parametrize("tail", [[], ["--"]])
def test_run_without_odrun_command_is_refused(tmp_path, tail):
    """`provision run --dry-run` with no odrun command printed a docker line ending at the image name
    (the image would only print `odrun --help`): refused, exit 2, naming what to add; nothing made."""
    proc = run_cli("provision", "run", "--flavor", "cpu", "--runs", tmp_path / "runs", "--dry-run", *tail, check=2)
    assert "no odrun command" in proc.stderr and "-- train --data /data --workdir /runs/a" in proc.stderr
    assert "docker run" not in proc.stdout
    proc = run_cli("provision", "run", "--flavor", "cpu", "--runs", tmp_path / "runs", *tail, check=2)
    assert "no odrun command" in proc.stderr and not (tmp_path / "runs").exists()


def test_run_with_an_entrypoint_needs_no_odrun_command(tmp_path):
    proc = run_cli("provision", "run", "--flavor", "cpu", "--runs", tmp_path / "runs", "--dry-run",
                   "--entrypoint", "python3", check=0)
    assert proc.stdout.split()[-1] == "odstack:cpu"
