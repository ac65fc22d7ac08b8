"""nouveau, the open-source driver, grabs the GPU first unless blacklisted; the NVIDIA
driver then cannot bind ("NVRM: ... nouveau ... obtained ownership of the NVIDIA device")."""
import re

from provision.doctor.core import check, fail, has_gpu, loaded_modules, no_gpu_skip, ok, pci_gpus, warn

BLACKLIST = re.compile(r"^\s*blacklist\s+nouveau\s*$", re.M)
TYPO = re.compile(r"^\s*blacklist\s+(nouneau|nuoveau|noveau|nouveu)\s*$", re.M)  # seen in tutorials


def modprobe_files(ctx):
    out = []
    for d in ("/etc/modprobe.d", "/usr/lib/modprobe.d", "/lib/modprobe.d"):
        for name in ctx.system.listdir(d):
            if name.endswith(".conf"):
                out.append((d + "/" + name, ctx.system.read(d + "/" + name) or ""))
    return out


@check("nouveau.loaded", "nouveau not loaded")
def loaded(ctx):
    if "nouveau" not in loaded_modules(ctx):
        return None if has_gpu(ctx) else no_gpu_skip()
    bound = [g["slot"] for g in pci_gpus(ctx) if g.get("driver") == "nouveau"]
    return fail("nouveau is loaded{}: the NVIDIA driver cannot take the GPU".format(
        " and bound to " + ", ".join(bound) if bound else ""),
        "provision host --tags nouveau (blacklists it, rebuilds the initramfs; reboot), "
        "then provision host --tags driver")


@check("nouveau.blacklisted", "nouveau blacklisted in /etc/modprobe.d")
def blacklisted(ctx):
    files = modprobe_files(ctx)
    hits = [path for path, text in files if BLACKLIST.search(text)]
    if hits:
        return ok("blacklisted in " + ", ".join(hits))
    typos = [path for path, text in files if TYPO.search(text)]
    if typos:
        return warn("{} has a misspelt 'blacklist nouneau' line, which blacklists nothing".format(", ".join(typos)),
                    "provision host --tags nouveau")
    if not has_gpu(ctx):
        return no_gpu_skip()
    return warn("no 'blacklist nouveau' in /etc/modprobe.d: nouveau may take the GPU at the next boot",
                "provision host --tags nouveau")
