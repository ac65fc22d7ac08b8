"""`provision cluster`: install and configure Slurm on an inventory (playbooks/cluster.yml, role slurm).

munge on every host with the head's key, slurmctld on the head (inventory group slurm_head),
slurmd on the nodes (slurm_nodes), slurm.conf generated from the hosts' facts (CPUs, memory,
Gres=gpu:N from nvidia-smi), gres.conf (AutoDetect=nvml where the Slurm build has it) and
cgroup.conf. Runs through the same ansible-runner machinery as `provision host` (per-task lines,
per-host table, --check/--diff, exit codes); a second run changes nothing.

    provision cluster --hosts head,gpu1,gpu2 --check   # head: the first host
    provision cluster -i cluster.yml -e slurm_gpus=8
"""
import time
from pathlib import Path

from odcore.errors import UserError
from odcore.fileio import write_text
from provision import host, inventory


EXAMPLES = "examples:\n" + __doc__.split("\n\n")[2].rstrip().replace("    provision", "  provision")


def add_parser(subparsers):
    p = subparsers.add_parser("cluster", help="install and configure Slurm (munge, slurmctld, slurmd) on an inventory",
                              description=__doc__.split("\n\n")[0], epilog=EXAMPLES)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--inventory", "-i", metavar="FILE",
                        help="Ansible inventory with groups slurm_head (one host) and slurm_nodes")
    target.add_argument("--hosts", metavar="HEAD,NODE,...",
                        help="comma-separated hosts over ssh: the first is the head, all of them are nodes")
    p.add_argument("--limit", "-l", metavar="PATTERN", help="only these hosts of the inventory")
    p.add_argument("--check", action="store_true", help="dry run: report what would change (implies --diff)")
    p.add_argument("--diff", action="store_true", help="show file differences")
    p.add_argument("-e", "--extra-vars", action="append", default=[], metavar="KEY=VALUE",
                   help="set a role variable (playbooks/roles/slurm/defaults/main.yml); repeatable")
    p.add_argument("--forks", type=int, default=10, help="hosts handled in parallel (default 10)")
    p.add_argument("--run-dir", metavar="DIR", help="where the run's artifacts go (default runs/cluster-<time>)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout (lines go to stderr)")
    p.set_defaults(func=run, tags=None, skip_tags=None, image=None, allow_reboot=False, yes=True,
                   playbook="cluster.yml")


def run(args):

    if not (args.inventory or args.hosts):
        raise UserError("no hosts", where="--hosts/--inventory",
                        fix="pass --hosts HEAD,NODE,... or -i INVENTORY (groups slurm_head, slurm_nodes)")
    if args.hosts:
        hosts = inventory.parse_hosts(args.hosts)
        host.parse_extra_vars(args.extra_vars)  # refused before the inventory below is written
        args.run_dir = str(Path(args.run_dir or Path("runs") / time.strftime("cluster-%Y%m%d-%H%M%S")).resolve())
        data = inventory.inventory_data(hosts, "slurm_nodes")
        head = hosts[0]["name"]
        data["all"]["children"]["slurm_head"] = {"hosts": {head: data["all"]["children"]["slurm_nodes"]["hosts"][head]}}
        path = Path(args.run_dir) / "inventory" / "cluster.yml"
        import yaml


        write_text(path, yaml.safe_dump(data, default_flow_style=False, sort_keys=False))
        args.inventory, args.hosts = str(path), None
    return host.run(args)
