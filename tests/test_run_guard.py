"""Issue 11 item 16: `provision run` checks, all before any container or folder is made
(--dry-run prints the docker line; no engine needed)."""
import os
import shlex

import pytest

from conftest import run_cli


def _dry(tmp_path, *args, check=0, env=None):
    return run_cli("provision", "run", "--flavor", "cpu", "--dry-run", *args, check=check, cwd=tmp_path, env=env)


@pytest.mark.parametrize("flag,path", [("--runs", "/etc"), ("--runs", "/etc/ssl"), ("--data", "/usr/lib"),
                                       ("--runs", "/"), ("--data", "/proc"), ("--runs", "/home")])
def test_system_folders_are_never_mounted(tmp_path, flag, path):
    proc = _dry(tmp_path, flag, path, "--", "--help", check=2)
    assert "refusing to mount the system folder" in proc.stderr and flag in proc.stderr
    assert "docker run" not in proc.stdout


def test_default_user_is_never_root(tmp_path):
    from provision.run_guard import IMAGE_USER, job_user
    argv = shlex.split(_dry(tmp_path, "--", "--help").stdout)
    user = argv[argv.index("--user") + 1]
    assert user.split(":")[0] != "0"
    if os.geteuid() == 0:  # this machine's CI runs as root without sudo: the images' own user
        assert user == IMAGE_USER
        sudo = shlex.split(_dry(tmp_path, "--", "--help", env=dict(os.environ, SUDO_UID="1234",
                                                                     SUDO_GID="1234")).stdout)
        assert sudo[sudo.index("--user") + 1] == "1234:1234"
    assert job_user(None, env={}, euid=0) == IMAGE_USER
    assert job_user(None, env={"SUDO_UID": "0"}, euid=0) == IMAGE_USER
    assert job_user(None, env={}, euid=1001, egid=1002) == "1001:1002"
    argv = shlex.split(_dry(tmp_path, "--user", "0", "--", "--help").stdout)  # only when asked for
    assert argv[argv.index("--user") + 1] == "0"
    _dry(tmp_path, "--user", "0;rm", "--", "--help", check=2)


def test_paths_with_colons_use_mount_syntax(tmp_path):
    data = tmp_path / "set:2024,v1"
    data.mkdir()
    argv = shlex.split(_dry(tmp_path, "--data", data, "--", "--help").stdout)
    assert "-v" not in argv
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "--mount"]
    # docker parses --mount as CSV: the field holding ',' is quoted, ':' needs nothing
    assert '"source={}",target=/data,readonly'.format(data) in mounts[0]
    import csv
    fields = next(csv.reader([mounts[0]]))
    assert fields == ["type=bind", "source={}".format(data), "target=/data", "readonly"]


@pytest.mark.parametrize("args,words", [(["--flavor", "cpux"], "did you mean cpu"),
                                        (["--shm-size", "lots"], "--shm-size"),
                                        (["--shm-size", "0g"], "--shm-size")])
def test_flavor_and_shm_size_validated(tmp_path, args, words):
    proc = run_cli("provision", "run", "--dry-run", *args, "--", "--help", check=2, cwd=tmp_path)
    assert words in proc.stderr


def test_dry_run_writes_nothing(tmp_path):
    _dry(tmp_path, "--", "--help")
    _dry(tmp_path, "--runs", tmp_path / "new" / "runs", "--", "--help")
    assert list(tmp_path.iterdir()) == []


def test_serve_job_line(tmp_path):
    export = tmp_path / "shapes"
    export.mkdir()
    _dry(tmp_path, "--serve", export, check=2)  # no metadata.json: not an export
    (export / "metadata.json").write_text("{}")
    argv = shlex.split(_dry(tmp_path, "--serve", export, "-p", "8601").stdout)
    assert argv[argv.index("-p") + 1] == "127.0.0.1:8601:8501"
    assert "type=bind,source={},target=/models/shapes,readonly".format(export) in argv
    assert argv[-8:] == ["odstack:cpu", "serve", "--model", "/models/shapes", "--host", "0.0.0.0", "--port", "8501"]
    _dry(tmp_path, "--serve", export, "-p", "http", check=2)
