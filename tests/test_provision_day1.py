"""Issue #25 ("A day with odstack"): the provision frictions a first-day user meets."""
import json
import os

import pytest

from conftest import bin_path, require, run_cli

from provision import compat
from provision.doctor import diagnose
from provision.doctor.system import RecordedSystem


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


def test_ti_boards_match_exactly_and_other_variants_say_the_fallback():
    m = compat.load()
    ti = m.gpu("NVIDIA GeForce RTX 3090 Ti")
    assert ti["name"] == "NVIDIA GeForce RTX 3090 Ti" and "family_of" not in ti
    assert "family_of" not in m.gpu("NVIDIA GeForce RTX 3090")
    sup = m.gpu("NVIDIA GeForce RTX 4080 SUPER")
    assert sup["name"] == "NVIDIA GeForce RTX 4080" and sup["family_of"] == "NVIDIA GeForce RTX 4080 SUPER"
    rec = m.recommend(gpu="NVIDIA GeForce RTX 4080 SUPER")
    assert rec["family_of"] == "NVIDIA GeForce RTX 4080 SUPER"
    assert "'NVIDIA GeForce RTX 4080 SUPER' is not in compat_matrix.yaml" in rec["reason"]
    assert "not in compat_matrix.yaml" not in m.recommend(gpu="RTX 3090 Ti")["reason"]


def test_recommend_for_a_3090_says_tf2_also_runs():
    proc = run_cli("provision", "matrix", "recommend", "--gpu", "NVIDIA GeForce RTX 3090", "--json", check=0)
    rec = json.loads(proc.stdout)
    assert rec["flavor"] == "tf1.15-ngc"
    assert rec["also"] == [{"flavor": "tf2-gpu", "image": "tensorflow/tensorflow:2.15.0-gpu", "tf_major": 2}]
    assert "TF 2 also runs on this GPU: --tf-major 2 gives tf2-gpu" in rec["reason"]
    two = json.loads(run_cli("provision", "matrix", "recommend", "--gpu", "RTX 3090", "--tf-major", "2", "--json",
                             check=0).stdout)
    assert two["flavor"] == "tf2-gpu" and two["also"] == [] and "also runs" not in two["reason"]
    # a GPU only TF 1 (stock 1.15) runs on: no TF 2 line
    k80 = json.loads(run_cli("provision", "matrix", "recommend", "--gpu", "Tesla K80", "--json", check=0).stdout)
    assert k80["flavor"] == "tf1.15-gpu" and k80["also"] == []


def test_doctor_says_start_a_stopped_docker_daemon_first(tmp_path):
    """Docker installed, daemon not answering (here: DOCKER_HOST at a socket nobody serves): the fix is
    `systemctl start docker`, not a whole `provision host` run."""
    require(bin_path("docker") or bin_path("dockerd"), "docker not installed")
    env = dict(os.environ, DOCKER_HOST="unix://{}/none.sock".format(tmp_path))
    proc = run_cli("provision", "doctor", "--section", "containers", "--no-tf", "--json", env=env)
    daemon = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}["containers.docker_daemon"]
    assert daemon["status"] == "fail" and daemon["fix"].startswith("sudo systemctl start docker")
    assert "provision host --tags docker" in daemon["fix"]  # still named, for a broken install


def test_doctor_without_docker_says_provision_host(tmp_path):
    """No docker at all (a captured system that has no docker command): installing is the fix."""
    (tmp_path / "commands.yaml").write_text("commands: {}\n")
    found = {f.id: f for f in diagnose(RecordedSystem(tmp_path), ["containers"], with_tf=False)}
    daemon = found["containers.docker_daemon"]
    assert daemon.status == "fail" and daemon.fix.startswith("provision host --tags docker")
