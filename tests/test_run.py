"""`provision image build` + `provision run` on the real engine: the cpu flavour is built on a
debootstrapped base (tests/dockerd.py), then real jobs run in it (convert + a 2-step train, and `odrun demo`) with
/data read-only and /runs read-write, as a non-root uid. Also: exit codes, the `--gpus all` failure
on this GPU-less engine, missing image, no daemon, no socket permission, Ctrl-C, --dry-run."""
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import bin_path, require, run_cli, sigint_default

import dockerd

UID = 1234  # a non-root uid that owns the job's folders (as under `sudo provision run`)
pytestmark = [pytest.mark.docker]


@pytest.fixture(scope="module")
def built():
    return dockerd.cpu_image()


@pytest.fixture(scope="module")
def job(built, tmp_path_factory):
    """convert + train in the container, as uid 1234 (SUDO_UID/SUDO_GID: the `sudo` case)."""
    from odrun.tasks.detect import synth

    base = tmp_path_factory.mktemp("job")
    data, runs = base / "dataset", base / "runs"
    synth.generate(str(data), count=12, width=128, height=128, seed=1)
    runs.mkdir()
    for path in [data, runs] + list(data.iterdir()):
        os.chown(str(path), UID, UID)
    env = dict(os.environ, SUDO_UID=str(UID), SUDO_GID=str(UID))
    common = ["run", "--image", dockerd.CPU_TAG, "--data", data, "--runs", runs, "--"]
    started = time.time()
    convert = run_cli("provision", *common, "convert", "/data", "--out", "/runs/data", env=env)
    train = run_cli("provision", *common, "train", "--data", "/runs/data", "--workdir", "/runs/train",
                    "--steps", "2", "--batch", "2", "--image-size", "128", "--checkpoint-every", "2", env=env,
                    timeout=900)
    return {"data": data, "runs": runs, "convert": convert, "train": train,
            "seconds": round(time.time() - started, 1)}


def job_containers():
    return dockerd.engine().containers.list(all=True, filters={"label": "io.odstack.job"})


def test_image_built_with_labels(built):
    assert built["tag"] == dockerd.CPU_TAG and built["id"].startswith("sha256:")
    labels = built["labels"]
    assert labels["flavor"] == "cpu" and labels["tf"] == "2.15.1" and labels["python"] == "3.11"
    assert labels["cuda"] in ("none", "None") and built["base_image"] == dockerd.BASE_TAG
    assert built["wheelhouse"] and built["size"] > 1e9
    img = dockerd.engine().images.get(dockerd.CPU_TAG)
    assert img.attrs["Config"]["Entrypoint"] == ["odrun"] and img.attrs["Config"]["User"] == "1000:1000"
    assert img.attrs["Config"]["WorkingDir"] == "/work"


def test_image_ls_shows_versions(built):
    rows = json.loads(run_cli("provision", "image", "ls", "--json", check=0).stdout)
    row = [r for r in rows if dockerd.CPU_TAG in r["tags"]]
    assert row and row[0]["tf"] == "2.15.1" and row[0]["flavor"] == "cpu" and row[0]["size_mb"] > 1000


def test_job_outputs_on_host_owned_by_caller(job):
    assert job["convert"].returncode == 0, job["convert"].stdout[-3000:] + job["convert"].stderr[-3000:]
    assert job["train"].returncode == 0, job["train"].stdout[-3000:] + job["train"].stderr[-3000:]
    out = job["runs"]
    summary = json.loads((out / "data" / "summary.json").read_text())
    assert summary["images"]["total"] == 12 and summary["images"]["train"] + summary["images"]["test"] == 12
    for name in ("train.record", "test.record", "label_map.pbtxt", "train_labels.csv"):
        assert (out / "data" / name).stat().st_size > 0, name
    assert (out / "train" / "pipeline.config").exists()
    assert list((out / "train").glob("ckpt-2.index")), sorted(p.name for p in (out / "train").iterdir())
    assert "trained steps 0->2" in job["train"].stdout + job["train"].stderr
    files = [p for p in out.rglob("*")]
    assert len(files) > 8
    wrong = [(str(p), p.stat().st_uid, p.stat().st_gid) for p in files
             if (p.stat().st_uid, p.stat().st_gid) != (UID, UID)]
    assert not wrong, wrong
    assert not job_containers(), "finished job containers must be removed"


def test_data_is_read_only_and_exit_code_is_the_containers(built, tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    proc = run_cli("provision", "run", "--image", dockerd.CPU_TAG, "--data", data, "--runs", tmp_path / "r",
                   "--entrypoint", "python3", "--", "-c",
                   "import sys; print('inside'); open('/runs/ok', 'w').write('1'); open('/data/x', 'w'); sys.exit(0)")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "inside" in proc.stdout and "Read-only file system" in proc.stdout
    assert (tmp_path / "r" / "ok").read_text() == "1" and not (data / "x").exists()
    proc = run_cli("provision", "run", "--image", dockerd.CPU_TAG, "--runs", tmp_path / "r", "--", "no-such-verb")
    assert proc.returncode == 2 and "invalid choice" in proc.stdout


def test_gpus_all_on_gpuless_engine_points_to_toolkit(built, tmp_path):
    before = len(job_containers())
    proc = run_cli("provision", "run", "--image", dockerd.CPU_TAG, "--gpus", "all", "--runs", tmp_path, "--",
                   "--help", check=2)
    assert 'could not select device driver "" with capabilities: [[gpu]]' in proc.stderr
    assert "provision host --tags toolkit" in proc.stderr and "Traceback" not in proc.stderr
    assert len(job_containers()) == before  # the created container is removed again


def test_missing_image_offers_build(built, tmp_path):
    proc = run_cli("provision", "run", "--flavor", "tf1.15-ngc", "--gpus", "none", "--runs", tmp_path, "--",
                   "--help", check=2)
    assert "odstack:tf1.15-ngc is not on this engine" in proc.stderr
    assert "provision image build tf1.15-ngc" in proc.stderr


def test_no_daemon_message(tmp_path):
    env = dict(os.environ, DOCKER_HOST="unix://" + str(tmp_path / "no-such.sock"))
    proc = run_cli("provision", "run", "--image", dockerd.CPU_TAG, "--runs", tmp_path, "--", "--help",
                   env=env, check=2)
    assert "cannot reach the Docker engine" in proc.stderr and "dockerd" in proc.stderr


def test_socket_permission_message(tmp_path):
    """A socket the caller may not open (root without CAP_DAC_OVERRIDE, socket owned by nobody)."""
    require(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv (util-linux)")
    path = Path("/tmp") / "odstack-perm-{}.sock".format(os.getpid())
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)
    os.chown(str(path), 65534, 65534)
    os.chmod(str(path), 0o600)
    try:
        env = dict(os.environ, DOCKER_HOST="unix://" + str(path))
        proc = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--",
                               bin_path("provision"), "run", "--image", "x", "--runs", str(tmp_path), "--", "--help"],
                              env=env, capture_output=True, text=True, timeout=120)
    finally:
        srv.close()
        path.unlink()
    assert proc.returncode == 2, proc.stderr
    assert "no permission to use the Docker socket" in proc.stderr and "usermod -aG docker" in proc.stderr


def test_ctrl_c_stops_and_removes(built, tmp_path):
    proc = subprocess.Popen([bin_path("provision"), "run", "--image", dockerd.CPU_TAG, "--runs", str(tmp_path),
                             "--entrypoint", "sleep", "--", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    deadline = time.time() + 60
    while not [c for c in job_containers() if c.status == "running"] and time.time() < deadline:
        time.sleep(0.3)
    assert job_containers(), "the job container never started"
    started = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.time() - started < 30 and "stopping" in err
    assert not job_containers()


def test_dry_run_prints_equivalent_docker_run(built, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    proc = run_cli("provision", "run", "--image", dockerd.CPU_TAG, "--gpus", "0,1", "--data", data,
                   "--runs", tmp_path / "runs", "--shm-size", "2g", "--dry-run", "--", "train", "--steps", "5",
                   check=0)
    argv = shlex.split(proc.stdout.strip())
    assert argv[:2] == ["docker", "run"] and argv[-4:] == [dockerd.CPU_TAG, "train", "--steps", "5"]
    line = " ".join(argv)
    assert '--gpus "device=0,1"' in line and "--shm-size 2g" in line and "--privileged" not in line
    assert "--mount type=bind,source={},target=/data,readonly".format(data) in line
    assert "--mount type=bind,source={},target=/runs ".format(tmp_path / "runs") in line
    from provision.run import caller_ids

    assert "--user " + caller_ids() in line
    assert not job_containers()
    # no --flavor/--image: the compat matrix's recommendation for this GPU-less host (cpu, no GPUs)
    proc = run_cli("provision", "run", "--runs", tmp_path / "runs", "--dry-run", "--", "--help", check=0)
    argv = shlex.split(proc.stdout.strip())
    assert argv[-2:] == ["odstack:cpu", "--help"] and "--gpus" not in argv
    # and the printed command really works with the docker CLI (no GPUs here: --gpus none)
    proc = run_cli("provision", "run", "--image", dockerd.CPU_TAG, "--runs", tmp_path / "runs", "--dry-run",
                   "--", "--version", check=0)
    require(shutil.which("docker"), "docker CLI not installed")
    assert not (tmp_path / "runs").exists()  # --dry-run writes nothing (#11 item 16) ...
    (tmp_path / "runs").mkdir()  # ... so the folder `provision run` would make is made here
    out = subprocess.run(shlex.split(proc.stdout), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("odrun "), out.stderr


def test_build_errors_are_clear(built, tmp_path):
    """A base that cannot be pulled (no registry here; unknown repo elsewhere) and a failing RUN step."""
    proc = run_cli("provision", "image", "build", "cpu", "--base-image", "odstack-test/no-such-base:never",
                   "--wheelhouse", "none", "--json", check=2)
    assert "cannot pull the base image odstack-test/no-such-base:never" in proc.stderr
    assert "--base-image" in proc.stderr and "Traceback" not in proc.stderr
    cli = dockerd.engine()
    empty = "odstack-test/empty:latest"  # no /bin/sh, no python3: the first RUN fails
    tar = tmp_path / "empty.tar"
    subprocess.run(["tar", "-cf", str(tar), "-T", "/dev/null"], check=True)
    cli.api.import_image_from_file(str(tar), repository=empty.split(":")[0], tag="latest")
    try:
        proc = run_cli("provision", "image", "build", "cpu", "--base-image", empty, "--wheelhouse", "none",
                       "--tag", "odstack-test:broken", "--json", check=2)
        assert "images/cpu/Dockerfile: image build failed" in proc.stderr, proc.stderr
        assert not cli.images.list(name="odstack-test:broken")
    finally:
        cli.images.remove(empty, force=True)


def test_missing_image_prompt_at_a_terminal(built, tmp_path):
    """At a terminal `provision run` offers to build the missing flavour; answering no keeps the error."""
    require(shutil.which("script"), "script (util-linux) not installed")
    cmd = " ".join(shlex.quote(str(a)) for a in [bin_path("provision"), "run", "--flavor", "tf1.15-ngc", "--gpus",
                                                 "none", "--runs", tmp_path, "--", "--help"])
    proc = subprocess.run(["script", "-qec", cmd, "/dev/null"], input="n\n", capture_output=True, text=True,
                          timeout=120)
    assert "Build it now" in proc.stdout and "provision image build tf1.15-ngc" in proc.stdout
    assert proc.returncode == 2


def test_detach_prints_id_and_keeps_logs(built, tmp_path):
    proc = run_cli("provision", "run", "--image", dockerd.CPU_TAG, "--runs", tmp_path, "--detach", "-e", "GREETING=hi",
                   "--entrypoint", "sh", "--", "-c", "echo $GREETING from $(id -u)", check=0)
    cid = proc.stdout.strip()
    container = dockerd.engine().containers.get(cid)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        from provision.run import caller_ids

        assert container.logs().decode().strip() == "hi from " + caller_ids().split(":")[0]
        assert "docker rm" in proc.stderr
    finally:
        container.remove(force=True)


@pytest.mark.long  # ~2.5 min (every demo stage in the image); test_job_outputs_* is the quicker container job
def test_demo_runs_inside_container(built, tmp_path):
    """The README's main job in the image: `provision run -- demo` as a non-root caller; every stage's
    output lands in the host's runs folder, owned by the caller, and the exit code is the demo's."""
    runs = tmp_path / "runs"
    runs.mkdir()
    os.chown(str(runs), UID, UID)
    env = dict(os.environ, SUDO_UID=str(UID), SUDO_GID=str(UID))
    proc = run_cli("provision", "run", "--image", dockerd.CPU_TAG, "--runs", runs, "--",
                   "demo", "--steps", "3", "--images", "10", "--workdir", "/runs/demo", "--threshold", "0",
                   "--json", env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    demo = runs / "demo"
    summary = json.loads((demo / "demo.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["synth", "convert", "train", "eval", "export", "detect"]
    assert summary["steps"] == 3 and "DetectionBoxes_Precision/mAP" in summary["metrics"]
    assert summary["annotated_image"].startswith("/runs/demo/")
    annotated = runs / summary["annotated_image"][len("/runs/"):]
    assert annotated.stat().st_size > 0 and annotated.suffix == ".png"
    assert json.loads((demo / "export" / "metadata.json").read_text())["step"] == 3
    assert json.loads((demo / "detections" / "detections.json").read_text())
    wrong = [str(p) for p in demo.rglob("*") if (p.stat().st_uid, p.stat().st_gid) != (UID, UID)]
    assert not wrong, wrong[:5]
