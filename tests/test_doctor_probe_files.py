"""provision doctor --root DIR reads probe files with a size cap and never blocks (issue #11
item 12): a file symlinked to /dev/zero and a FIFO are treated as unreadable, not read forever."""
import os
import subprocess
import sys
import time

from conftest import bin_path

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
    # run it from a fresh Python so RUSAGE_CHILDREN holds only this doctor's peak memory
    helper = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True,"
              " timeout=60); sys.stderr.write(p.stderr); print(p.returncode,"
              " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", helper, bin_path("provision"), "doctor", "--root", str(tmp_path),
                           "--no-tf", "--json"], capture_output=True, text=True, timeout=90)
    assert time.time() - t0 < 30
    rc, maxrss_kib = (int(x) for x in proc.stdout.split())
    assert rc in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    assert maxrss_kib < 500 * 1024  # it did not read /dev/zero into memory
