"""`provision doctor`: diagnose this machine for TF object-detection training, each
finding with evidence and the exact fix. Checks live one module per family (see
core.SECTIONS); heavy imports (pynvml, docker) happen inside the probes."""
import json
import sys

from odcore.argtypes import positive_float
from provision.doctor import report
from provision.doctor.capture import check_commands_file
from provision.doctor.core import Context, run_checks
from provision.doctor.system import LiveSystem, RecordedSystem

SECTION_NAMES = ["os", "cpu", "pci", "nvml", "kmod", "nouveau", "kernel_hold", "containers", "tensorflow", "images"]


def add_parser(subparsers):
    p = subparsers.add_parser("doctor", help="diagnose this host: CPU, GPU, driver, containers, TensorFlow",
                              description="Diagnose this host. Exit 0 when healthy, 1 when any check fails.")
    p.add_argument("--json", action="store_true", help='print {"checks": [{"id","section","status","evidence","fix"}]}')
    p.add_argument("--section", action="append", choices=SECTION_NAMES, metavar="S",
                   help="only this section (repeatable): " + ", ".join(SECTION_NAMES))
    p.add_argument("--no-tf", action="store_true", help="skip the TensorFlow probe (fast)")
    p.add_argument("--tf-timeout", type=positive_float("--tf-timeout", "120"), default=120.0, help="seconds before the TF probe counts as hung (default %(default)s)")
    p.add_argument("--root", metavar="DIR",
                   help="diagnose a captured system instead of this one (a directory laid out like / "
                        "with commands.yaml of recorded command outputs)")
    p.add_argument("--report", metavar="FILE",
                   help="also write a shareable environment report (OS, kernel, driver, nvidia-smi, CUDA/cuDNN "
                        "libraries, Python packages, Docker, findings) with host names, IPs, user names and "
                        "tokens redacted")
    p.set_defaults(func=run)


def make_system(root=None):

    if root is None:
        return LiveSystem()
    data = check_commands_file(root)  # a bad capture: exit 2 naming the file and field
    return RecordedSystem(root, data)


def diagnose(system, sections=None, with_tf=True, tf_timeout=120.0):

    return run_checks(Context(system, with_tf=with_tf, tf_timeout=tf_timeout), sections)


def run(args):
    system = make_system(args.root)
    findings = diagnose(system, args.section, with_tf=not args.no_tf, tf_timeout=args.tf_timeout)
    if getattr(args, "report", None):

        report.write(args.report, system, findings)
        sys.stderr.write("report: {} (identifying names and tokens redacted; read it before sharing)\n".format(
            args.report))
    if args.json:
        sys.stdout.write(json.dumps({"checks": [f.to_dict() for f in findings]}, indent=2) + "\n")
    else:
        from provision.doctor.render import render

        render(findings)
    return 1 if any(f.status == "fail" for f in findings) else 0
