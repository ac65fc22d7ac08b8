"""Image flavours (from the compat matrix): which ones this host's driver and GPUs can run,
and the recommended one."""
import functools

from odcore.errors import UserError
from provision.doctor.core import check, has_gpu, matrix, matrix_problem, nvml, ok, skip, warn
from provision.doctor.nvml import gpu_cc
from provision.doctor.system import NvmlFailure


def host_gpu(ctx):
    """(driver version, [cc...], first GPU name) or None when NVML is unavailable."""
    try:
        snap = nvml(ctx)
    except NvmlFailure:
        return None
    return snap.driver_version, [c for c in (gpu_cc(g) for g in snap.gpus) if c], (snap.gpus[0].name if snap.gpus else None)


def can_run(m, image, driver, ccs, gpu=None):
    """-> (ok, reason), by the matrix's one rule (compat.Matrix.runs_on)."""

    try:
        return m.runs_on(image, ccs, driver, gpu)
    except UserError as exc:  # a driver version NVML reported that packaging cannot read
        return False, exc.message


def all_images(m):
    images = m.images()
    return list(images.values()) if isinstance(images, dict) else list(images)


def with_matrix(fn):
    """A check of the matrix against this host: FN(ctx, m, host) where host is host_gpu(ctx) on a GPU
    host, else None; skipped (naming the problem) when the compat matrix cannot be read."""
    @functools.wraps(fn)
    def run(ctx):
        m = matrix()
        if m is None:
            return skip(matrix_problem())
        return fn(ctx, m, host_gpu(ctx) if has_gpu(ctx) else None)
    return run


@check("images.flavours", "image flavours this host can run")
@with_matrix
def flavours(ctx, m, host):
    driver, ccs, name = host if host else (None, [], None)
    runnable, not_runnable = [], []
    for image in all_images(m):
        good, why = can_run(m, image, driver, ccs, name)
        (runnable if good else not_runnable).append("{} ({})".format(image.get("flavor"), why))
    text = "can run: " + (", ".join(runnable) or "none")
    if not_runnable:
        text += "; cannot: " + ", ".join(not_runnable)
    if has_gpu(ctx) and not any(not r.startswith("cpu ") for r in runnable):
        return warn(text, "fix the driver first (see nvml.driver), then re-run doctor")
    return ok(text)


@check("images.recommended", "recommended image flavour")
@with_matrix
def recommended(ctx, m, host):
    if host:
        rec = m.recommend_host(cc=host[1][0] if host[1] else None, gpu=host[2], driver=host[0])
    else:
        rec = m.recommend()
    return ok("{} ({}): {}".format(rec.get("flavor"), rec.get("image"), rec.get("reason")))
