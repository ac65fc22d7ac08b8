"""`provision host --hosts`: validated host names, a YAML inventory, zero matched hosts is an error;
`--check` never fetches (issue #11 items 14 and 15)."""
import http.server
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import bin_path, have_module, require, run_cli

SSH_OFF = "-o ConnectTimeout=5 -o BatchMode=yes -p 1"


@pytest.mark.parametrize("spec", ["gpu1 ansible_connection=local", "gpu1;touch x", "gpu1\nlocalhost",
                                  "bad_host", "a@b@c", "gpu1:99999", "[::1", "gpu1,-x"])
def test_bad_host_names_refused_before_anything_is_written(tmp_path, spec):
    run_dir = tmp_path / "run"
    proc = run_cli("provision", "host", "--hosts", spec, "--tags", "verify", "--run-dir", run_dir, check=2)
    assert "invalid host" in proc.stderr and "--hosts" in proc.stderr
    assert not run_dir.exists()  # nothing written: no inventory, no artifacts
    assert not Path("x").exists()


def test_inventory_is_yaml_data_ansible_reads_back(tmp_path):
    from provision.inventory import parse_hosts, write_inventory

    path = write_inventory(tmp_path / "hosts.yml",
                           parse_hosts("gpu-1.lab,admin@10.0.0.7:2222,[fe80::1]:2200,fe80::1"))
    exe = bin_path("ansible-inventory")
    require(exe, "ansible-inventory not installed (pip install -e '.[host]')")
    out = json.loads(subprocess.run([exe, "-i", str(path), "--list"], capture_output=True, text=True,
                                    check=True).stdout)
    assert sorted(out["gpu"]["hosts"]) == ["10.0.0.7", "fe80::1-22", "fe80::1-2200", "gpu-1.lab"]
    hv = out["_meta"]["hostvars"]
    assert hv["10.0.0.7"] == {"ansible_user": "admin", "ansible_port": 2222}
    assert hv["fe80::1-2200"] == {"ansible_host": "fe80::1", "ansible_port": 2200}
    assert hv["fe80::1-22"] == {"ansible_host": "fe80::1"} and "gpu-1.lab" not in hv
    assert not any("ansible_connection" in v for v in hv.values())


def test_localhost_is_a_local_connection(tmp_path):
    """localhost / 127.0.0.1 / ::1 are this machine: local connection, not ssh (issue #25);
    with user@ or :port they stay ssh (a tunnel, a container's sshd)."""
    from provision.inventory import inventory_data, parse_hosts

    def hostvars(spec):
        return inventory_data(parse_hosts(spec))["all"]["children"]["gpu"]["hosts"]

    hv = hostvars("localhost,127.0.0.1,::1,gpu1")
    for name in ("localhost", "127.0.0.1", "::1"):
        assert hv[name]["ansible_connection"] == "local", name
    assert hv["gpu1"] is None
    assert hostvars("admin@localhost")["localhost"] == {"ansible_user": "admin"}
    assert hostvars("localhost:2222")["localhost"] == {"ansible_port": 2222}


def test_check_hosts_localhost_does_not_ssh(tmp_path):
    """`provision host --check --hosts localhost` runs here even when ssh to this machine is refused."""
    if os.geteuid() != 0:
        pytest.skip("provision host on this machine needs root")
    require(have_module("ansible_runner"), "ansible-runner not installed (pip install -e '.[host]')")
    proc = run_cli("provision", "host", "--check", "--hosts", "localhost", "--tags", "verify", "--json",
                   "-e", "verify_require_gpu=false", "--run-dir", tmp_path, timeout=300,
                   env=dict(os.environ, ANSIBLE_SSH_ARGS=SSH_OFF))
    summary = json.loads(proc.stdout)
    assert summary["hosts"]["localhost"]["unreachable"] == 0, proc.stderr[-3000:]
    assert summary["hosts"]["localhost"]["ok"] > 0


def test_hosts_localhost_asks_before_changing_this_machine(tmp_path):
    proc = subprocess.run([bin_path("provision"), "host", "--hosts", "localhost", "--tags", "nouveau",
                           "--run-dir", str(tmp_path)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "refusing to change this machine" in proc.stderr, proc.stderr
    assert not (tmp_path / "artifacts").exists()


def test_zero_matched_hosts_is_an_error(tmp_path):
    require(have_module("ansible_runner"), "ansible-runner not installed (pip install -e '.[host]')")
    proc = run_cli("provision", "host", "--hosts", "127.0.0.2", "--limit", "nosuchhost", "--tags", "verify",
                   "--run-dir", tmp_path, check=2, timeout=180, env=dict(os.environ, ANSIBLE_SSH_ARGS=SSH_OFF))
    assert "no host matched" in proc.stderr and "--limit" in proc.stderr
    assert (tmp_path / "inventory" / "hosts.yml").exists()


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen = []

    def _record(self):
        self.seen.append((self.command, self.path))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _record

    def log_message(self, *args):
        pass


def test_check_mode_fetches_nothing(tmp_path):
    """--check --tags toolkit on this machine: the signing-key URL (a 127.0.0.1 server) is never asked."""
    if os.geteuid() != 0:
        pytest.skip("provision host on this machine needs root")
    require(have_module("ansible_runner"), "ansible-runner not installed (pip install -e '.[host]')")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.seen = []
    try:
        url = "http://127.0.0.1:{}/gpgkey".format(server.server_address[1])
        proc = run_cli("provision", "host", "--check", "--tags", "toolkit", "--json", "--run-dir", tmp_path,
                       "-e", "nvidia_container_toolkit_repo_key_url=" + url, timeout=300)
    finally:
        server.shutdown()
        server.server_close()
    summary = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _Recorder.seen == []  # not even get_url's check-mode HEAD request
    msgs = [r["msg"] for r in summary["reports"] if r["task"].startswith("Report the signing key")]
    if not Path("/etc/apt/keyrings/nvidia-container-toolkit.asc").exists():
        assert msgs == ["would download {} to /etc/apt/keyrings/nvidia-container-toolkit.asc".format(url)]
    assert not Path("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").exists()


def test_provision_cluster_validates_hosts_too(tmp_path):
    proc = run_cli("provision", "cluster", "--hosts", "head,gpu1 ansible_connection=local", "--run-dir",
                   tmp_path / "run", check=2)
    assert "invalid host" in proc.stderr and not (tmp_path / "run").exists()
    proc = run_cli("provision", "cluster", "--run-dir", tmp_path / "run", check=2)
    assert "--hosts" in proc.stderr


def test_provision_cluster_inventory_groups(tmp_path):
    """--hosts HEAD,NODE: the head is in slurm_head, every host in slurm_nodes (read back by ansible-inventory)."""
    exe = bin_path("ansible-inventory")
    require(exe and have_module("ansible_runner"), "ansible not installed (pip install -e '.[host]')")
    run_cli("provision", "cluster", "--hosts", "127.0.0.3,admin@127.0.0.2:2222", "--run-dir", tmp_path,
            "--check", timeout=180, env=dict(os.environ, ANSIBLE_SSH_ARGS=SSH_OFF))  # unreachable: exit 1
    inv = tmp_path / "inventory" / "cluster.yml"
    out = json.loads(subprocess.run([exe, "-i", str(inv), "--list"], capture_output=True, text=True,
                                    check=True).stdout)
    assert out["slurm_head"]["hosts"] == ["127.0.0.3"]
    assert sorted(out["slurm_nodes"]["hosts"]) == ["127.0.0.2", "127.0.0.3"]
    assert out["_meta"]["hostvars"]["127.0.0.2"] == {"ansible_user": "admin", "ansible_port": 2222}
