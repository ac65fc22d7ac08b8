"""Image flavours (from the compat matrix): which ones this host's driver and GPUs can run,
and the recommended one."""
from packaging.version import InvalidVersion, Version

from provision.doctor.core import matrix_problem, check, has_gpu, matrix, nvml, ok, skip, warn
from provision.doctor.nvml import gpu_cc
from provision.doctor.system import NvmlFailure


def host_gpu(ctx):
    """(driver version, [cc...], first GPU name) or None when NVML is unavailable."""
    try:
        snap = nvml(ctx)
    except NvmlFailure:
        return None
    return snap.driver_version, [c for c in (gpu_cc(g) for g in snap.gpus) if c], (snap.gpus[0].name if snap.gpus else None)


def can_run(image, driver, ccs):
    """-> (ok, reason)."""
    if image.get("flavor") == "cpu" or not image.get("cuda"):
        return True, "CPU image"
    if driver is None:
        return False, "no working NVIDIA driver"
    try:
        if Version(driver) < Version(str(image.get("min_driver") or "0")):
            return False, "driver {} < {}".format(driver, image.get("min_driver"))
    except InvalidVersion:
        pass
    supported = [str(c) for c in image.get("compute_capabilities") or []]
    missing = [c for c in ccs if supported and c not in supported]
    if missing:
        return False, "cc {} not in {}".format(", ".join(missing), ", ".join(supported))
    return True, "driver {} >= {}".format(driver, image.get("min_driver"))


def all_images(m):
    images = m.images()
    return list(images.values()) if isinstance(images, dict) else list(images)


@check("images.flavours", "image flavours this host can run")
def flavours(ctx):
    m = matrix()
    if m is None:
        return skip(matrix_problem())
    host = host_gpu(ctx) if has_gpu(ctx) else None
    driver, ccs = (host[0], host[1]) if host else (None, [])
    runnable, not_runnable = [], []
    for image in all_images(m):
        good, why = can_run(image, driver, ccs)
        (runnable if good else not_runnable).append("{} ({})".format(image.get("flavor"), why))
    text = "can run: " + (", ".join(runnable) or "none")
    if not_runnable:
        text += "; cannot: " + ", ".join(not_runnable)
    if has_gpu(ctx) and not any(not r.startswith("cpu ") for r in runnable):
        return warn(text, "fix the driver first (see nvml.driver), then re-run doctor")
    return ok(text)


@check("images.recommended", "recommended image flavour")
def recommended(ctx):
    m = matrix()
    if m is None:
        return skip(matrix_problem())
    host = host_gpu(ctx) if has_gpu(ctx) else None
    if host:
        rec = m.recommend(cc=host[1][0] if host[1] else None, gpu=host[2], driver=host[0])
    else:
        rec = m.recommend()
    return ok("{} ({}): {}".format(rec.get("flavor"), rec.get("image"), rec.get("reason")))
