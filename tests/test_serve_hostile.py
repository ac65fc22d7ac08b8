"""#22's serve cases that need no trained model: bad flags, a bad --host, a port in use, an
access log inside the export or in a missing folder: exit 2 in seconds, before any model loads
(a metadata.json alone is the export; the model would only load after these checks)."""
import json
import re
import socket
import time

import pytest

from conftest import have_module, require, run_cli


@pytest.fixture
def export(tmp_path):
    require(have_module("aiohttp") and have_module("prometheus_client"), "aiohttp / prometheus_client not installed")
    d = tmp_path / "export"
    d.mkdir()
    (d / "metadata.json").write_text(json.dumps({"classes": [{"id": 1, "name": "circle"}]}))
    return d


@pytest.mark.parametrize("flag,value", [("--shutdown-timeout", "-5"), ("--delay-ms", "-5"), ("--delay-ms", "nan"),
                                        ("--max-request-pixels", "0")])
def test_out_of_range_flags_are_exit_2(export, flag, value):
    proc = run_cli("odrun", "serve", "--model", export, flag, value, check=2)
    assert flag in proc.stderr


def test_access_log_inside_the_export_is_refused(export):
    before = (export / "metadata.json").read_bytes()
    proc = run_cli("odrun", "serve", "--model", export, "--access-log", export / "metadata.json", check=2)
    assert "--access-log" in proc.stderr and "lies inside" in proc.stderr
    assert (export / "metadata.json").read_bytes() == before


def test_access_log_in_a_missing_folder_is_exit_2(export, tmp_path):
    proc = run_cli("odrun", "serve", "--model", export, "--access-log", tmp_path / "nope" / "a.log", check=2)
    assert "does not exist" in proc.stderr and "mkdir -p" in proc.stderr


def test_bad_host_is_exit_2_quickly(export):
    t0 = time.time()
    proc = run_cli("odrun", "serve", "--model", export, "--host", "256.1.1.1", check=2)
    assert "--host" in proc.stderr and time.time() - t0 < 20


def test_port_in_use_is_exit_2_before_the_model_loads(export):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        t0 = time.time()
        proc = run_cli("odrun", "serve", "--model", export, "--port", s.getsockname()[1], check=2)
        assert "--port" in proc.stderr and "cannot listen" in proc.stderr and time.time() - t0 < 20
    finally:
        s.close()


def test_log_in_a_missing_folder_or_inside_the_export_is_exit_2(export, tmp_path):
    """Issue 25: --log FILE is checked like --access-log, before anything loads or is written."""
    t0 = time.time()
    proc = run_cli("odrun", "serve", "--model", export, "--log", tmp_path / "nope" / "serve.log", check=2)
    assert "--log" in proc.stderr and "does not exist" in proc.stderr and "mkdir -p" in proc.stderr
    proc = run_cli("odrun", "serve", "--model", export, "--log", export / "serve.log", check=2)
    assert "--log" in proc.stderr and "lies inside" in proc.stderr
    assert sorted(p.name for p in export.iterdir()) == ["metadata.json"]
    assert time.time() - t0 < 20


def test_log_names_the_file_at_start(export, tmp_path):
    """Issue 25: `odrun serve` wrote library lines to a new /tmp/odrun-serve-*.log with no way to
    choose; --log FILE is the file, named in the start-up lines. (The metadata-only export then
    fails to load: exit 2, and a log this run created for it is removed, as for any bad input.)"""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = tmp_path / "serve.log"
    proc = run_cli("odrun", "serve", "--model", export, "--port", port, "--log", log, check=2)
    assert "library output (TensorFlow, TFLite, absl): {}\n".format(log) in proc.stderr, proc.stderr
    assert "failed to load" in proc.stderr
    proc = run_cli("odrun", "serve", "--model", export, "--port", port, check=2)  # the default: as before
    assert re.search(r"library output \(TensorFlow, TFLite, absl\): \S+/odrun-serve-\S+\.log\n", proc.stderr), proc.stderr
