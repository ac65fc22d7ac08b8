"""provision doctor --root DIR reads probe files with a size cap and never blocks (issue #11
item 12): a file symlinked to /dev/zero and a FIFO are treated as unreadable, not read forever."""
import os
import resource
import time

from conftest import run_cli

from provision.doctor.system import PROBE_CAP, read_capped


def test_read_capped(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * (PROBE_CAP + 10))
    assert len(read_capped(big)) == PROBE_CAP
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    assert read_capped(fifo) is None
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    assert read_capped(zero) is None
    assert read_capped(tmp_path / "missing") is None
    assert read_capped("/proc/self/status").startswith("Name:")


def test_doctor_root_with_dev_zero_and_fifo(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").symlink_to("/dev/zero")
    (tmp_path / "proc" / "driver" / "nvidia").mkdir(parents=True)
    os.mkfifo(str(tmp_path / "proc" / "driver" / "nvidia" / "version"))
    (tmp_path / "proc" / "cpuinfo").symlink_to("/dev/urandom")
    (tmp_path / "commands.yaml").write_text('commands:\n  "uname -r": {rc: 0, stdout: "5.15.0-91-generic"}\n')
    t0 = time.time()
    proc = run_cli("provision", "doctor", "--root", tmp_path, "--no-tf", "--json", timeout=60)
    assert time.time() - t0 < 30
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    # the child stayed small (it did not read /dev/zero into memory)
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 500 * 1024
