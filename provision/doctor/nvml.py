"""The NVIDIA driver as NVML (nvidia-ml-py) sees it, NVML's errors mapped to their causes."""
from provision.doctor.core import check, fail, has_gpu, matrix, nvml, ok, skip
from provision.doctor.system import NvmlFailure, classify_nvml_message

CAUSES = {
    "no_library": ("NVML library (libnvidia-ml.so) not found: no NVIDIA driver is installed",
                   "provision host --tags driver"),
    "driver_not_loaded": ("the NVIDIA kernel module is not loaded (nvidia-smi: \"couldn't communicate with "
                          "the NVIDIA driver\"); usually the kernel was upgraded and the module not rebuilt, or "
                          "nouveau holds the GPU, or Secure Boot rejected the module",
                          "provision host --tags driver (rebuilds the module for the running kernel), "
                          "then provision host --tags kernel-hold"),
    "version_mismatch": ("Driver/library version mismatch: the driver's user-space libraries were upgraded "
                         "but the old kernel module is still loaded",
                         "reboot (or unload the modules: rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia), "
                         "then provision host --tags kernel-hold so unattended upgrades stop doing it"),
    "no_binding": ("nvidia-ml-py is not installed in this Python", "pip install nvidia-ml-py"),
}


def key_line(message):
    """The line of a (possibly multi-line) NVML/nvidia-smi message that names the failure."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    for line in lines:
        if classify_nvml_message(line) != "other":
            return line
    return lines[0] if lines else ""


def gpu_cc(gpu):
    """Compute capability from NVML, else from the compat matrix's GPU table."""
    if gpu.compute_capability:
        return gpu.compute_capability
    m = matrix()
    if m is None:
        return None
    try:
        return m.gpu(gpu.name)["compute_capability"]
    except Exception:
        return None


@check("nvml.driver", "NVIDIA driver (NVML)")
def driver(ctx):
    try:
        snap = nvml(ctx)
    except NvmlFailure as exc:
        cause, fix = CAUSES.get(exc.kind, ("NVML failed: " + exc.message, "provision host --tags driver"))
        evidence = "{} [{}]".format(cause, key_line(exc.message) or exc.kind)
        if not has_gpu(ctx):
            return skip("no NVIDIA GPU; " + evidence) if exc.kind != "no_binding" else skip(evidence)
        return fail(evidence, fix)
    return ok("driver {}, CUDA driver API {}".format(snap.driver_version, snap.cuda_driver_version or "?"))


@check("nvml.gpus", "GPUs seen by the driver")
def gpus(ctx):
    try:
        snap = nvml(ctx)
    except NvmlFailure:
        return skip("NVML unavailable: see nvml.driver")
    if not snap.gpus:
        return fail("the driver is loaded but reports no GPU", "check dmesg for NVRM errors; reseat/reset the GPU")
    parts = []
    for g in snap.gpus:
        cc = gpu_cc(g)
        parts.append("{} (cc {}, {} MiB)".format(g.name, cc or "?", g.memory_mib if g.memory_mib is not None else "?"))
    return ok("; ".join(parts))
