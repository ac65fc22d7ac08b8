"""NVIDIA GPUs on the PCI bus (sysfs), found even when the driver is broken or absent."""
from provision.doctor.core import check, ok, pci_gpus, warn


@check("pci.gpus", "NVIDIA GPU on the PCI bus")
def gpus(ctx):
    found = pci_gpus(ctx)
    if not found:
        return warn("no NVIDIA GPU on the PCI bus (vendor 0x10de): training runs on the CPU",
                    "use a GPU host for real training; the `cpu` image flavour works here")
    parts = ["{} [10de:{}] driver={}".format(g["slot"], g["device"].replace("0x", ""), g["driver"] or "none")
             for g in found]
    return ok("; ".join(parts))
