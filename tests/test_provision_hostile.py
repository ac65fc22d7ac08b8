"""Issue 22: `provision submit` refuses #SBATCH values outside Slurm's syntax (man sbatch), exit 2, nothing written."""
import pytest

from conftest import run_cli


@pytest.mark.parametrize("flag,value", [("--time", "forever"), ("--time", "10\nx"), ("--time", "1-2:3:4:5"),
                                        ("--partition", "a\nb"), ("--partition", "a;b"), ("--partition", "$(id)"),
                                        ("--cpus-per-task", "0"), ("--cpus-per-task", "-4"),
                                        ("--nodes", "99999999999999999999")])
def test_submit_refuses_bad_sbatch_values(tmp_path, flag, value):
    proc = run_cli("provision", "submit", "--dry-run", "--no-container", flag + "=" + value, "--", "train",
                   "--workdir", str(tmp_path / "run"), check=2, cwd=tmp_path)
    assert flag in proc.stderr and "#SBATCH" not in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["10", "30:00", "2:00:00", "1-12", "1-12:30", "1-12:30:00"])
def test_submit_accepts_slurm_time_formats(tmp_path, value):
    proc = run_cli("provision", "submit", "--dry-run", "--no-container", "--time", value, "--", "train",
                   "--workdir", str(tmp_path / "run"), cwd=tmp_path)
    assert "#SBATCH --time={}\n".format(value) in proc.stdout
