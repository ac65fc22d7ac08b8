"""Host lists -> Ansible inventories written as data (YAML), never as text an attacker can extend.

    hosts = parse_hosts("gpu1,admin@10.0.0.7:2222,[fe80::1]:22")   # validated, or UserError (exit 2)
    write_inventory(path, hosts, group="gpu")                      # YAML inventory (ansible's yaml plugin)

A host is a DNS name (RFC 1123 labels), an IPv4 address or an IPv6 address (in [] when a port
follows), optionally with `user@` in front and `:port` behind. Anything else, e.g.
`gpu1 ansible_connection=local` (which would run every task on THIS machine, past the
this-machine confirmation) or `gpu1;touch x`, is refused: an INI inventory line treats what
follows the name as variables, so host names are never written into INI text.
"""
import ipaddress
import re

from odcore.errors import UserError
from odcore.fileio import write_text

LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
FIX = "use host names, IP addresses or user@host:port separated by commas, e.g. --hosts gpu1,admin@10.0.0.7:2222"


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
