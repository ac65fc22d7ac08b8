"""Keep a working driver working: hold the kernel meta-packages (a new kernel without a
rebuilt module = no GPU after reboot), keep unattended-upgrades off kernel and nvidia
packages (a driver upgrade under a loaded module = "Driver/library version mismatch"),
and know the Secure Boot state (an unsigned DKMS module will not load under it)."""
import re

from provision.doctor.core import check, fail, has_gpu, kmod_loaded, no_gpu_skip, ok, skip, warn

# Meta-packages that pull new kernels: Ubuntu (-generic, -aws, -hwe...), Debian (-amd64, -cloud-amd64).
KERNEL_META = re.compile(r"^linux-(image|headers|generic|modules)?-?(generic|virtual|aws|gcp|azure|oem|lowlatency|"
                         r"amd64|cloud-amd64|hwe)[\w.-]*$|^linux-(generic|virtual|aws|gcp|azure|image-amd64)")
APT_CONF_D = "/etc/apt/apt.conf.d"
UU_CONF = APT_CONF_D + "/50unattended-upgrades"
AUTO_CONF = "/etc/apt/apt.conf.d/20auto-upgrades"
DPKG_STATUS = "/var/lib/dpkg/status"


def holds(ctx):
    """Held packages. Live, read dpkg's status file (what `apt-mark showhold` reports: packages
    whose selection is "hold") because apt-mark takes ~0.9 s here; a capture replays apt-mark."""
    status = ctx.system.read(DPKG_STATUS) if ctx.system.live else None
    if status is not None:
        return dpkg_holds(status)
    res = ctx.system.run(["apt-mark", "showhold"])
    if res.missing:
        return None
    return [line.strip() for line in res.stdout.splitlines() if line.strip()]


def dpkg_holds(status):
    held = []
    for stanza in status.split("\n\n"):
        name = re.search(r"^Package: (\S+)", stanza, re.M)
        state = re.search(r"^Status: (\S+)", stanza, re.M)
        if name and state and state.group(1) == "hold":
            held.append(name.group(1))
    return held


@check("kernel_hold.kernel", "kernel meta-packages held")
def kernel_held(ctx):
    held = holds(ctx)
    if held is None:
        return skip("apt-mark not found (not an apt-based system)")
    kernel_pkgs = [p for p in held if KERNEL_META.match(p) or p.startswith("linux-image-")]
    if kernel_pkgs:
        return ok("held: " + ", ".join(kernel_pkgs))
    if not has_gpu(ctx):
        return no_gpu_skip()
    return warn("no kernel package is held{}: the next upgrade can boot a kernel the nvidia module "
                "was not built for".format(" (held: " + ", ".join(held) + ")" if held else ""),
                "provision host --tags kernel-hold")


@check("kernel_hold.unattended", "unattended-upgrades leaves kernel and nvidia packages alone")
def unattended(ctx):
    auto = ctx.system.read(AUTO_CONF) or ""
    if re.search(r'APT::Periodic::Unattended-Upgrade\s+"0"', auto):
        return ok("unattended upgrades disabled in " + AUTO_CONF)
    if ctx.system.read(UU_CONF) is None:
        return ok("unattended-upgrades not configured")
    entries = blacklist_entries(ctx)
    missing = [name for name in ("linux-", "nvidia-") if not any(e.startswith(name) or e.startswith("^" + name)
                                                                 for e in entries)]
    if not missing:
        return ok("Package-Blacklist has " + ", ".join(entries))
    if not has_gpu(ctx):
        return no_gpu_skip()
    return warn("unattended-upgrades may upgrade {} packages under a running driver".format(
        " and ".join(m.rstrip("-") for m in missing)), "provision host --tags kernel-hold")


def blacklist_entries(ctx):
    """Package-Blacklist entries from every apt.conf.d file: apt reads them in lexical order and
    list entries accumulate, so the playbook's 51odstack-kernel-hold extends 50unattended-upgrades."""
    entries = []
    for name in ctx.system.listdir(APT_CONF_D):
        conf = ctx.system.read(APT_CONF_D + "/" + name) or ""
        for block in re.findall(r"Unattended-Upgrade::Package-Blacklist\s*\{(.*?)\};", conf, re.S):
            live = [line for line in block.splitlines() if not line.strip().startswith("//")]
            entries += re.findall(r'"([^"]+)"', "\n".join(live))
    return entries


@check("kernel_hold.secure_boot", "Secure Boot lets the nvidia module load")
def secure_boot(ctx):
    res = ctx.system.run(["mokutil", "--sb-state"])
    if res.missing:
        return skip("mokutil not installed: Secure Boot state unknown")
    state = res.output
    if "enabled" not in state.lower() or "disabled" in state.lower():
        return ok(state.splitlines()[0] if state else "Secure Boot disabled")
    if not has_gpu(ctx) or kmod_loaded(ctx):
        return ok(state.splitlines()[0] + " (the nvidia module is signed or not needed)")
    return fail(state.splitlines()[0] + " and the nvidia module is not loaded: an unsigned DKMS module is "
                "rejected ('Key was rejected by service')",
                "enroll the DKMS signing key (sudo mokutil --import /var/lib/dkms/mok.pub, reboot, "
                "confirm in MOK manager) or disable Secure Boot, then provision host --tags driver")
