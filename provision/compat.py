"""The compatibility matrix: load + validate compat_matrix.yaml, answer queries with `packaging`.

Data lives in compat_matrix.yaml (every entry has `source:` links). This module loads it and
answers lookups; its shape is provision/data/compat_matrix.schema.json (checked by
provision/compat_schema.py) and the rules that combine facts (same CUDA line, driver minimums,
forward compatibility, compute-capability coverage) are provision/compat_rules.py. Found by: explicit path > $ODSTACK_MATRIX > the wheel's
odcore/share/compat_matrix.yaml > <repo root>/compat_matrix.yaml (see odcore.install).
"""
import difflib
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from odcore import install
from odcore.errors import UserError
from provision import compat_schema

# The rules (parsing, kernels, drivers, "can this image run here") live in compat_rules; their
# names stay part of this module's interface.
from provision.compat_rules import (  # noqa: F401
    arch_support,
    cc_str,
    cc_tuple,
    did_you_mean,
    driver_ok,
    gpu_tokens,
    line_of,
    parse_version,
    runs_on,
)
from provision.compat_schema import MatrixError  # noqa: F401 - compat.MatrixError, as callers name it

ENV_VAR = "ODSTACK_MATRIX"
_CACHE = {}


class UnknownKey(UserError):
    """A key (TF line, CUDA version, GPU name, flavour) the matrix does not have."""


def default_path():
    """$ODSTACK_MATRIX > the wheel's odcore/share/compat_matrix.yaml > the checkout's."""

    path = install.find("compat_matrix.yaml", env=ENV_VAR)
    if path:
        return Path(path)
    raise MatrixError("compat_matrix.yaml not found in the package data ({}) or the checkout ({})".format(
        install.SHARE, install.CHECKOUT),
        fix="reinstall odstack (the wheel carries it), or set {}=/path/to/compat_matrix.yaml".format(ENV_VAR))


def load(path=None):
    """The validated Matrix for `path` (cached per path and mtime)."""
    path = Path(path) if path else default_path()
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise MatrixError("matrix file does not exist", where=str(path),
                          fix="pass an existing file or unset {}".format(ENV_VAR))
    if key not in _CACHE:

        _CACHE[key] = Matrix(_read_yaml(path), str(path), digest=compat_schema.digest(path))
    return _CACHE[key]


def _read_yaml(path):
    import yaml

    # libyaml's loader parses this file ~5x faster than the pure-Python one (bench/matrix.py)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(path.read_text(), Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = "{}:{}".format(path, mark.line + 1) if mark else str(path)
        raise MatrixError("not valid YAML: {}".format(getattr(exc, "problem", exc)), where=where,
                          fix="fix the YAML syntax at that line")
    if not isinstance(data, dict):
        raise MatrixError("top level must be a mapping of sections", where=str(path))
    return data


def unknown(kind, key, choices):
    hint = did_you_mean(key, choices)
    known = ", ".join(str(c) for c in choices[:12]) + (" ..." if len(choices) > 12 else "")
    return UnknownKey("unknown {} {!r}".format(kind, key),
                      fix=(hint + " " if hint else "") + "known: " + known)


def _narrows(wheel, bound):
    """False when the wheel's specifier already caps below every upper limit of `bound`
    (TF 2.11's protobuf '<3.20' needs no '<4.21.0' on top)."""
    caps = [Version(s.version) for s in wheel if s.operator in ("<", "<=", "~=", "==")]
    limits = [Version(s.version) for s in SpecifierSet(bound) if s.operator in ("<", "<=")]
    return not caps or not limits or any(min(caps) >= lim for lim in limits)


# ---------------------------------------------------------------- the matrix

class Matrix(object):
    def __init__(self, data, path="compat_matrix.yaml", digest=None):
        self.path = path
        self.data = data
        self._validate(digest)
        self._tf = {e["version"]: e for e in data["tensorflow"]}
        self._cuda = {e["version"]: e for e in data["cuda"]}
        self._images = {e["flavor"]: e for e in data["images"]}
        self._gpu_index = {}
        for entry in data["gpus"]:
            for name in [entry["name"]] + list(entry.get("aliases", [])):
                self._gpu_index[gpu_tokens(name)] = entry

    # ------------------------------------------------------------ validation
    def _validate(self, digest=None):
        """The shape is provision/data/compat_matrix.schema.json; see provision/compat_schema.py."""

        compat_schema.validate(self.data, self.path, digest)

    # ------------------------------------------------------------ lookups
    @staticmethod
    def _out(entry):
        out = dict(entry)
        src = entry.get("source")
        out["sources"] = list(src) if isinstance(src, list) else [src]
        return out

    def tf_versions(self):
        return list(self._tf)

    def tf(self, key):
        version = parse_version(key, "TensorFlow version", self.tf_versions())
        line = line_of(version)
        if line not in self._tf:
            raise unknown("TensorFlow release line", str(key), self.tf_versions())
        out = self._out(self._tf[line])
        for name in ("numpy", "protobuf"):
            bounds = self.bounds_for(out, name)
            if bounds:
                out[name + "_effective"] = self.effective(out, name)
                out["sources"] += [s for b in bounds for s in b["source"] if s not in out["sources"]]
        return out

    def bounds_for(self, entry, name):
        """The `effective_bounds` on `name` that hold for this TF line: limits users hit that the
        wheel's Requires-Dist does not state (e.g. protobuf >= 4.21 and TF's old generated code)."""
        line = Version(entry["version"])
        wheel = SpecifierSet(self.requirement(entry, name))
        return [b for b in self.data.get("effective_bounds") or []
                if b["package"] == name and line in SpecifierSet(b["tensorflow"]) and _narrows(wheel, b["spec"])]

    def effective(self, entry, name, python=None):
        """The wheel's specifier for `name` narrowed by the effective bounds that apply."""
        spec = self.requirement(entry, name, python)
        for bound in self.bounds_for(entry, name):
            spec = str(SpecifierSet(spec) & SpecifierSet(bound["spec"]))
        return spec

    def cuda(self, key):
        version = parse_version(key, "CUDA version", list(self._cuda))
        line = line_of(version)
        if line not in self._cuda:
            raise unknown("CUDA version", str(key), list(self._cuda))
        out = self._out(self._cuda[line])
        # a full version like 11.0.3 gets that update's own minimum driver (Table 3)
        updates = out.get("updates") or {}
        if len(version.release) >= 3:
            for upd, drv in updates.items():
                if Version(upd).release[:3] == version.release[:3]:
                    out["min_driver"] = drv
                    out["update"] = upd
        return out

    def gpus(self):
        return [self._out(e) for e in self.data["gpus"]]

    def gpu(self, name):
        tokens = gpu_tokens(name)
        if not tokens:
            raise unknown("GPU", str(name), [g["name"] for g in self.data["gpus"]])
        if tokens in self._gpu_index:
            return self._out(self._gpu_index[tokens])
        # a variant the list lacks ('RTX 4080 SUPER') -> its family ('RTX 4080'), longest known prefix,
        # said aloud: out["family_of"] is the name asked for, which every message then mentions
        prefixes = [k for k in self._gpu_index if tokens[:len(k)] == k]
        if prefixes:
            out = self._out(self._gpu_index[max(prefixes, key=len)])
            out["family_of"] = str(name)
            return out
        # suggestions: names this one is a prefix of ('RTX 6000' -> Quadro/Ada), then close spellings
        by_key = {" ".join(k): e["name"] for k, e in self._gpu_index.items()}
        close = difflib.get_close_matches(" ".join(tokens), list(by_key), n=4, cutoff=0.6)
        hits = [e["name"] for k, e in self._gpu_index.items() if k[:len(tokens)] == tokens or
                (len(tokens) > 1 and k[1:len(tokens) + 1] == tokens)] + [by_key[c] for c in close]
        hits = list(dict.fromkeys(hits))[:4]
        hint = "did you mean {}?".format(" or ".join(hits)) if hits else None
        raise UnknownKey("unknown GPU {!r}".format(name),
                         fix=(hint + " " if hint else "") + "or pass --cc X.Y (see "
                         "https://developer.nvidia.com/cuda-gpus)")

    def image(self, flavor):
        if flavor not in self._images:
            raise unknown("image flavour", str(flavor), list(self._images))
        return self._out(self._images[flavor])

    def images(self):
        return [self._out(e) for e in self.data["images"]]

    def od_api(self, tf_version):
        version = Version(line_of(parse_version(tf_version, "TensorFlow version")))
        for entry in self.data["od_api"]:
            if version in SpecifierSet(entry["tf"]):
                return self._out(entry)
        raise unknown("OD API code path for TF", str(tf_version), [e["tf"] for e in self.data["od_api"]])

    # ------------------------------------------------------------ rules
    def cc_support(self, tf_entry, cc):
        """('native'|'ptx'|'none', detail) for a TF line on compute capability `cc` (tuple)."""
        ccs = tf_entry.get("compute_capabilities")
        if not ccs:
            return "none", "TensorFlow {} has no GPU build".format(tf_entry["version"])
        cuda = self._cuda[line_of(tf_entry["cuda"])]
        if cc > cc_tuple(cuda["cc_max"]):
            return "none", ("CUDA {} (which TF {} is built with) predates compute capability {}: "
                            "its cuDNN/cuBLAS have no kernels for it").format(
                                cuda["version"], tf_entry["version"], cc_str(cc))
        if cc < cc_tuple(cuda["cc_min"]):
            return "none", "CUDA {} (which TF {} is built with) no longer supports compute capability {}".format(
                cuda["version"], tf_entry["version"], cc_str(cc))
        kind = arch_support(cc, ccs["sass"], ccs.get("ptx", []))
        if kind == "native":
            return "native", "SASS for sm_{}{} is in the wheel".format(*cc)
        if kind == "ptx":
            return "ptx", "no SASS for sm_{}{}; the driver JIT-compiles the PTX (slow first start)".format(*cc)
        return "none", "TensorFlow {} has no kernels for compute capability {} (built for {})".format(
            tf_entry["version"], cc_str(cc), ", ".join(ccs["sass"]))

    def check(self, tf, python=None, cuda=None, cudnn=None, numpy=None, protobuf=None,
              driver=None, gpu=None, cc=None):
        """Every incompatibility between the found versions and TF `tf`'s requirements."""
        entry = self.tf(tf)
        problems = []

        def add(component, found, expected, fix):
            problems.append({"component": component, "found": str(found),
                             "expected": str(expected), "fix": fix})

        tf_v = parse_version(tf, "TensorFlow version")
        if python is not None:
            py = Version(line_of(parse_version(python, "Python version")))
            if py not in SpecifierSet(entry["python"]):
                add("python", python, entry["python"],
                    "use a Python in {} for TensorFlow {} (e.g. the {} image)".format(
                        entry["python"], entry["version"], self._image_for_tf(tf_v) or "matching"))
        for name, found in (("numpy", numpy), ("protobuf", protobuf)):
            if found is not None:
                want = self.effective(entry, name, python)
                if parse_version(found, name + " version") not in SpecifierSet(want):
                    why = "".join(" ({}: {})".format(b["text"], b["source"][0]) for b in self.bounds_for(entry, name)
                                  if parse_version(found, name + " version") not in SpecifierSet(b["spec"]))
                    add(name, found, want, "pip install '{}{}'{}".format(name, want, why))
        if cuda is not None and entry["cuda"]:
            if line_of(parse_version(cuda, "CUDA version")) != line_of(entry["cuda"]):
                add("cuda", cuda, entry["cuda"],
                    "TensorFlow {} loads the CUDA {} libraries (libcudart.so.{}): install CUDA {} "
                    "or use a TF built for CUDA {}".format(entry["version"], entry["cuda"],
                                                          _soname(entry["cuda"]), entry["cuda"],
                                                          line_of(cuda)))
        if cudnn is not None and entry["cudnn"]:
            have, want = parse_version(cudnn, "cuDNN version"), Version(entry["cudnn"])
            if have.major != want.major or have.release[:2] < want.release[:2]:
                add("cudnn", cudnn, "{}.x >= {}".format(want.major, entry["cudnn"]),
                    "install cuDNN {} (same major version, minor >= {}) for CUDA {}".format(
                        entry["cudnn"], entry["cudnn"], entry["cuda"]))
        if driver is not None and entry["cuda"]:
            need = self.cuda(entry["cuda"])["min_driver"]
            if parse_version(driver, "driver version") < Version(need):
                add("driver", driver, ">= " + need,
                    "CUDA {} needs NVIDIA driver >= {}: provision host --tags driver".format(
                        entry["cuda"], need))
        if gpu is not None or cc is not None:
            gpu_entry = self.gpu(gpu) if gpu is not None else None
            cap = cc_tuple(cc if cc is not None else gpu_entry["compute_capability"])
            label = "{} (cc {})".format(gpu_entry["name"], cc_str(cap)) if gpu_entry else cc_str(cap)
            support, detail = self.cc_support(entry, cap)
            if support == "none":
                rec = self.recommend(cc=cc_str(cap), tf_major=tf_v.major)
                add("gpu", label, "compute capability TF {} was built for".format(entry["version"]),
                    "{}; use the {} image ({})".format(detail, rec["flavor"], rec["image"]))
        return problems

    driver_ok = staticmethod(driver_ok)

    def runs_on(self, img, ccs=(), driver=None, gpu=None):
        """compat_rules.runs_on with `gpu` (a name) looked up here (unknown names: no entry)."""
        try:
            gpu_entry = self.gpu(gpu) if gpu else None
        except UnknownKey:
            gpu_entry = None
        return runs_on(img, ccs, driver, gpu_entry)

    @staticmethod
    def requirement(entry, name, python=None):
        """The wheel's specifier for `name`; some wheels pin numpy per Python (environment markers)."""
        markers = entry.get(name + "_markers") or {}
        if python is not None and markers:
            from packaging.markers import Marker

            env = {"python_version": line_of(parse_version(python, "Python version"))}
            for marker, spec in markers.items():
                if Marker(marker).evaluate(env):
                    return spec
        return entry[name]

    def notes(self, tf, gpu=None, cc=None):
        """Not incompatibilities, but worth knowing: PTX-only GPUs (JIT at start-up), line notes."""
        entry = self.tf(tf)
        out = [entry["note"]] if entry.get("note") else []
        if gpu is not None or cc is not None:
            cap = cc_tuple(cc if cc is not None else self.gpu(gpu)["compute_capability"])
            support, detail = self.cc_support(entry, cap)
            if support == "ptx":
                out.append("TensorFlow {}: {}".format(entry["version"], detail))
        return out

    def _image_for_tf(self, tf_version):
        for img in self.data["images"]:
            if line_of(img["tf"]) == line_of(tf_version):
                return img["flavor"]
        return None

    def recommend_host(self, gpu=None, cc=None, driver=None, tf_major=None):
        """`recommend` for a detected GPU: a GPU name the matrix lacks falls back to its compute
        capability (doctor, `provision run` and `matrix recommend` on this machine use this)."""
        try:
            return self.recommend(cc=cc, gpu=gpu, driver=driver, tf_major=tf_major)
        except UnknownKey:
            if not cc:
                raise
            return self.recommend(cc=cc, driver=driver, tf_major=tf_major)

    def _other_majors(self, chosen, cap):
        """The first GPU image of each other TF major version that also runs on `cap`."""
        out, seen = [], {Version(chosen["tf"]).major}
        for img in self.data["images"]:
            major = Version(img["tf"]).major
            if img["flavor"] != "cpu" and major not in seen and cap in [cc_tuple(c) for c in img["compute_capabilities"]]:
                seen.add(major)
                out.append({"flavor": img["flavor"], "image": img["image"], "tf_major": major})
        return out

    def recommend(self, cc=None, gpu=None, driver=None, tf_major=None):
        """The image flavour for this GPU (and driver, TF major) and why."""
        gpu_entry = self.gpu(gpu) if gpu else None
        if gpu_entry is None and cc is None:
            img = self._images["cpu"]
            return {"flavor": "cpu", "image": img["image"], "gpu": None, "cc": None,
                    "reason": "no NVIDIA GPU given or found: the CPU image runs everything (slowly)"}
        cap = cc_tuple(cc if cc is not None else gpu_entry["compute_capability"])
        who = "{} (compute capability {})".format(gpu_entry["name"], cc_str(cap)) if gpu_entry \
            else "compute capability {}".format(cc_str(cap))
        if gpu_entry and gpu_entry.get("family_of") and cc is None:
            who = ("{!r} is not in compat_matrix.yaml, so it is taken as {} (compute capability {}; pass --cc X.Y "
                   "if that is wrong)").format(gpu_entry["family_of"], gpu_entry["name"], cc_str(cap))
        if tf_major not in (None, 1, 2):
            raise UserError("--tf-major must be 1 or 2, got {!r}".format(tf_major), fix="pass 1 or 2")
        order = [e for e in self.data["images"] if e["flavor"] != "cpu"
                 and (tf_major is None or Version(e["tf"]).major == tf_major)]
        notes = []
        for img in order:
            supported = [cc_tuple(c) for c in img["compute_capabilities"]]
            if cap not in supported:
                notes.append("{} ({}) has no kernels for {}".format(img["flavor"], img["image"], cc_str(cap)))
                continue
            reason = "{}: {}".format(who, img.get("why", "supported by " + img["flavor"]))
            if notes:
                reason = "; ".join(notes) + ". " + reason
            also = [] if tf_major is not None else self._other_majors(img, cap)
            if also:
                reason += ". TF {0} also runs on this GPU: --tf-major {0} gives {1} ({2})".format(
                    also[0]["tf_major"], also[0]["flavor"], also[0]["image"])
            out = {"flavor": img["flavor"], "image": img["image"], "gpu": gpu_entry["name"] if gpu_entry else None,
                   "cc": cc_str(cap), "min_driver": img["min_driver"], "driver_ok": None, "reason": reason,
                   "also": also, "family_of": gpu_entry.get("family_of") if gpu_entry else None}
            if driver is not None:
                ok, how = self.driver_ok(img, driver, gpu_entry)
                out["driver_ok"] = ok
                if how:
                    out["reason"] += "; " + how
                elif not ok:
                    out["reason"] += ("; driver {} is too old: it needs >= {} "
                                      "(provision host --tags driver)").format(driver, img["min_driver"])
            return out
        img = self._images["cpu"]
        issues = [i["text"] for i in self.data.get("known_issues", []) if cap >= cc_tuple(i["cc_min"])]
        return {"flavor": "cpu", "image": img["image"], "gpu": gpu_entry["name"] if gpu_entry else None,
                "cc": cc_str(cap), "min_driver": None, "driver_ok": None,
                "reason": "; ".join(notes + issues) + ". Only the CPU image runs on {}".format(who)}


def _soname(cuda_version):
    # libcudart's soname: 10.0, 10.1, ... then 11.0 for all of 11.x, then 12, 13
    v = Version(str(cuda_version))
    return "{}.{}".format(v.major, v.minor) if v.major < 11 else ("11.0" if v.major == 11 else str(v.major))
