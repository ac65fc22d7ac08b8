"""Issue 22: `provision run` refuses system folders by rule (provision/data/system_dirs.yaml, FHS 3.0), not by
list: every FHS system tree, every home and its dot-folders, the scratch roots and their system entries,
lost+found - after resolving symlinks. Users' data places stay allowed. (--dry-run: no engine needed.)"""
import os
import shlex
from pathlib import Path

import pytest

from conftest import run_cli

REFUSED = ["/var/spool", "/var/spool/cron/crontabs", "/var/mail", "/var/cache", "/var/backups", "/var/tmp",
           "/lost+found", "/root/.ssh", "/root", "/var", "/tmp", "/", "/home", "/home/ana", "/home/ana/.ssh",
           "/home/ana/.config/x", "/etc/cron.d", "/usr/local/share", "/lib64", "/libx32/x", "/opt/app", "/boot/efi",
           "/run/user/1000", "/dev/shm", "/srv", "/mnt", "/media", "/tmp/.X11-unix", "/var/tmp/systemd-private-x",
           "/data/lost+found/x", "/snap/core", "/sys/fs", "/proc/1"]
ALLOWED = ["/data", "/data/runs", "/mnt/disk1/runs", "/srv/datasets", "/media/usb/x", "/home/ana/runs",
           "/root/runs", "/scratch/job", "/tmp/myruns", "/var/tmp/myruns"]


def _dry(tmp_path, *args, check=0):
    return run_cli("provision", "run", "--flavor", "cpu", "--dry-run", *args, "--", "--help", check=check, cwd=tmp_path)


@pytest.mark.parametrize("path", REFUSED)
def test_system_folders_refused(tmp_path, path):
    proc = _dry(tmp_path, "--runs", path, check=2)
    assert "refusing to mount the system folder" in proc.stderr and "--runs" in proc.stderr
    assert "docker run" not in proc.stdout


@pytest.mark.parametrize("path", ALLOWED)
def test_user_data_places_allowed(tmp_path, path):
    argv = shlex.split(_dry(tmp_path, "--runs", path).stdout)
    assert "type=bind,source={},target=/runs".format(os.path.realpath(path)) in argv


@pytest.mark.parametrize("target", ["/var/spool", "/root/.ssh", "/etc"])
@pytest.mark.parametrize("flag", ["--runs", "--data"])
def test_symlinks_are_resolved_first(tmp_path, target, flag):
    link = tmp_path / "innocent"
    link.symlink_to(target)
    proc = _dry(tmp_path, flag, link, check=2)
    assert os.path.realpath(target) in proc.stderr and flag in proc.stderr
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "up").symlink_to("../../" * len(tmp_path.parts) + target.lstrip("/"))
    _dry(tmp_path, flag, tmp_path / "runs" / "up", check=2)


def test_every_passwd_home_counts():
    from provision.run_guard import mount_refusal, system_dirs
    rules = system_dirs()
    homes = {Path("/data/svc")}  # a service user whose home is on the data disk
    assert mount_refusal(Path("/data/svc"), rules, homes)
    assert mount_refusal(Path("/data/svc/.ssh/authorized_keys"), rules, homes)
    assert mount_refusal(Path("/data"), rules, homes)  # holds that home
    assert mount_refusal(Path("/data/svc/runs"), rules, homes) is None
    assert mount_refusal(Path("/data/other"), rules, homes) is None


@pytest.mark.parametrize("user", ["4294967296:1", "1:4294967296", "4294967295", "99999999999999999999", "0:-1",
                                  "1:2:3", "-5"])
def test_out_of_range_user_ids_refused(tmp_path, user):
    proc = _dry(tmp_path, "--user=" + user, check=2)
    assert "--user" in proc.stderr and "docker run" not in proc.stdout


@pytest.mark.parametrize("user", ["0", "4294967294:4294967294", "1000:1000", "ana", "ana:staff"])
def test_in_range_user_ids_accepted(tmp_path, user):
    argv = shlex.split(_dry(tmp_path, "--user", user).stdout)
    assert argv[argv.index("--user") + 1] == user


def test_a_symlinked_home_root_counts_as_home():
    """Fedora Atomic/Silverblue: /home -> /var/home, so a user's runs resolve into /var."""
    from provision.run_guard import mount_refusal, system_dirs
    rules, real = system_dirs(), "/var/home"
    assert mount_refusal(Path("/var/home/ana/runs"), rules, set(), real) is None
    assert mount_refusal(Path("/var/home/ana/.ssh"), rules, set(), real)
    assert mount_refusal(Path("/var/home/ana"), rules, set(), real)
    assert mount_refusal(Path("/var/lib/x"), rules, set(), real)
