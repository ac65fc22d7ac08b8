"""`provision host` input handling (no hosts touched): bad tags, -e, inventory, --image, and
the refusal to change this machine without --yes. Exit 2 with the field and the fix."""
import subprocess

import pytest

from conftest import bin_path, have_module, require, run_cli, ROOT


@pytest.fixture(autouse=True)
def _needs_runner():
    require(have_module("ansible_runner"), "ansible-runner not installed (pip install -e '.[host]')")


def test_help_lists_the_flags():
    out = run_cli("provision", "host", "--help", check=0).stdout
    for flag in ("--inventory", "--hosts", "--limit", "--tags", "--check", "-e", "--allow-reboot", "--yes", "--json"):
        assert flag in out


def test_unknown_tag_suggests_the_right_one(tmp_path):
    proc = run_cli("provision", "host", "--tags", "nouveau,kernel_hold", "--run-dir", tmp_path, check=2)
    assert "--tags: unknown tag 'kernel_hold'" in proc.stderr
    assert "did you mean 'kernel-hold'?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_extra_var(tmp_path):
    proc = run_cli("provision", "host", "-e", "nvidia_driver_branch", "--run-dir", tmp_path, check=2)
    assert "-e: expected KEY=VALUE, got 'nvidia_driver_branch'" in proc.stderr


def test_missing_inventory(tmp_path):
    proc = run_cli("provision", "host", "-i", tmp_path / "nope.ini", "--run-dir", tmp_path, check=2)
    assert "nope.ini: inventory file not found" in proc.stderr


def test_inventory_and_hosts_exclusive(tmp_path):
    proc = run_cli("provision", "host", "-i", "x", "--hosts", "a", check=2)
    assert "not allowed with argument" in proc.stderr


def test_image_without_driver_and_unknown_image(tmp_path):
    proc = run_cli("provision", "host", "--image", "cpu", "--run-dir", tmp_path, check=2)
    assert "--image: image 'cpu' runs without an NVIDIA driver" in proc.stderr
    proc = run_cli("provision", "host", "--image", "tf2gpu", "--run-dir", tmp_path, check=2)
    assert "tf2gpu" in proc.stderr and "Traceback" not in proc.stderr


def test_min_branch_from_matrix():
    from provision import compat
    from provision.host import min_branch_for_image

    for flavor in ("tf1.15-gpu", "tf2-gpu"):
        expected = int(compat.load().image(flavor)["min_driver"].split(".")[0])
        assert min_branch_for_image(flavor) == expected
    assert min_branch_for_image("tf2-gpu") == 535  # matches the nvidia_driver role's default
    defaults = (ROOT / "playbooks/roles/nvidia_driver/defaults/main.yml").read_text()
    assert "\nnvidia_driver_min_branch: 535\n" in defaults


def test_local_run_needs_confirmation(tmp_path):
    """Changing this machine without --yes and without a terminal is refused (exit 2)."""
    proc = subprocess.run([bin_path("provision"), "host", "--tags", "nouveau", "--run-dir", str(tmp_path)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "refusing to change this machine (nouveau) without confirmation" in proc.stderr
    assert "--yes" in proc.stderr
    assert not (tmp_path / "artifacts").exists()  # nothing ran


def test_playbooks_pass_ansible_lint_production():
    lint = bin_path("ansible-lint")
    require(lint, "ansible-lint not installed (pip install -e '.[dev]')")
    proc = subprocess.run([lint, "--offline", "playbooks/"], cwd=str(ROOT), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in proc.stderr + proc.stdout


def test_driver_branch_and_conflicts_logic_for_ubuntu(tmp_path):
    """The nvidia_driver role's Ubuntu logic, evaluated by Ansible itself on made-up package lists
    (no Ubuntu root can be built here: debootstrap needs an Ubuntu mirror)."""
    roles = ROOT / "playbooks" / "roles" / "nvidia_driver"
    play = tmp_path / "logic.yml"
    play.write_text("""
- hosts: localhost
  gather_facts: false
  vars_files: ["{vars}"]
  vars:
    ansible_facts: {{distribution: Ubuntu}}
    nvidia_driver_open: false
    nvidia_driver_branch: ""
    nvidia_driver_pkgnames:
      stdout_lines: [nvidia-driver-390, nvidia-driver-470, nvidia-driver-470-server, nvidia-driver-535,
                     nvidia-driver-535-open, nvidia-driver-550, nvidia-driver-550-server]
    installed: [nvidia-driver-470, nvidia-dkms-470, libnvidia-compute-470, nvidia-driver-535, nvidia-dkms-535,
                nvidia-utils-535-server, libnvidia-compute-535, cuda-drivers, cuda-drivers-535,
                nvidia-container-toolkit, nvidia-settings]
  tasks:
    - ansible.builtin.debug:
        msg: "{{{{ item }}}}={{{{ lookup('ansible.builtin.template', '{tpl}', template_vars={{'nvidia_driver_min_branch': item}}) | trim }}}}"
      loop: [400, 510, 540, 600]
    - ansible.builtin.set_fact:
        nvidia_driver_chosen_branch: "535"
    - ansible.builtin.debug:
        msg: "REMOVE={{{{ installed | select('match', nvidia_driver_conflict_regex) | list | join(',') }}}}"
    - ansible.builtin.debug:
        msg: "PACKAGES={{{{ nvidia_driver_packages | join(',') }}}}"
""".format(vars=roles / "vars" / "Ubuntu.yml", tpl=roles / "templates" / "choose_branch.j2"))
    proc = subprocess.run([bin_path("ansible-playbook"), "-i", "localhost,", "-c", "local", str(play)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    out = proc.stdout
    for expected in ('"msg": "400=470"', '"msg": "510=535"', '"msg": "540=550"', '"msg": "600="'):
        assert expected in out, expected
    assert ('"msg": "REMOVE=nvidia-driver-470,nvidia-dkms-470,libnvidia-compute-470,cuda-drivers,cuda-drivers-535"'
            in out), out[-3000:]
    assert '"msg": "PACKAGES=nvidia-driver-535"' in out


def test_hosts_option_reports_unreachable(tmp_path):
    """--hosts builds an ssh inventory; a host nobody answers for is reported with exit 1."""
    import json

    proc = run_cli("provision", "host", "--hosts", "127.0.0.2", "--tags", "verify", "--json",
                   "--run-dir", tmp_path, check=1, timeout=120,
                   env=dict(__import__("os").environ, ANSIBLE_SSH_ARGS="-o ConnectTimeout=5 -o BatchMode=yes -p 1"))
    summary = json.loads(proc.stdout)
    assert summary["hosts"]["127.0.0.2"]["unreachable"] == 1
    assert "127.0.0.2" in (tmp_path / "inventory" / "hosts.yml").read_text()
    assert "failed or unreachable: 127.0.0.2 (exit 1" in proc.stderr
