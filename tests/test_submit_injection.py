"""Issue 22: `provision submit` renders every value shell-quoted; the script is EXECUTED with a stand-in `srun`
and stand-in `odrun`/`provision` (each records its argv) and nothing a value carries runs.

The stand-ins replace only the tool the script names (odrun: the venv's console script; provision: the
first `provision` on the node's PATH): everything the
script's own bash does - quoting, `bash -c`, `$SLURM_*` expansion - runs for real.
"""
import os
import shlex
import subprocess

import pytest

from conftest import bin_path, run_cli

# each would create ./PWNED if the shell read it as code
PAYLOADS = ["a;touch PWNED", "$(touch PWNED)", "`touch PWNED`", "a'b;touch PWNED;'", 'a"b;touch PWNED;"',
            "a b && touch PWNED #"]
SRUN = '#!/bin/bash\nprintf "%s\\0" "$@" > "$REC_DIR/srun.argv"\nwhile [[ $1 == --* ]]; do shift; done\nexec "$@"\n'
TOOL = '#!/bin/bash\nprintf "%s\\0" "$@" > "$REC_DIR/tool.argv"\n'


def _stub(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return path


def _execute(tmp_path, script, tool):
    """Run the rendered script with the stand-ins; (srun argv, tool argv)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    _stub(stubs / "srun", SRUN)
    recorder = _stub(stubs / "recorder", TOOL)
    path = tmp_path / "job.sbatch"
    if tool == "provision":  # resolved on the node from PATH (or --provision): the stand-in is first on PATH
        _stub(stubs / "provision", TOOL)
        path.write_text(script)
    else:  # odrun: this host's venv path, named in the script
        real = shlex.quote(bin_path(tool))
        assert real in script
        path.write_text(script.replace(real, shlex.quote(str(recorder))))
    env = dict(os.environ, PATH="{}:{}".format(stubs, os.environ["PATH"]), REC_DIR=str(stubs),
               SLURM_JOB_ID="7", SLURM_JOB_NODELIST="n1", SLURM_NTASKS="1", SLURM_PROCID="0")
    proc = subprocess.run(["bash", str(path)], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "PWNED").exists(), "an injected command ran"

    def argv(name):
        return (stubs / name).read_bytes().decode().split("\0")[:-1]
    return argv("srun.argv"), argv("tool.argv")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_host_mode_payloads_in_workdir_and_train_args(tmp_path, payload):
    words = ["train", "--workdir", payload, "--set", payload, payload]
    script = run_cli("provision", "submit", "--dry-run", "--no-container", "--", *words, check=0, cwd=tmp_path).stdout
    srun, tool = _execute(tmp_path, script, "odrun")
    assert tool == words
    logs = os.path.join(os.path.realpath(str(tmp_path)), payload, "slurm")
    assert srun[:2] == ["--kill-on-bad-exit=1", "--output={}/worker-%j-%t.log".format(logs)]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_container_mode_payloads_in_runs_workdir_and_train_args(tmp_path, payload):
    words = ["train", "--workdir", "/runs/" + payload, "--data", "/runs/" + payload, payload]
    script = run_cli("provision", "submit", "--dry-run", "--runs", payload, "--data", payload, "--", *words,
                     check=0, cwd=tmp_path).stdout
    assert "#SBATCH --output" not in script  # sbatch parses `#SBATCH` lines itself: the path goes on its argv
    srun, tool = _execute(tmp_path, script, "provision")
    host = os.path.join(os.path.realpath(str(tmp_path)), payload)
    assert tool[:8] == ["run", "--image", "odstack:tf2-gpu", "--network", "host", "--gpus", "none", "--runs"]
    assert tool[8:11] == [host, "--data", host]
    assert tool[11:13] == ["--env", "SLURM_JOB_ID=7"] and "SLURM_PROCID=0" in tool
    assert tool[tool.index("--") + 1:] == words
    assert srun[1] == "--output={}/worker-%j-%t.log".format(os.path.join(host, payload, "slurm"))


@pytest.mark.parametrize("flag", ["--runs", "--data", "--image", "--job-name", "--workdir", "--set"])
@pytest.mark.parametrize("bad", ["a\ntouch PWNED", "a\rb", "a\tb", "a\x1bb", "a\x85b"])
def test_control_characters_are_refused(tmp_path, flag, bad):
    train = ["train", "--workdir", "/runs/job"]
    opts = ["--runs", "r"]
    if flag in ("--workdir", "--set"):
        train = ["train", "--workdir", "/runs/" + bad] if flag == "--workdir" else train + ["--set", bad]
    else:
        opts += [flag, bad]
    proc = run_cli("provision", "submit", "--dry-run", *opts, "--", *train, check=2, cwd=tmp_path)
    assert flag in proc.stderr and "control character" in proc.stderr
    assert "#!/bin/bash" not in proc.stdout
    assert list(tmp_path.iterdir()) == []
