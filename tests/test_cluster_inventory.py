"""Issue 22: `provision cluster --inventory` / `provision host --inventory` check every host name (and the
variables the slurm role writes into slurm.conf) with the one rule of `provision host --hosts`
(provision/inventory.py): a name that could add a slurm.conf line is exit 2 naming FILE:LINE, before
anything is written. The role's real slurm.conf.j2 is rendered with jinja2 (Ansible's own `extract` filter,
groups and host variables from Ansible's own inventory loader) to show what a name could do.
"""
import re
from pathlib import Path

import pytest

from conftest import have_module, require, run_cli

TEMPLATE = Path(__file__).resolve().parent.parent / "playbooks" / "roles" / "slurm" / "templates" / "slurm.conf.j2"
DEFAULTS = TEMPLATE.parent.parent / "defaults" / "main.yml"
# the template's two multi-word lines, as it writes them (a name with a blank would add a word)
NODE_RE = re.compile(r"^NodeName=[\w.-]+ NodeAddr=[\w.:-]+ CPUs=\d+ RealMemory=\d+( Gres=gpu:\d+)? State=UNKNOWN$")
PART_RE = re.compile(r"^PartitionName=\S+ Nodes=ALL Default=YES MaxTime=INFINITE State=UP$")

HOSTILE_NAMES = ["gpu1\nSlurmctldProlog=/tmp/evil", "gpu1 Gres=gpu:8", "gpu1=x", "gpu1;touch x", "gpu$(id)"]
HOSTILE_VARS = [("slurm_node_name", "n1 Gres=gpu:9"), ("slurm_node_addr", "10.0.0.1\nSlurmctldProlog=/tmp/evil"),
                ("slurm_node_cpus", "4 Gres=gpu:1"), ("slurm_node_memory_mb", "1000\nPrologSlurmctld=/x")]


def yaml_inventory(path, name="gpu1", hostvars=None):
    import yaml
    hosts = {"head": None, name: hostvars}
    path.write_text(yaml.safe_dump({"all": {"children": {"slurm_head": {"hosts": {"head": None}},
                                                         "slurm_nodes": {"hosts": hosts}}}}))
    return path


def ini_inventory(path, line):
    path.write_text("[slurm_head]\nhead\n\n[slurm_nodes]\nhead\n{}\n".format(line))
    return path


def render_slurm_conf(inventory):
    """slurm.conf as the role renders it, for the inventory's groups and host variables."""
    require(have_module("ansible"), "ansible-core not installed (pip install -e '.[host]')")
    import jinja2
    import yaml
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.filter.core import extract

    inv = InventoryManager(loader=DataLoader(), sources=[str(inventory)])
    groups = {g: [h.name for h in grp.get_hosts()] for g, grp in inv.groups.items()}
    hostvars = {}
    for i, h in enumerate(inv.get_hosts()):
        hv = {"ansible_facts": {"processor_vcpus": 8, "memtotal_mb": 16000,
                                "default_ipv4": {"address": "10.0.0.{}".format(i + 1)}}}
        for g in h.get_groups():
            hv.update(g.get_vars())
        hv.update(h.get_vars())
        hostvars[h.name] = hv
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["extract"] = extract
    context = dict(yaml.safe_load(DEFAULTS.read_text()), groups=groups, hostvars=hostvars,
                   ansible_managed="Ansible managed")
    return env.from_string(TEMPLATE.read_text()).render(**context), len(groups["slurm_nodes"])


def extra_lines(text, nodes, gpu_nodes=0):
    """The lines (and words) of a rendered slurm.conf the template did not write."""
    base = re.sub(r"\{%.*?%\}\n?|\{\{.*?\}\}", "", TEMPLATE.read_text(), flags=re.S)
    keys = {ln.split("=", 1)[0] for ln in base.splitlines() if "=" in ln and not ln.startswith("#")}
    bad = [ln for ln in text.splitlines() if ln and not ln.startswith("#") and not NODE_RE.match(ln)
           and not PART_RE.match(ln) and not (re.match(r"^\w+=\S+$", ln) and ln.split("=", 1)[0] in keys)]
    if sum(1 for ln in text.splitlines() if ln.startswith("NodeName=")) != nodes:
        bad.append("NodeName lines != {}".format(nodes))
    if text.count("Gres=gpu:") != gpu_nodes:
        bad.append("Gres on {} nodes, not {}".format(text.count("Gres=gpu:"), gpu_nodes))
    return bad


def test_rendered_slurm_conf_has_only_the_templates_lines(tmp_path):
    inv = yaml_inventory(tmp_path / "inv.yml", "node-2.example.org", {"slurm_node_gpus": 4, "slurm_node_cpus": 16})
    text, nodes = render_slurm_conf(inv)
    assert extra_lines(text, nodes, gpu_nodes=1) == [] and "NodeName=node-2 NodeAddr=10.0.0.2 CPUs=16" in text


@pytest.mark.parametrize("name", HOSTILE_NAMES[:2])
def test_what_an_unchecked_name_would_do(tmp_path, name):
    """The detector above sees the injection the check prevents (rendered without the check)."""
    text, nodes = render_slurm_conf(yaml_inventory(tmp_path / "inv.yml", name))
    assert extra_lines(text, nodes)


def _refused(tmp_path, verb, inv, line):
    proc = run_cli("provision", verb, "--inventory", inv, "--check", "--run-dir", tmp_path / "run", check=2,
                   cwd=tmp_path)
    assert "{}:{}".format(inv, line) in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()  # nothing written
    return proc


@pytest.mark.parametrize("verb", ["cluster", "host"])
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_host_names_in_a_yaml_inventory(tmp_path, verb, name):
    inv = yaml_inventory(tmp_path / "inv.yml", name)
    line = next(n for n, ln in enumerate(inv.read_text().splitlines(), 1) if "gpu" in ln)
    proc = _refused(tmp_path, verb, inv, line)
    assert "not a host name" in proc.stderr or "invalid host" in proc.stderr


@pytest.mark.parametrize("verb", ["cluster", "host"])
@pytest.mark.parametrize("key,value", HOSTILE_VARS)
def test_hostile_slurm_variables_in_a_yaml_inventory(tmp_path, verb, key, value):
    inv = yaml_inventory(tmp_path / "inv.yml", "gpu1", {key: value})
    line = next(n for n, ln in enumerate(inv.read_text().splitlines(), 1) if key in ln)
    proc = _refused(tmp_path, verb, inv, line)
    assert key in proc.stderr


@pytest.mark.parametrize("line", ["gpu1=x", "gpu1;x", "gpu1 slurm_node_name='n1 Gres=gpu:9'",
                                  "gpu1 slurm_node_cpus=4x", "gpu1 slurm_node_addr=\"a b\""])
def test_hostile_lines_in_an_ini_inventory(tmp_path, line):
    _refused(tmp_path, "cluster", ini_inventory(tmp_path / "hosts", line), 6)


def test_group_vars_and_folders_are_checked(tmp_path):
    folder = tmp_path / "inventory"
    folder.mkdir()
    ini_inventory(folder / "a", "gpu1")
    (folder / "b").write_text("[slurm_nodes:vars]\nslurm_node_name=n1 Gres=gpu:9\n")
    (folder / "notes.md").write_text("gpu1 Gres=gpu:8\n")  # Ansible skips .md files: so does the check
    _refused(tmp_path, "cluster", folder / "b", 2)
    proc = run_cli("provision", "cluster", "--inventory", folder, "--check", "--run-dir", tmp_path / "run", check=2)
    assert "{}:2".format(folder / "b") in proc.stderr


def test_ranges_ports_and_addresses_are_accepted(tmp_path):
    from provision.inventory import check_inventory
    check_inventory(ini_inventory(tmp_path / "hosts", "gpu[01:10].example.org:2222 slurm_node_addr=10.0.0.9"))
    check_inventory(yaml_inventory(tmp_path / "inv.yml", "fe80::1", {"slurm_node_name": "n1", "slurm_node_cpus": 8}))


def test_extra_vars_with_a_newline_are_refused(tmp_path):
    proc = run_cli("provision", "cluster", "--hosts", "gpu1", "-e", 'slurm_partition="gpu\\nSlurmctldProlog=/x"',
                   "--check", "--run-dir", tmp_path / "run", check=2)
    assert "-e slurm_partition" in proc.stderr and not (tmp_path / "run").exists()
