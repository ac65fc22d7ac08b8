"""Checks, findings and the runner. Each check is a small function `fn(ctx)` registered
with `@check(id, title)`: it returns None when healthy (reported as ✓ with its title),
or a Finding built with ok()/warn()/fail()/skip(). A check that raises becomes a failed
finding of its own; the others still run (brew doctor / flutter doctor style)."""
from __future__ import annotations

import traceback
from dataclasses import dataclass, asdict

from provision.doctor.system import CaptureError

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

# section -> module (the order is the order of the report)
SECTIONS = [
    ("os", "provision.doctor.os_checks"),
    ("cpu", "provision.doctor.cpu"),
    ("pci", "provision.doctor.pci"),
    ("nvml", "provision.doctor.nvml"),
    ("kmod", "provision.doctor.kmod"),
    ("nouveau", "provision.doctor.nouveau"),
    ("kernel_hold", "provision.doctor.kernel_hold"),
    ("containers", "provision.doctor.containers"),
    ("tensorflow", "provision.doctor.tensorflow"),
    ("images", "provision.doctor.images"),
]

REGISTRY = {}  # section -> [(id, title, fn)]


@dataclass
class Finding:
    id: str
    section: str
    status: str
    evidence: str
    fix: str | None = None

    def to_dict(self):
        return asdict(self)


def _partial(status, evidence, fix=None):
    return (status, evidence, fix)


def ok(evidence):
    return _partial(OK, evidence)


def warn(evidence, fix=None):
    return _partial(WARN, evidence, fix)


def fail(evidence, fix=None):
    return _partial(FAIL, evidence, fix)


def skip(evidence):
    return _partial(SKIP, evidence)


def check(check_id, title):
    section = check_id.split(".", 1)[0]

    def register(fn):
        REGISTRY.setdefault(section, []).append((check_id, title, fn))
        return fn
    return register


class Context:
    """The System plus memoised probes shared by several checks (NVML is asked once)."""

    def __init__(self, system, with_tf=True, tf_timeout=120.0):
        self.system = system
        self.with_tf = with_tf
        self.tf_timeout = tf_timeout
        self._cache = {}

    def memo(self, key, fn):
        if key not in self._cache:
            try:
                self._cache[key] = (fn(), None)
            except Exception as exc:  # remembered and re-raised to every caller
                self._cache[key] = (None, exc)
        value, exc = self._cache[key]
        if exc is not None:
            raise exc
        return value


def load_sections(names=None):
    import importlib

    for section, module in SECTIONS:
        if names is None or section in names:
            importlib.import_module(module)
    return [s for s, _ in SECTIONS if names is None or s in names]


def run_checks(ctx, sections=None):
    findings = []
    for section in load_sections(sections):
        for check_id, title, fn in REGISTRY.get(section, []):
            findings.append(run_one(ctx, section, check_id, title, fn))
    return findings


def run_one(ctx, section, check_id, title, fn):
    try:
        result = fn(ctx)
    except CaptureError as exc:  # bad recorded data: say which file, not "a bug in doctor"
        return Finding(check_id, section, FAIL, "recorded capture: {}".format(exc),
                       "fix that file (layout: tests/fixtures/doctor/<scenario>/, commands.yaml)")
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return Finding(check_id, section, FAIL,
                       "check crashed: {}: {} ({}:{})".format(type(exc).__name__, exc, tb.filename.rsplit("/", 1)[-1],
                                                             tb.lineno),
                       "this is a bug in doctor; the other checks still ran")
    if result is None:
        return Finding(check_id, section, OK, title)
    status, evidence, fix = result
    return Finding(check_id, section, status, evidence, fix)


# --- shared probes -------------------------------------------------------------------

def pci_gpus(ctx):
    """NVIDIA display/3D controllers on the PCI bus (vendor 0x10de, class 0x03xxxx): found
    from sysfs even when no driver is bound."""
    def probe():
        sysd = ctx.system
        out = []
        for dev in sysd.listdir("/sys/bus/pci/devices"):
            base = "/sys/bus/pci/devices/" + dev
            vendor = (sysd.read(base + "/vendor") or "").strip().lower()
            klass = (sysd.read(base + "/class") or "").strip().lower()
            if vendor == "0x10de" and klass.startswith("0x03"):
                out.append({"slot": dev, "device": (sysd.read(base + "/device") or "").strip(),
                            "driver": sysd.readlink_name(base + "/driver")})
        return out
    return ctx.memo("pci", probe)


def loaded_modules(ctx):
    """Module names from /proc/modules (the first column, which `lsmod` also prints)."""
    def probe():
        text = ctx.system.read("/proc/modules") or ""
        names = []
        for line in text.splitlines():
            parts = line.split()
            if parts and parts[0] != "Module":
                names.append(parts[0])
        return names
    return ctx.memo("modules", probe)


def nvml(ctx):
    return ctx.memo("nvml", ctx.system.nvml)


def kernel(ctx):
    return ctx.memo("uname", ctx.system.uname_r)


def tf_probe(ctx):
    return ctx.memo("tf", lambda: ctx.system.tf_probe(timeout=ctx.tf_timeout))


def matrix():
    """provision.compat's Matrix, or None when the compat matrix is missing or invalid
    (`matrix_problem()` says why; `provision matrix validate` reports the details)."""
    try:
        from provision import compat
        return compat.load()
    except Exception as exc:  # ImportError, compat.MatrixError
        _MATRIX_PROBLEM[0] = "{}: {}".format(type(exc).__name__, exc)
        return None


_MATRIX_PROBLEM = ["compat matrix not available"]


def matrix_problem():
    return "compat matrix not available ({})".format(_MATRIX_PROBLEM[0])


def has_gpu(ctx):
    return bool(pci_gpus(ctx))


def no_gpu_skip():
    return skip("no NVIDIA GPU on the PCI bus")


def kmod_loaded(ctx):
    return "nvidia" in loaded_modules(ctx)
