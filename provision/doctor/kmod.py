"""The nvidia kernel module: loaded? built for the running kernel? The classic failure
is "kernel upgraded, driver gone": a new kernel boots, DKMS did not (or could not) build
the module for it, and nvidia-smi says it "couldn't communicate with the NVIDIA driver"."""
import re

from provision.doctor.core import check, fail, has_gpu, kernel, loaded_modules, no_gpu_skip, ok, warn

MODULE_FILE = re.compile(r"^nvidia(\.ko|-current\.ko)(\.xz|\.zst|\.gz)?$")
# `dkms status` lines, old ("nvidia, 396.45, 4.17.11-200.fc28.x86_64, x86_64: installed")
# and new ("nvidia/535.54.03, 6.2.0-26-generic, x86_64: installed") formats.
DKMS_LINE = re.compile(r"^(?P<mod>[\w.-]+)[,/]\s*(?P<ver>[^,]+),\s*(?P<kernel>[^,]+),\s*(?P<arch>[^:]+):\s*(?P<state>.+)$")


def dkms_entries(ctx):
    def probe():
        res = ctx.system.run(["dkms", "status"])
        if res.missing:
            return None
        out = []
        for line in res.stdout.splitlines():
            m = DKMS_LINE.match(line.strip())
            if m and m.group("mod").startswith("nvidia"):
                out.append({k: m.group(k).strip() for k in ("mod", "ver", "kernel", "state")})
        return out
    return ctx.memo("dkms", probe)


def module_files(ctx, release):
    """nvidia.ko files under /lib/modules/<release> (dkms puts them in updates/dkms)."""
    base = ctx.system.path("/lib/modules/" + release)
    if not base.is_dir():
        return []
    return sorted(str(p.relative_to(ctx.system.root)) for p in base.rglob("nvidia*") if MODULE_FILE.match(p.name))


def other_kernels_with_module(ctx, release):
    out = []
    for other in ctx.system.listdir("/lib/modules"):
        if other != release and module_files(ctx, other):
            out.append(other)
    return out


@check("kmod.loaded", "nvidia kernel module loaded")
def loaded(ctx):
    mods = loaded_modules(ctx)
    if "nvidia" in mods:
        version = (ctx.system.read("/sys/module/nvidia/version") or "").strip()
        return ok("nvidia {} loaded ({})".format(version or "(version ?)",
                                                ", ".join(m for m in mods if m.startswith("nvidia"))))
    if not has_gpu(ctx):
        return no_gpu_skip()
    return fail("the nvidia module is not in /proc/modules",
                "provision host --tags driver (then check kmod.built_for_kernel and nouveau.loaded)")


@check("kmod.built_for_kernel", "nvidia module built for the running kernel")
def built_for_kernel(ctx):
    release = kernel(ctx)
    if not release:
        return warn("running kernel unknown (uname -r failed)")
    files = module_files(ctx, release)
    dkms = dkms_entries(ctx) or []
    dkms_here = [d for d in dkms if d["kernel"] == release and d["state"].startswith("installed")]
    if files or dkms_here:
        where = files[0] if files else "dkms: {}/{} {}".format(dkms_here[0]["mod"], dkms_here[0]["ver"],
                                                              dkms_here[0]["state"])
        return ok("module for {}: {}".format(release, where))
    others = sorted({d["kernel"] for d in dkms} | set(other_kernels_with_module(ctx, release)))
    if others:
        return fail("kernel upgraded, driver gone: the running kernel {} has no nvidia module, but one is built "
                    "for {}".format(release, ", ".join(others)),
                    "provision host --tags driver (installs linux-headers-{} and rebuilds with dkms), "
                    "then provision host --tags kernel-hold".format(release))
    if not has_gpu(ctx):
        return no_gpu_skip()
    return fail("no nvidia module for {} and none for any other kernel: the driver is not installed".format(release),
                "provision host --tags driver")
