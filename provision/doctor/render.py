"""flutter-doctor style report: one group per section, ✓ ok, ! warning, ✗ failure, - skipped;
the fix printed under each warning and failure."""
from rich.text import Text

from odcore.console import make_console

ICONS = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"), "skip": ("-", "dim")}
TITLES = {"os": "OS and kernel", "cpu": "CPU", "pci": "PCI bus", "nvml": "NVIDIA driver (NVML)",
          "kmod": "Kernel module", "nouveau": "nouveau", "kernel_hold": "Kernel hold and Secure Boot",
          "containers": "Containers", "tensorflow": "TensorFlow", "images": "Images"}


def section_status(findings):
    for status in ("fail", "warn", "ok"):
        if any(f.status == status for f in findings):
            return status
    return "skip"


def render(findings, console=None):
    console = console or make_console()
    order = []
    for f in findings:
        if f.section not in order:
            order.append(f.section)
    for section in order:
        group = [f for f in findings if f.section == section]
        icon, style = ICONS[section_status(group)]
        console.print(Text.assemble(("[{}] ".format(icon), style), (TITLES.get(section, section), "bold")))
        for f in group:
            icon, style = ICONS[f.status]
            console.print(Text.assemble("    ", (icon + " ", style), (f.id + ": ", "dim"), f.evidence))
            if f.fix and f.status in ("warn", "fail"):
                console.print(Text.assemble("      ", ("fix: ", "bold " + style), f.fix))
    counts = {s: sum(1 for f in findings if f.status == s) for s in ICONS}
    summary = "{fail} failed, {warn} warnings, {ok} ok, {skip} skipped".format(**counts)
    console.print()
    console.print(Text("Doctor found issues: " + summary if counts["fail"] else "No failures: " + summary,
                       style="red" if counts["fail"] else "green"))
