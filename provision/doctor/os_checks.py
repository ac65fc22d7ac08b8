"""OS and kernel: which distribution (the host playbooks target apt-based systems) and
which kernel is running (the driver module must be built for exactly this one)."""
import shlex

from provision.doctor.core import check, fail, kernel, ok, warn


def os_release(system):
    text = system.read("/etc/os-release") or system.read("/usr/lib/os-release") or ""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            try:
                fields[key.strip()] = " ".join(shlex.split(value))
            except ValueError:
                fields[key.strip()] = value.strip().strip('"')
    return fields


@check("os.release", "distribution")
def distribution(ctx):
    fields = os_release(ctx.system)
    if not fields:
        return warn("no /etc/os-release: cannot tell the distribution",
                    "doctor and `provision host` expect Ubuntu or Debian")
    name = fields.get("PRETTY_NAME") or fields.get("NAME", "?")
    family = {fields.get("ID", "")} | set(fields.get("ID_LIKE", "").split())
    if not family & {"debian", "ubuntu"}:
        return warn("{}: not apt-based; `provision host` playbooks target Ubuntu/Debian".format(name),
                    "install the NVIDIA driver, container toolkit and Docker with your distribution's tools")
    return ok(name)


@check("os.kernel", "running kernel")
def running_kernel(ctx):
    release = kernel(ctx)
    if not release:
        return fail("`uname -r` gave nothing", "check that coreutils is installed")
    return ok("Linux " + release)
