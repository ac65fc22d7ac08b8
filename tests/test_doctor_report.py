"""provision doctor --report FILE: the shareable environment report has every section and no
planted secret (environment tokens, host names, IPs, MACs, user names, e-mails) reaches it."""
import os

from conftest import run_cli

SECRETS = {
    "GITHUB_TOKEN": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "HF_TOKEN": "hf_" + "QwErTyUiOpAsDfGhJkLzXcVbNm123456",
    "MY_SERVICE_PASSWORD": "hunter2-but-longer",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "DB_URL_AUTH": "s3cr3t-value-9",
}


def _capture(root):
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_text("gpu-box-17\n")
    (root / "etc" / "os-release").write_text('PRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu\nVERSION_ID="22.04"\n')
    (root / "proc" / "driver" / "nvidia").mkdir(parents=True)
    (root / "proc" / "driver" / "nvidia" / "version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\n"
        "GCC version:  gcc version 11.4.0 (Ubuntu 11.4.0-1ubuntu1~22.04)\n")
    (root / "recorded").mkdir()
    # an output with an address, a MAC, a mail, a home path and an inline token
    (root / "recorded" / "smi.txt").write_text(
        "NVIDIA-SMI 535.183.01  Driver Version: 535.183.01  CUDA Version: 12.2\n"
        "host gpu-box-17.lab.example.org at 10.20.30.40 / fe80::1ff:fe23:4567:890a mac 3c:ec:ef:12:34:56\n"
        "owner alice.smith@example.org  /home/alice/models  token=ZXCVBNMASDFGHJKL12\n"
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N\n"
        "0  NVIDIA GeForce RTX 3090  Off | 00000000:01:00.0 Off | N/A\n")
    (root / "commands.yaml").write_text(
        'commands:\n'
        '  "uname -r": {rc: 0, stdout: "5.15.0-91-generic"}\n'
        '  "uname -a": {rc: 0, stdout: "Linux gpu-box-17 5.15.0-91-generic #101-Ubuntu SMP x86_64 GNU/Linux"}\n'
        '  "nvidia-smi": {rc: 0, stdout_file: recorded/smi.txt}\n')


def test_report_sections_and_redaction(tmp_path):
    root = tmp_path / "host"
    root.mkdir()
    _capture(root)
    out = tmp_path / "report.md"
    env = dict(os.environ, USER="alice", LOGNAME="alice", **SECRETS)
    proc = run_cli("provision", "doctor", "--root", root, "--no-tf", "--report", out, env=env, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    text = out.read_text()
    for title in ("## OS", "## Kernel", "## NVIDIA driver", "## nvidia-smi", "## CUDA / cuDNN libraries",
                  "## Python packages", "## Docker", "## provision doctor findings"):
        assert title in text
    assert "Ubuntu 22.04.4" in text and "535.183.01" in text and "RTX 3090" in text and "5.15.0-91-generic" in text
    leaked = [s for s in list(SECRETS.values()) + ["gpu-box-17", "10.20.30.40", "fe80::1ff", "3c:ec:ef",
                                                    "alice", "ZXCVBNMASDFGHJKL12", "eyJhbGciOi"] if s in text]
    assert not leaked, leaked
    assert "<ip>" in text and "<redacted>" in text and "/home/<user>" in text
    assert "00000000:01:00.0" in text  # a PCI bus id is not an address to hide
