"""`provision host`: set up GPU hosts with the playbooks in playbooks/ through ansible-runner.

Default target is this machine (local connection; asks before changing it unless --yes);
`--hosts a,b` or `--inventory FILE` reach many servers at once. Runner events become a line per
task and host, a progress bar and a final per-host table; the exit code is 1 when any host failed
or was unreachable. Each run keeps its artifacts under a run directory (default
runs/host-<time>/) with only an allow-listed environment: ansible-runner otherwise copies the
whole process environment (tokens, passwords) into artifacts/<ident>/command.
"""
import difflib
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

from odcore import install
from odcore.errors import UserError
from odcore.fileio import write_json
from provision import compat, inventory
from provision.inventory import check_inventory, parse_hosts

# $ODSTACK_PLAYBOOKS > the wheel's odcore/share/playbooks > the checkout's playbooks/
PLAYBOOKS = Path(install.find("playbooks", env="ODSTACK_PLAYBOOKS") or "playbooks")
TAGS = ["nouveau", "driver", "driver-repo", "kernel-hold", "docker", "toolkit", "verify"]
# What the ansible-playbook child may see of our environment; everything else stays out of it and
# out of the artifacts. Runner/Ansible's own variables (ANSIBLE_*, RUNNER_*, AWX_*) are kept too.
ENV_ALLOW = {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TMPDIR", "USER", "LOGNAME",
             "SSH_AUTH_SOCK", "PYTHONPATH", "VIRTUAL_ENV"}
ENV_PREFIXES = ("ANSIBLE_", "RUNNER_", "AWX_")
STATS = [("ok", "ok"), ("changed", "changed"), ("failures", "failed"), ("dark", "unreachable"),
         ("skipped", "skipped"), ("rescued", "rescued"), ("ignored", "ignored")]


EXAMPLES = """examples:
  provision host --check                        # this machine, dry run
  provision host --yes --tags nouveau,driver    # this machine, for real
  provision host --hosts gpu1,gpu2 --image tf1.15-gpu
  provision host -i inventory.ini --limit gpu3 --tags verify --json"""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "host", help="set up GPU hosts (nouveau, driver, kernel hold, docker, toolkit, verify) with Ansible",
        description="Run odstack's playbooks through ansible-runner against this machine or an inventory.",
        epilog=EXAMPLES)
    target = p.add_mutually_exclusive_group()
    target.add_argument("--inventory", "-i", metavar="FILE", help="Ansible inventory file (many hosts in parallel)")
    target.add_argument("--hosts", metavar="A,B",
                        help="comma-separated hosts reached over ssh (localhost: this machine, no ssh)")
    p.add_argument("--limit", "-l", metavar="PATTERN", help="only these hosts of the inventory")
    p.add_argument("--tags", "-t", metavar="T[,T]", help="only these steps: " + ", ".join(TAGS))
    p.add_argument("--skip-tags", metavar="T[,T]", help="skip these steps")
    p.add_argument("--check", action="store_true", help="dry run: report what would change (implies --diff)")
    p.add_argument("--diff", action="store_true", help="show file differences")
    p.add_argument("-e", "--extra-vars", action="append", default=[], metavar="KEY=VALUE",
                   help="set a role variable (value parsed as YAML); repeatable")
    p.add_argument("--image", metavar="FLAVOR",
                   help="pick the minimum driver branch for this image from the compatibility matrix")
    p.add_argument("--allow-reboot", action="store_true", help="reboot hosts when the nouveau blacklist changed")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before changing this machine")
    p.add_argument("--forks", type=int, default=10, help="hosts handled in parallel (default 10)")
    p.add_argument("--run-dir", metavar="DIR", help="where the run's artifacts go (default runs/host-<time>)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout (lines go to stderr)")
    p.set_defaults(func=run)


def parse_tags(text, option="--tags"):
    if not text:
        return []
    tags = [t.strip() for t in text.split(",") if t.strip()]
    for tag in tags:
        if tag not in TAGS:
            close = difflib.get_close_matches(tag, TAGS, n=1)
            raise UserError("unknown tag {!r}".format(tag), where=option,
                            fix=("did you mean {!r}? ".format(close[0]) if close else "") + "tags: " + ", ".join(TAGS))
    return tags


def parse_extra_vars(items):
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError("expected KEY=VALUE, got {!r}".format(item), where="-e",
                            fix="e.g. -e nvidia_driver_branch=550 -e docker_users=[alice]")
        try:
            out[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as exc:
            raise UserError("value of {} is not valid YAML: {}".format(key, exc), where="-e")
        if re.search("[\x00-\x1f\x7f]", key + str(out[key.strip()])):  # a newline would add a config line
            raise UserError("-e {} contains a control character".format(key.strip()), where="-e " + key.strip(),
                            fix="remove newlines, tabs and other control characters")
    return out


def min_branch_for_image(flavor):
    """Driver branch floor = major of the image's min_driver in the compatibility matrix."""

    image = compat.load().image(flavor)  # UnknownKey (a UserError) names the choices
    if not image.get("min_driver"):
        raise UserError("image {!r} runs without an NVIDIA driver".format(flavor), where="--image",
                        fix="drop --image, or pick a GPU flavour (provision matrix)")
    return int(str(image["min_driver"]).split(".")[0])


def build_inventory(args, run_dir):
    """(inventory path or string, is_local)."""
    if args.inventory:
        path = Path(args.inventory)
        if not path.exists():
            raise UserError("inventory file not found", where=str(path),
                            fix="pass an existing Ansible inventory, or --hosts a,b")
        return str(path.resolve()), False

    path = run_dir / "inventory" / "hosts.yml"  # data, not INI text: a host name cannot add variables
    hosts = inventory.parse_hosts(args.hosts or "localhost")  # localhost: the local connection
    inventory.write_inventory(path, hosts)
    return str(path), any(inventory.is_local(h) for h in hosts)


def confirm_local(args):
    if args.check or args.yes:
        return
    what = ", ".join(parse_tags(args.tags)) or "all steps"
    if not sys.stdin.isatty():
        raise UserError("refusing to change this machine ({}) without confirmation".format(what),
                        fix="re-run with --yes, or --check for a dry run")
    answer = input("provision host will change THIS machine ({}). Continue? [y/N] ".format(what))
    if answer.strip().lower() not in ("y", "yes"):
        raise UserError("cancelled", code=1)


def collections_env(inventory):
    """Make community.general reachable when the inventory uses one of its connections (chroot)."""
    paths = [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(":") if p]
    try:
        text = Path(inventory).read_text()
    except OSError:
        text = ""
    if "community.general." in text:
        from provision.hostrun.collections import ensure_collection

        paths.insert(0, str(ensure_collection("community.general")))
    return {"ANSIBLE_COLLECTIONS_PATH": ":".join(paths)} if paths else {}


def scrub_env(env, keep):
    return {k: v for k, v in env.items() if k in ENV_ALLOW or k in keep or k.startswith(ENV_PREFIXES)}


class Reporter:
    """Turns runner events into lines, a progress bar and the summary."""

    def __init__(self, console, progress, task_id, show_diff=False):
        self.console, self.progress, self.task_id = console, progress, task_id
        self.show_diff = show_diff
        self.stats = {}
        self.failures = []
        self.reports = []
        self.results = 0

    def __call__(self, event):
        kind = event.get("event", "")
        data = event.get("event_data", {})
        host, task = data.get("host", ""), data.get("task", "")
        res = data.get("res", {}) if isinstance(data.get("res"), dict) else {}
        if kind == "playbook_on_task_start":
            self.progress.update(self.task_id, description=task[:50])
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"):
            if kind == "runner_on_ok":
                state = "changed" if res.get("changed") else "ok"
            else:
                state = {"runner_on_failed": "failed", "runner_on_unreachable": "unreachable",
                         "runner_on_skipped": "skipped"}[kind]
            if kind == "runner_on_failed" and data.get("ignore_errors"):
                state = "ignored"
            style = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "bold red",
                     "skipped": "dim", "ignored": "dim"}[state]
            role = data.get("role")
            name = "{}: {}".format(role, task) if role else task
            self.console.print("[{}]{:<11}[/] {:<12} {}".format(style, state, host, name), highlight=False,
                               soft_wrap=True)
            if self.show_diff and state == "changed":
                self.print_diff(res.get("diff"))
            if state in ("failed", "unreachable"):
                msg = res.get("msg") or res.get("stderr") or res.get("stdout") or json.dumps(res)[:500]
                self.failures.append({"host": host, "task": task, "state": state, "msg": str(msg).strip()})
                self.console.print("            {}".format(str(msg).strip()), style="red", highlight=False,
                                   markup=False, soft_wrap=True)
            if data.get("task_action", "").endswith("debug") and "msg" in res:
                self.reports.append({"host": host, "task": task, "msg": res["msg"]})
            self.results += 1
            self.progress.advance(self.task_id)
        elif kind == "playbook_on_stats":
            for key, label in STATS:
                for h, n in (data.get(key) or {}).items():
                    self.stats.setdefault(h, {l: 0 for _, l in STATS})[label] = n

    def print_diff(self, diffs):
        """--diff: what a changed task did (or would do, with --check), as a unified diff."""
        for d in diffs if isinstance(diffs, list) else [diffs] if isinstance(diffs, dict) else []:
            if "before" in d or "after" in d:
                before, after = str(d.get("before", "")), str(d.get("after", ""))
                lines = difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                             d.get("before_header", "before"), d.get("after_header", "after"))
                text = "".join(lines)
            else:
                text = str(d.get("prepared", ""))
            for line in text.splitlines():
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
                self.console.print("            " + line, style=style, markup=False, highlight=False, soft_wrap=True)

    def table(self):
        from rich.table import Table

        table = Table(title="provision host")
        table.add_column("host")
        for _, label in STATS:
            table.add_column(label, justify="right")
        for h in sorted(self.stats):
            row = self.stats[h]
            style = "red" if row["failed"] or row["unreachable"] else ("yellow" if row["changed"] else "green")
            table.add_row(h, *[str(row[l]) for _, l in STATS], style=style)
        return table


STOP_GRACE = 30


def _children():
    """PIDs of this process's direct children (the ansible-playbook that pexpect spawned)."""
    me = str(os.getpid())
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/{}/stat".format(entry)) as f:
                    if f.read().rsplit(")", 1)[1].split()[1] == me:
                        pids.append(int(entry))
            except (OSError, IndexError):
                pass
    return pids


def _stop_requested(interrupted):
    if not interrupted:
        return False
    if len(interrupted) == 1:  # first look after Ctrl-C: forward it once
        interrupted.append(None)
        for pid in _children():
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass
    return time.monotonic() - interrupted[0] > STOP_GRACE


def runner_config(args, run_dir, inventory, tags, skip_tags, extravars):
    """The ansible-runner configuration of one `provision host` run, its environment scrubbed."""
    import ansible_runner
    cmdline = []
    if args.check:
        cmdline.append("--check")
    if args.check or args.diff:
        cmdline.append("--diff")
    envvars = {"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
               "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True")}
    envvars.update(collections_env(inventory))
    # this venv's ansible-playbook, even when the venv is not activated
    bindir = str(Path(sys.executable).parent)
    envvars["PATH"] = bindir + os.pathsep + os.environ.get("PATH", os.defpath)
    config = ansible_runner.RunnerConfig(
        private_data_dir=str(run_dir), project_dir=str(PLAYBOOKS), playbook=getattr(args, "playbook", "site.yml"),
        inventory=inventory, limit=args.limit, tags=",".join(tags) or None,
        skip_tags=",".join(skip_tags) or None, extravars=extravars, forks=args.forks,
        cmdline=" ".join(cmdline) or None, envvars=envvars, quiet=True, suppress_env_files=True,
        ident="run")
    config.prepare()
    # prepare() seeded env with os.environ: keep only what the child needs (and the artifacts may show)
    config.env = scrub_env(config.env, set(envvars))
    return config


def play(config, console, show_diff):
    """Run the playbook with a live progress line; -> (reporter, status, ansible rc, interrupted)."""
    import ansible_runner
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed} results"), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        reporter = Reporter(console, progress, progress.add_task("starting", total=None), show_diff=show_diff)
        # Ctrl-C: ask ansible-playbook to stop (SIGINT: it terminates its workers, which run in
        # their own sessions and would survive the runner's SIGKILL of its process group), give it
        # STOP_GRACE seconds, then let the runner kill it; artifacts are kept; exit 130.
        interrupted = []
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(time.monotonic()))
        try:
            runner = ansible_runner.Runner(config, event_handler=lambda e: reporter(e) or True,
                                           cancel_callback=lambda: _stop_requested(interrupted))
            status, rc = runner.run()
        finally:
            signal.signal(signal.SIGINT, previous)
    return reporter, status, rc, interrupted


def run(args):
    from rich.console import Console

    tags = parse_tags(args.tags)
    skip_tags = parse_tags(args.skip_tags, "--skip-tags")
    extravars = parse_extra_vars(args.extra_vars)
    if args.allow_reboot:
        extravars["provision_allow_reboot"] = True
    if args.image and "nvidia_driver_min_branch" not in extravars:
        extravars["nvidia_driver_min_branch"] = min_branch_for_image(args.image)
    if not (PLAYBOOKS / "site.yml").exists():
        raise UserError("playbooks not found", where=str(PLAYBOOKS),
                        fix="reinstall odstack (the wheel carries them), run from a checkout, "
                            "or set ODSTACK_PLAYBOOKS")
    if args.hosts:  # refuse bad host names before anything is written
        parse_hosts(args.hosts)
    elif args.inventory and Path(args.inventory).exists():  # the same rule for a user's own inventory
        check_inventory(args.inventory)
    run_dir = Path(args.run_dir or Path("runs") / time.strftime("host-%Y%m%d-%H%M%S")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    inventory, local = build_inventory(args, run_dir)
    if local:
        confirm_local(args)

    config = runner_config(args, run_dir, inventory, tags, skip_tags, extravars)
    console = Console(stderr=args.json, highlight=False)
    reporter, status, rc, interrupted = play(config, console, show_diff=args.check or args.diff)
    if interrupted:
        console.print("interrupted: ansible-playbook stopped; partial artifacts in {}".format(run_dir / "artifacts"),
                      style="bold red", soft_wrap=True, highlight=False)
        raise KeyboardInterrupt

    if not reporter.stats and not interrupted:
        raise UserError("no host matched: nothing was run", where="--limit" if args.limit else "--inventory/--hosts",
                        fix="check the host names (ansible-inventory -i INVENTORY --list) and --limit")
    console.print(reporter.table())
    bad = sorted(h for h, row in reporter.stats.items() if row["failed"] or row["unreachable"])
    code = 0 if rc == 0 and not bad and status == "successful" else 1
    summary = {"status": status, "ansible_rc": rc, "exit_code": code, "run_dir": str(run_dir),
               "check": bool(args.check), "tags": tags, "hosts": reporter.stats,
               "failures": reporter.failures, "reports": reporter.reports}

    write_json(run_dir / "summary.json", summary)
    if bad:
        console.print("[bold red]failed or unreachable:[/] {} (exit {}; details: {})".format(
            ", ".join(bad), code, run_dir / "artifacts"), highlight=False, soft_wrap=True)
    elif code:
        console.print("[bold red]ansible-playbook exited {} ({})[/]; see {}".format(rc, status, run_dir / "artifacts"),
                      soft_wrap=True)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
    return code
