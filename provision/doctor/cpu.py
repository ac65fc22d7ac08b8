"""CPU instruction sets from /proc/cpuinfo. Prebuilt TensorFlow wheels since 1.6 use AVX:
on a CPU without it, `import tensorflow` dies with "Illegal instruction (core dumped)".
AVX2/FMA only decide whether TF prints "Your CPU supports instructions that this
TensorFlow binary was not compiled to use: AVX2 FMA" (harmless: a speed hint)."""
from provision.doctor.core import check, fail, ok, warn

UNKNOWN = "unknown: /proc/cpuinfo not readable (an unknown never reads as ok)"


def cpu_flags(ctx):
    def probe():
        text = ctx.system.read("/proc/cpuinfo")
        if text is None:
            return None
        flags, model = set(), None
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("flags", "Features"):
                flags.update(value.split())
            elif key == "model name" and model is None:
                model = value.strip()
        return {"flags": flags, "model": model}
    return ctx.memo("cpuinfo", probe)


@check("cpu.avx", "CPU has AVX (needed by prebuilt TensorFlow >= 1.6)")
def avx(ctx):
    info = cpu_flags(ctx)
    if info is None:
        return warn("/proc/cpuinfo not readable")
    if "avx" not in info["flags"]:
        return fail("{}: no AVX in /proc/cpuinfo flags; prebuilt TensorFlow >= 1.6 dies on import with "
                    "'Illegal instruction (core dumped)'".format(info["model"] or "CPU"),
                    "use a CPU with AVX, or tensorflow==1.5.x, or build TensorFlow from source "
                    "without AVX (bazel build --copt=-mno-avx)")
    return ok("{}: AVX present".format(info["model"] or "CPU"))


@check("cpu.avx2_fma", "AVX2 / FMA")
def avx2_fma(ctx):
    info = cpu_flags(ctx)
    if info is None:
        return warn(UNKNOWN)
    if "avx" not in info["flags"]:
        return ok("no AVX: see cpu.avx")
    have = [f.upper() for f in ("avx2", "fma") if f in info["flags"]]
    if have:
        return ok("{} present: TF's 'Your CPU supports instructions that this TensorFlow binary was not "
                  "compiled to use: {}' is a speed hint, not an error (silence with "
                  "TF_CPP_MIN_LOG_LEVEL=2)".format(" + ".join(have), " ".join(have)))
    return ok("AVX2/FMA absent: prebuilt TensorFlow still runs (it only needs AVX)")


@check("cpu.avx512", "AVX-512")
def avx512(ctx):
    info = cpu_flags(ctx)
    if info is None:
        return warn(UNKNOWN)
    found = sorted(f for f in info["flags"] if f.startswith("avx512"))
    return ok(", ".join(found) if found else "no AVX-512 (optional)")
