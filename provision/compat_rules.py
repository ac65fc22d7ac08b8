"""The rules that combine compat_matrix.yaml's facts, as functions of its entries (no file, no
lookups): version and compute-capability parsing, a build's kernels on a GPU (SASS/PTX), driver
minimums with CUDA forward compatibility, and the one "can this image run here" rule.
provision.compat's Matrix looks entries up and applies these.
"""
import difflib
import re

from packaging.version import InvalidVersion, Version

from odcore.errors import UserError


# ---------------------------------------------------------------- parsing versions, compute capabilities, GPU names

def parse_version(text, what="version", choices=None):
    """packaging Version of user input, or a UserError naming the bad value (and a guess)."""
    raw = str(text).strip()
    cleaned = raw.lstrip("vV").replace(",", ".").replace("_", ".")
    # tolerate 'CUDA 10.0', 'r1.15', '1.15.5-gpu' by keeping the leading dotted number
    match = re.match(r"^[A-Za-z ]*?(\d+(?:\.\d+)*)", cleaned)
    try:
        return Version(raw)
    except InvalidVersion:
        guess = match.group(1) if match else None
        hint = "did you mean {}?".format(guess) if guess else None
        options = ", ".join(choices[:8]) if choices else None
        fix = " ".join(x for x in (hint, "known: " + options if options else None) if x)
        raise UserError("{} {!r} is not a version".format(what, raw),
                        fix=fix or "give a dotted version such as 1.15 or 10.0.130")


def line_of(version, parts=2):
    """'1.15.5' -> '1.15'; '10' -> '10.0'."""
    rel = list(Version(str(version)).release) + [0] * parts
    return ".".join(str(n) for n in rel[:parts])


def cc_tuple(text):
    """'8.6' / 'sm_86' / 'compute_86' / '86' -> (8, 6)."""
    raw = str(text).strip().lower()
    m = re.match(r"^(?:sm_|compute_)?(\d+)(?:\.(\d+))?$", raw)
    if not m:
        raise UserError("compute capability {!r} is not of the form X.Y (e.g. 8.6)".format(text),
                        fix="give it as X.Y, e.g. --cc 7.5")
    if m.group(2) is not None:
        return int(m.group(1)), int(m.group(2))
    digits = m.group(1)
    if raw.startswith(("sm_", "compute_")) or len(digits) >= 2:
        return int(digits[:-1]), int(digits[-1])
    return int(digits), 0


def arch_support(cc, sass, ptx):
    """How a build runs on compute capability `cc` (tuple): "native" when it has SASS of the same
    major and a minor <= cc's (binary compatible within a major), "ptx" when it has PTX <= cc (the
    driver JIT-compiles it), else None. `sass`/`ptx` are lists like ["sm_70", "7.5"]."""
    if any(s[0] == cc[0] and s <= cc for s in map(cc_tuple, sass)):
        return "native"
    if any(p <= cc for p in map(cc_tuple, ptx)):
        return "ptx"
    return None


def cc_str(cc):
    return "{}.{}".format(*cc)


def did_you_mean(word, choices, n=3):
    hits = difflib.get_close_matches(str(word), [str(c) for c in choices], n=n, cutoff=0.5)
    return "did you mean {}?".format(" or ".join(hits)) if hits else None


# GPU names as NVML/nvidia-smi print them carry vendor prefixes and form-factor/memory suffixes.
_GPU_NOISE = re.compile(r"^(nvidia|geforce|tesla|\d+gb|sxm\d*|pcie|hbm\d*e?|nvl|laptop|gpu|"
                        r"mobile|max|q|oem|generation)$")


def gpu_tokens(name):
    words = re.split(r"[\s\-_/]+", str(name).lower().replace("®", "").replace("™", ""))
    return tuple(w for w in words if w and not _GPU_NOISE.match(w))


# ---------------------------------------------------------------- can an image run here

def driver_ok(img, driver, gpu_entry=None):
    """(ok, note): driver new enough for the image, or a datacenter GPU on a branch that the
    image's CUDA forward-compatibility package supports."""
    have = parse_version(driver, "driver version")
    if img.get("min_driver") is None or have >= Version(img["min_driver"]):
        return True, None
    branches = img.get("forward_compat_drivers") or {}
    floor = branches.get(str(have.major))
    if floor and gpu_entry and gpu_entry.get("class") == "datacenter" and have >= Version(floor):
        return True, ("driver {} (R{}) is older than {} but runs {} on a datacenter GPU through "
                      "the CUDA forward-compatibility package in the image").format(
                          driver, have.major, img["min_driver"], img["flavor"])
    return False, None


def runs_on(img, ccs=(), driver=None, gpu_entry=None):
    """The one "can this image run on these GPUs with this driver" rule (doctor's image checks
    and `recommend` both use it): a CPU image always; a CUDA image needs kernels for every
    GPU's compute capability and `driver_ok` (min_driver, or forward compatibility on a
    datacenter GPU). -> (ok, reason)."""
    if img.get("flavor") == "cpu" or not img.get("cuda"):
        return True, "CPU image"
    supported = [cc_tuple(c) for c in img.get("compute_capabilities") or []]
    missing = [str(c) for c in ccs if cc_tuple(c) not in supported]
    if missing:
        return False, "cc {} not in {}".format(", ".join(missing), ", ".join(map(cc_str, supported)))
    if driver is None:
        return False, "no working NVIDIA driver"
    ok, how = driver_ok(img, driver, gpu_entry)
    if not ok:
        return False, "driver {} < {}".format(driver, img["min_driver"])
    return True, how or "driver {} >= {}".format(driver, img["min_driver"])
