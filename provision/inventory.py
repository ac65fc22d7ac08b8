"""Host lists -> Ansible inventories written as data (YAML), never as text an attacker can extend.

    hosts = parse_hosts("gpu1,admin@10.0.0.7:2222,[fe80::1]:22")   # validated, or UserError (exit 2)
    write_inventory(path, hosts, group="gpu")                      # YAML inventory (ansible's yaml plugin)

A host is a DNS name (RFC 1123 labels), an IPv4 address or an IPv6 address (in [] when a port
follows), optionally with `user@` in front and `:port` behind. Anything else, e.g.
`gpu1 ansible_connection=local` (which would run every task on THIS machine, past the
this-machine confirmation) or `gpu1;touch x`, is refused: an INI inventory line treats what
follows the name as variables, so host names are never written into INI text.

`localhost`, `127.0.0.1` and `::1` (no `user@`, no `:port`) are THIS machine: they get
`ansible_connection: local` (ssh to oneself usually has no key and fails) and the
this-machine confirmation; `admin@localhost` or `localhost:2222` stay ssh (a tunnel, a container).
A user's own inventory (`--inventory FILE`, static INI or YAML, or a folder of them) goes through the same
check before anything runs (`check_inventory`): every host name, and the variables the slurm role writes
into slurm.conf, so a name like "gpu1\nSlurmctldProlog=/x" or "gpu1 Gres=gpu:8" is exit 2 naming FILE:LINE.
"""
import ipaddress
import os
import re
import shlex
import sys
from pathlib import Path

from odcore.errors import UserError
from odcore.fileio import write_text

LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
FIX = "use host names, IP addresses or user@host:port separated by commas, e.g. --hosts gpu1,admin@10.0.0.7:2222"


LOCAL_NAMES = ("localhost", "localhost.localdomain", "127.0.0.1", "::1")


def is_local(host):
    """A plain localhost entry: reached with the local connection, not ssh."""
    return host["host"].lower().rstrip(".") in LOCAL_NAMES and not host["user"] and not host["port"]


def local_vars():
    # the system Python has python3-apt, which the apt module needs
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    return {"ansible_connection": "local", "ansible_python_interpreter": python}


def _is_hostname(name):
    if len(name) > 253:
        return False
    return all(LABEL.match(label) for label in name.rstrip(".").split("."))


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def parse_host(spec, where="--hosts"):
    """{'name', 'host', 'user', 'port'} for one `[user@]host[:port]` entry."""
    def bad(why):
        return UserError("invalid host {!r}: {}".format(spec, why), where=where, fix=FIX)

    user = port = None
    rest = spec
    if "@" in rest:
        user, rest = rest.split("@", 1)
        if not USER.match(user):
            raise bad("user name must be letters, digits, _ . -")
    if rest.startswith("["):  # [v6]:port
        m = re.match(r"^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$", rest)
        if not m or not _is_ip(m.group(1)):
            raise bad("expected [IPv6 address]:port")
        host, port = m.group(1), m.group(2)
    elif rest.count(":") == 1:
        host, port = rest.split(":")
        if not port.isdigit():
            raise bad("port must be a number")
    else:
        host = rest
    if not host or not (_is_ip(host) or _is_hostname(host)):
        raise bad("not a host name or IP address")
    if port is not None:
        port = int(port)
        if not 0 < port < 65536:
            raise bad("port must be 1-65535")
    return {"name": host, "host": host, "user": user, "port": port}


def parse_hosts(text, where="--hosts"):
    hosts = [parse_host(h.strip(), where) for h in (text or "").split(",") if h.strip()]
    if not hosts:
        raise UserError("no host names", where=where, fix=FIX)
    seen, hosts_seen = set(), [h["host"] for h in hosts]
    for h in hosts:
        key = (h["host"], h["port"] or 22)
        if key in seen:
            raise UserError("host {} listed twice".format(h["host"]), where=where, fix="list each host once")
        seen.add(key)
        if hosts_seen.count(h["host"]) > 1:  # one address, several ssh ports: name them apart
            h["name"] = "{}-{}".format(h["host"], h["port"] or 22)
    return hosts


def inventory_data(hosts, group="gpu", extra_vars=None):
    """The inventory as a dict for ansible's YAML inventory plugin."""
    entries = {}
    for h in hosts:
        hostvars = dict(extra_vars or {})
        if is_local(h):
            hostvars.update(local_vars())
        if h["name"] != h["host"]:
            hostvars["ansible_host"] = h["host"]
        if h["user"]:
            hostvars["ansible_user"] = h["user"]
        if h["port"]:
            hostvars["ansible_port"] = h["port"]
        entries[h["name"]] = hostvars or None
    return {"all": {"children": {group: {"hosts": entries}}}}


def write_inventory(path, hosts, group="gpu", extra_vars=None):
    import yaml


    write_text(path, yaml.safe_dump(inventory_data(hosts, group, extra_vars), default_flow_style=False, sort_keys=False))
    return path


# -- a user's inventory file ---------------------------------------------------------------------
# host variables the slurm role writes into slurm.conf (playbooks/roles/slurm/templates/slurm.conf.j2)
NAME_VARS = ("slurm_node_name", "slurm_node_addr")
COUNT_VARS = ("slurm_node_cpus", "slurm_node_memory_mb", "slurm_node_gpus")
RANGE = re.compile(r"\[[0-9A-Za-z]+:[0-9A-Za-z]+(:[0-9]+)?\]")  # gpu[01:10]: Ansible's host ranges
# what Ansible's inventory loader skips in a folder (ansible.cfg inventory_ignore_extensions)
IGNORED = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".ini", ".cfg", ".retry")


def check_host_name(name, where):
    """One inventory host name (a pattern with ranges allowed) through parse_host."""
    name = str(name)
    parse_host(RANGE.sub("0", name) if "[" in name and not name.startswith("[") else name, where)


def check_host_var(key, value, where):
    key = str(key)
    if key in NAME_VARS:
        parse_host(str(value), where="{} ({})".format(where, key))
    elif key in COUNT_VARS and not re.match(r"^[0-9]+$", str(value).strip()):
        raise UserError("{} must be a whole number, got {!r}".format(key, value), where=where,
                        fix="e.g. {}=8".format(key))


def check_inventory(path):
    """Refuse host names and slurm.conf variables that could add lines to a rendered config (exit 2)."""
    path = Path(path)
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_file() and not child.name.startswith(".") and not child.name.endswith(IGNORED):
                check_inventory(child)
        return
    if not path.is_file() or os.access(str(path), os.X_OK):
        return  # a dynamic inventory script: its names exist only when it runs
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError("cannot read the inventory: {}".format(exc), where=str(path), fix="pass a UTF-8 text file")
    if path.suffix in (".yml", ".yaml", ".json"):
        _check_yaml_inventory(path, text)
    else:
        _check_ini_inventory(path, text)


def _check_ini_inventory(path, text):
    section = "hosts"
    for n, line in enumerate(text.splitlines(), 1):
        where = "{}:{}".format(path, n)
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].partition(":")[2] or "hosts"
            continue
        try:
            words = shlex.split(stripped, comments=True)
        except ValueError as exc:
            raise UserError("cannot split the line: {}".format(exc), where=where, fix="close the quote")
        if section == "children" or not words:
            continue
        if section == "hosts":
            check_host_name(words[0], where)
            words = words[1:]
        else:  # [group:vars]: one KEY=VALUE a line
            words = [stripped]
        for word in words:
            key, _, value = word.partition("=")
            check_host_var(key.strip(), value.strip(), where)


def _check_yaml_inventory(path, text):
    import yaml

    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise UserError("not valid YAML: {}".format(exc), where=str(path), fix="fix the inventory's YAML")
    if isinstance(root, yaml.MappingNode):
        for _, group in root.value:
            _check_yaml_group(path, group)


def _where(path, node):
    return "{}:{}".format(path, node.start_mark.line + 1)


def _check_yaml_vars(path, node):
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(value, yaml.ScalarNode):
                check_host_var(key.value, value.value, _where(path, value))


def _check_yaml_group(path, group):
    import yaml

    if not isinstance(group, yaml.MappingNode):
        return
    for key, value in group.value:
        if key.value == "hosts" and isinstance(value, yaml.MappingNode):
            for name, hostvars in value.value:
                check_host_name(name.value, _where(path, name))
                _check_yaml_vars(path, hostvars)
        elif key.value == "vars":
            _check_yaml_vars(path, value)
        elif key.value == "children" and isinstance(value, yaml.MappingNode):
            for _, child in value.value:
                _check_yaml_group(path, child)
