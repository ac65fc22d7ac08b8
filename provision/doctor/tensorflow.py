"""TensorFlow in this Python, probed in a child process (see tfprobe): version, CUDA build,
the build's CUDA/cuDNN and compute capabilities, visible GPUs; checked against the compat
matrix and against the GPUs NVML reports."""
from odcore.install import tf_fix
from provision.compat import arch_support, cc_tuple
from provision.doctor.core import check, fail, has_gpu, matrix, matrix_problem, nvml, ok, skip, tf_probe, warn
from provision.doctor.nvml import gpu_cc
from provision.doctor.system import NvmlFailure

NOT_RUN = skip("TensorFlow probe not run (--no-tf)")


def probe(ctx):
    if not ctx.with_tf:
        return None
    return tf_probe(ctx)


@check("tensorflow.import", "TensorFlow imports")
def imports(ctx):
    p = probe(ctx)
    if p is None:
        return NOT_RUN
    status = p.get("status")
    if status == "ok":
        return ok("TensorFlow {} (Python {}, numpy {}, protobuf {})".format(
            p.get("version"), p.get("python"), p.get("numpy") or "?", p.get("protobuf") or "?"))
    if status == "missing":
        return warn("TensorFlow is not installed in this Python ({})".format(p.get("error")),
                    tf_fix())
    if status == "crashed" and p.get("signal") == "SIGILL":
        return fail("`import tensorflow` died with SIGILL (Illegal instruction): this TensorFlow build uses "
                    "CPU instructions (AVX) this CPU lacks; see cpu.avx",
                    "use a CPU with AVX, tensorflow==1.5.x, or a TensorFlow built from source without AVX")
    if status == "timeout":
        return fail(p.get("error"), "run `python -c 'import tensorflow'` by hand and look where it hangs "
                                    "(often loading CUDA libraries); then `provision explain --log FILE`")
    return fail("`import tensorflow` failed: {}".format(p.get("error")),
                "provision explain \"{}\"".format((p.get("error") or "")[:200].replace('"', "'")))


def imported(ctx):
    """(probe, None) when TensorFlow imported, else (None, the finding to return instead)."""
    p = probe(ctx)
    if p is None:
        return None, NOT_RUN
    if p.get("status") != "ok":
        return None, skip("TensorFlow did not import: see tensorflow.import")
    return p, None


@check("tensorflow.versions", "TensorFlow's Python/numpy/protobuf within the compat matrix")
def versions(ctx):
    p, early = imported(ctx)
    if early:
        return early
    m = matrix()
    if m is None:
        return skip(matrix_problem())
    key = tf_key(m, p["version"])
    if key is None:
        return warn("TensorFlow {} is not in the compat matrix".format(p["version"]),
                    "provision matrix show tf list   # pick a listed version")
    problems = m.check(tf=key, python=p.get("python"), numpy=p.get("numpy"), protobuf=p.get("protobuf"))
    if not problems:
        return ok("TensorFlow {}: Python {}, numpy {}, protobuf {} all within the matrix".format(
            p["version"], p.get("python"), p.get("numpy") or "?", p.get("protobuf") or "?"))
    text = "; ".join("{} {} (expected {})".format(x["component"], x["found"], x["expected"]) for x in problems)
    fixes = "; ".join(x["fix"] for x in problems if x.get("fix"))
    return fail(text, fixes or None)


def tf_key(m, version):
    """Matrix key for an installed TF version: exact, then major.minor."""
    short = ".".join(version.split(".")[:2])
    for candidate in (version, short):
        try:
            m.tf(candidate)
            return candidate
        except Exception:
            continue
    return None


@check("tensorflow.gpu", "TensorFlow sees the GPUs")
def gpu(ctx):
    p, early = imported(ctx)
    if early:
        return early
    host_gpus = has_gpu(ctx)
    visible = p.get("gpus") or []
    build = p.get("build_info") or {}
    if not p.get("built_with_cuda"):
        if host_gpus:
            return fail("this TensorFlow is a CPU-only build but the host has NVIDIA GPUs",
                        "pip install tensorflow[and-cuda] (TF >= 2.15) / tensorflow-gpu (TF 1.x), "
                        "or run in a provision GPU image")
        return ok("CPU-only build, no GPU on this host: training runs on the CPU")
    cuda = "CUDA {} / cuDNN {}".format(build.get("cuda_version", "?"), build.get("cudnn_version", "?"))
    too_old = driver_too_old(ctx, build.get("cuda_version"))
    if too_old:
        return fail("TensorFlow is built with CUDA {} but the driver supports CUDA {} at most: 'CUDA driver "
                    "version is insufficient for CUDA runtime version'".format(build["cuda_version"], too_old),
                    "provision host --tags driver (a newer driver), or an image/TF built for CUDA {}: "
                    "provision doctor --section images".format(too_old))
    if host_gpus and not visible:
        return fail("CUDA build ({}) but no GPU visible to TensorFlow: CUDA/cuDNN libraries missing or the driver "
                    "is too old (look for 'Could not load dynamic library' in the log)".format(cuda),
                    "provision explain --log <training log>; provision doctor --section nvml")
    return ok("{}; visible GPUs: {}".format(cuda, ", ".join(visible) or "none"))


def driver_too_old(ctx, build_cuda):
    """The driver's CUDA version when it is older than the CUDA TensorFlow was built with, else None."""
    from packaging.version import InvalidVersion, Version

    try:
        snap = nvml(ctx)
        if build_cuda and snap.cuda_driver_version and Version(snap.cuda_driver_version) < Version(build_cuda):
            return snap.cuda_driver_version
    except (NvmlFailure, InvalidVersion):
        pass
    return None


def cc_supported(cc, arch_list):
    """Does a build with `arch_list` (e.g. ['sm_35', 'sm_70', 'compute_80']) run on `cc` "X.Y"?"""

    sass = [a for a in arch_list if a.startswith("sm_")]
    ptx = [a for a in arch_list if a.startswith("compute_")]
    return arch_support(cc_tuple(cc), sass, ptx) is not None


@check("tensorflow.compute_capability", "GPU compute capability supported by the TensorFlow build")
def compute_capability(ctx):
    p = probe(ctx)
    if p is None:
        return NOT_RUN
    archs = ((p.get("build_info") or {}).get("cuda_compute_capabilities")) if p.get("status") == "ok" else None
    if not archs:
        return skip("no CUDA build / build does not list its compute capabilities")
    try:
        snap = nvml(ctx)
    except NvmlFailure:
        return skip("NVML unavailable: see nvml.driver")
    bad = [(g.name, gpu_cc(g)) for g in snap.gpus if gpu_cc(g) and not cc_supported(gpu_cc(g), archs)]
    if bad:
        return fail("{} not in this build's {}: kernels fail with 'no kernel image is available for execution on "
                    "the device'".format(", ".join("{} (cc {})".format(n, c) for n, c in bad), ", ".join(archs)),
                    "provision matrix recommend --gpu '{}'   # an image whose TF build covers it".format(bad[0][0]))
    return ok("build archs {} cover {}".format(", ".join(archs), ", ".join(
        "{} (cc {})".format(g.name, gpu_cc(g)) for g in snap.gpus)))
