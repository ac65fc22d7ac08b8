"""The GPU-stack resolver of explain: errors whose variable part is a version of the GPU stack.

  lib...so.X missing       libcudart.so.11.0 / cudart64_110.dll -> CUDA 11.x, libcudnn*.so.8 -> cuDNN 8,
                           then which TensorFlow builds want it (compat_matrix.yaml tensorflow[].cuda/cudnn)
  cuDNN loaded vs built    "Loaded runtime CuDNN library: 7.5.1 but source was compiled with: 7.6.5"
  driver DSO vs module     "kernel version A does not match DSO version B" / libcuda vs kernel reported versions
  container needs CUDA X   "unsatisfied condition: cuda>=10.2", "driver 8.0 < image 9.0" -> cuda[].min_driver
  sm_XX / compute_XX       nvcc/ptxas "Value 'sm_86' is not defined", PyTorch "sm_86 is not compatible" ->
                           the CUDA toolkits whose cc_min..cc_max cover it
Texts are in odcore/data/gpustack.yaml, versions in compat_matrix.yaml (found like provision's matrix: $ODSTACK_MATRIX,
the wheel's share/, the checkout). Python 3.6-safe; needs only PyYAML (both files loaded on first use).
"""
import os
import re

from odcore import datafile, install

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PATH = os.path.join(DATA_DIR, "gpustack.yaml")
MATRIX_ENV = "ODSTACK_MATRIX"
# Lower-case, digit-free substrings (explain folds digits to 0): a window without one is not parsed.
TRIGGERS = ("libcudart", "libcudnn", "cudart00_", "cudnn00_", "loaded runtime cudnn library", "does not match dso",
            "reported version is", "unsatisfied condition", "unsupported cuda version", "gpu architecture",
            "for option 'gpu-", "is not compatible with the current pytorch")
LIB = re.compile(r"\blib(cudart|cudnn)(?:_[a-z_]+)?[.,]so\.(\d+)(?:\.(\d+))?|\b(cudart|cudnn)64_(\d+)\.dll", re.I)
FAILED = ("cannot open shared object", "could not load", "couldn't open", "error while loading", "dlerror",
          "not found", "no such file", "unable to load")
CUDNN_PAIR = re.compile(r"Loaded runtime CuDNN library:? (\d[\d.]*)(?: \(compatibility version [\d.]+\))? but source was "
                        r"compiled with:? (\d[\d.]*)", re.I)
DSO_PAIR = re.compile(r"kernel version ([\d.]+) does not match DSO version ([\d.]+)", re.I)
DSO_REPORTED = re.compile(r"libcuda reported version is:? ([\d.]+)", re.I)
KERNEL_REPORTED = re.compile(r"kernel reported version is:? ([\d.]+)", re.I)
NEED_CUDA = (re.compile(r"unsatisfied condition: cuda ?>= ?(\d+\.\d+)", re.I),
             re.compile(r"--require=cuda>=(\d+\.\d+)", re.I),
             re.compile(r"unsupported CUDA version: driver [\d.]+ < image (\d+\.\d+)", re.I))
NEED_DRIVER = re.compile(r"unsatisfied condition: driver ?>= ?(\d+(?:\.\d+)*)", re.I)
TOOLKIT_ARCH = (re.compile(r"Value '(?:sm|compute)_(\d+)a?' is not defined for option 'gpu-(?:name|architecture)'", re.I),
                re.compile(r"Unsupported gpu architecture '(?:compute|sm)_(\d+)a?'", re.I))
FRAMEWORK_ARCH = re.compile(r"with CUDA capability sm_(\d+) is not compatible with the current PyTorch installation", re.I)
_CACHE = {}


def load(path=None, matrix=None):
    """(answers of gpustack.yaml, compat matrix mapping); the matrix is {} when none is found."""
    key = (path or PATH, matrix)
    if key not in _CACHE:
        where = matrix or install.find("compat_matrix.yaml", env=MATRIX_ENV)
        _CACHE[key] = (datafile.read_yaml(path or PATH)["answers"], datafile.read_yaml(where) if where else {})
    return _CACHE[key]


def vtuple(text):
    return tuple(int(p) for p in re.findall(r"\d+", str(text)))


def _span(versions):
    """'TensorFlow 2.5 to 2.11' from matrix version strings."""
    ordered = sorted(versions, key=vtuple)
    if len(ordered) == 1:
        return "TensorFlow " + ordered[0]
    return "TensorFlow {} to {}".format(ordered[0], ordered[-1])


def _who(matrix, field, fits, what):
    rows = [t for t in matrix.get("tensorflow") or [] if t.get(field) and fits(str(t[field]))]
    if rows:
        return "{} are built against {}, per compat_matrix.yaml".format(_span([t["version"] for t in rows]), what)
    known = _span([t["version"] for t in matrix.get("tensorflow") or []]) if matrix.get("tensorflow") else "TensorFlow"
    return "no release of {} in compat_matrix.yaml uses {}: an older build or another framework".format(known, what)


def _answer(texts, key, fields, matched, start, replacement):
    entry = texts[key]
    fields = dict(fields)
    return {"group": key, "family": entry["family"], "replaces": list(entry.get("replaces") or ()),
            "title": entry["title"].format(**fields), "cause": " ".join(entry["cause"].format(**fields).split()),
            "fix": " ".join(entry["fix"].format(**fields).split()), "sources": list(entry["sources"]),
            "matched": matched, "start": start, "replacement": replacement, "resolved_from": "compat_matrix.yaml",
            "uncacheable": True}


def _library(text, texts, matrix):
    for m in LIB.finditer(text):
        around = text[max(0, m.start() - 80):m.end() + 80].lower()
        if not any(c in around for c in FAILED) or "successfully opened" in text[max(0, m.start() - 40):m.start()].lower():
            continue
        kind = (m.group(1) or m.group(4)).lower()
        if m.group(5):  # cudart64_110.dll -> 11.0; cudnn64_8.dll -> 8
            digits = m.group(5)
            major, minor = (digits, None) if kind == "cudnn" or len(digits) < 3 else (digits[:-1], digits[-1])
        else:
            major, minor = m.group(2), m.group(3)
        if kind == "cudnn":
            fields = dict(lib=m.group(0), major=major, who=_who(matrix, "cudnn", lambda v: v.split(".")[0] == major,
                                                               "cuDNN " + major))
            return _answer(texts, "cudnn-library", fields, m.group(0), m.start(), "cuDNN " + major)
        if int(major) >= 11 or minor is None:  # libcudart.so.11.0 serves all of CUDA 11.x
            series, fits = major + ".x", (lambda v: v.split(".")[0] == major)
        else:
            series, fits = major + "." + minor, (lambda v: v == major + "." + minor)
        fields = dict(lib=m.group(0), series=series, major=major if "x" in series else series,
                      who=_who(matrix, "cuda", fits, "CUDA " + series))
        return _answer(texts, "cuda-library", fields, m.group(0), m.start(), "CUDA " + series)
    return None


def cudnn_version(text):
    """'7201' -> (7, 2, 1); '8.9.4' -> (8, 9, 4)."""
    if "." in text:
        return vtuple(text)
    v = int(text)
    return (v // 1000, (v % 1000) // 100, v % 100)


def _cudnn_pair(text, texts, matrix):
    m = CUDNN_PAIR.search(text)
    if not m:
        return None
    loaded, built = cudnn_version(m.group(1).rstrip(".")), cudnn_version(m.group(2).rstrip("."))
    built_mm = "{}.{}".format(built[0], built[1])
    relation = (", older than {}".format(built_mm) if loaded < built else
                ", a different major version" if loaded[0] != built[0] else ", newer than the build's")
    action = "Upgrade to" if loaded < built and loaded[0] == built[0] else "Install"
    fields = dict(loaded=".".join(map(str, loaded)), built=".".join(map(str, built)), built_mm=built_mm,
                  built_major=built[0], built_minor=built[1], relation=relation, action=action,
                  who=_who(matrix, "cudnn", lambda v: v == built_mm, "cuDNN " + built_mm))
    return _answer(texts, "cudnn-mismatch", fields, m.group(0), m.start(), "cuDNN " + built_mm)


def _dso_pair(text, texts):
    m = DSO_PAIR.search(text)
    if m:
        kernel, dso, start, matched = m.group(1), m.group(2), m.start(), m.group(0)
    else:
        d, k = DSO_REPORTED.search(text), KERNEL_REPORTED.search(text)
        if not (d and k) or vtuple(d.group(1)) == vtuple(k.group(1)):
            return None
        kernel, dso, start, matched = k.group(1), d.group(1), d.start(), d.group(0)
    return _answer(texts, "driver-dso-mismatch", dict(kernel=kernel, dso=dso), matched, start, "driver " + kernel)


def _container(text, texts, matrix):
    for rx in NEED_CUDA:
        m = rx.search(text)
        if m:
            cuda = m.group(1)
            row = next((c for c in matrix.get("cuda") or [] if str(c.get("version")) == cuda), None)
            if row is None:
                return None
            min_driver, start, matched = row["min_driver"], m.start(), m.group(0)
            break
    else:
        m = NEED_DRIVER.search(text)
        if not m:
            return None
        cuda, min_driver, start, matched = "of the image", m.group(1), m.start(), m.group(0)
    brand = texts["container-cuda"]["brand"] if "brand = tesla" in text.lower() else ""
    fields = dict(cuda=cuda, min_driver=min_driver, brand=brand)
    return _answer(texts, "container-cuda", fields, matched, start, "driver >= {}".format(min_driver))


def _arch(text, texts, matrix):
    key, m = "toolkit-arch", None
    for rx in TOOLKIT_ARCH:
        m = rx.search(text)
        if m:
            break
    if not m:
        key, m = "framework-arch", FRAMEWORK_ARCH.search(text)
    if not m:
        return None
    digits = m.group(1)
    cc = "{}.{}".format(digits[:-1], digits[-1])
    rows = sorted(matrix.get("cuda") or [], key=lambda c: vtuple(c["version"]))
    fits = [c for c in rows if vtuple(c.get("cc_min", "0")) <= vtuple(cc) <= vtuple(c.get("cc_max", "0"))]
    if not fits:
        return None
    first, last = str(fits[0]["version"]), str(fits[-1]["version"])
    later = [c for c in rows if vtuple(c["version"]) > vtuple(last)]
    dropped = texts["toolkit-arch"]["dropped"].format(next=later[0]["version"]) if later else ""
    fields = dict(arch="sm_" + digits, cc=cc, first=first, last=last, dropped=dropped,
                  first_tag=first.replace(".", ""))
    return _answer(texts, key, fields, m.group(0), m.start(), "CUDA {} to {}".format(first, last))


def resolve(text, low=None, path=None, matrix=None):
    """The GPU-stack answer for `text` (a dict like odcore.symbols.resolve's), or None."""
    low = text.lower() if low is None else low
    if not any(t in low for t in TRIGGERS):
        return None
    texts, data = load(path, matrix)
    return (_cudnn_pair(text, texts, data) or _library(text, texts, data) or _dso_pair(text, texts)
            or _container(text, texts, data) or _arch(text, texts, data))
