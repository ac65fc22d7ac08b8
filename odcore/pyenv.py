"""The python-env resolver of explain: installation errors whose variable part names the packages, versions
or interpreter involved: pip's resolver conflicts (the requirements under "The conflict is caused by:"),
wheels built for another Python or platform (the PEP 425 tags of the file name) and venvs without ensurepip
(the Python version that needs its own pythonX.Y-venv package) and conda's UnsatisfiableError (the Pythons a
package is built for vs the environment's). The answer names them; its texts come from
odcore/data/pyenv.yaml. Python 3.6-safe; needs only PyYAML (loaded on first use).
"""
import os
import re

from odcore import datafile

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PATH = os.path.join(DATA_DIR, "pyenv.yaml")
# lower-case substrings of the messages resolved here: a window without one is not parsed
TRIGGERS = ("the conflict is caused by", "supported wheel", "ensurepip", "-venv", "unsatisfiableerror")
CONFLICT = re.compile(r"The conflict is caused by:(.*?)(?:To fix this|ERROR:|$)", re.IGNORECASE)
DEPENDS = re.compile(r"([A-Za-z0-9][\w.\-\[\]]*) (\S+) depends on ([A-Za-z0-9][\w.\-]*)"
                     r"([<>=!~][^\s;]*(?: and [<>=!~][^\s;]*)*)?"
                     r"(?:; ?(python_version ?[<>=!]+ ?\"[^\"]+\"))?")
REQUESTED = re.compile(r"The user requested (\(constraint\) )?([A-Za-z0-9][\w.\-\[\]]*)([<>=!~]\S*)?")
WHEEL = re.compile(r"([A-Za-z0-9][\w.]*)-([^-\s]+)-((?:cp|py|pp)\d+)-([^-\s]+)-(\S+?)\.whl is not a supported wheel")
VENV_PY = re.compile(r"bin/(python\d\.\d+)'?,? '?-Im'?,? '?ensurepip")
VENV_PKG = re.compile(r"apt(?:-get)? install (python\d\.\d+-venv)")
CONDA_SPEC = re.compile(r"- ([A-Za-z0-9][\w.\-]*) -> python\[version='([^']+)'\]")
CONDA_YOURS = re.compile(r"Your python: python=(\d+\.\d+)")
CONDA_PIN = re.compile(r"in conflict ?:\s*-\s*python (\d+\.\d+)\*?\s*-\s*([A-Za-z0-9][\w.\-]*)[ =]*([\w.]+)?")


def load(path=None):
    path = path or PATH
    return datafile.cached_yaml(path)


def _key(name):
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def _answer(part, group, fields, matched, start):
    texts = dict((k, " ".join(str(v).split()).format(**fields)) for k, v in fields.pop("_texts").items())
    return {"group": group, "family": "tf-install", "title": texts["title"], "cause": texts["cause"],
            "fix": texts["fix"], "sources": list(part["sources"]), "matched": matched, "start": start,
            "replacement": texts["fix"], "replaces": list(part.get("replaces") or ()),
            "resolved_from": "pyenv.yaml " + group}


def _requirements(block):
    """(who, target, spec, condition) for each requirement line of pip's conflict report."""
    reqs = []
    for m in DEPENDS.finditer(block):
        spec = (m.group(4) or "").replace(" and ", ",")
        reqs.append(("{} {}".format(m.group(1), m.group(2)), m.group(3), spec, m.group(5) or ""))
    for m in REQUESTED.finditer(block):
        who = "your {}".format("constraint" if m.group(1) else "request")
        reqs.append((who, m.group(2), m.group(3) or "", ""))
    return reqs


def _conflict(data, text):
    m = CONFLICT.search(text)
    reqs = _requirements(m.group(1)) if m else []
    if not reqs:
        return None
    part = data["conflict"]
    by_target = {}
    for req in reqs:
        by_target.setdefault(_key(req[1]), []).append(req)
    target, sides = max(by_target.items(), key=lambda kv: (len(kv[1]), -reqs.index(kv[1][0])))
    sides = [r for r in sides if r[2]] or sides
    shown = "; ".join("{} wants {}{}".format(w, t, s) for w, t, s, _ in sides)
    packages = [r for r in sides if not r[0].startswith("your ")] or sides
    user = next((r for r in sides if r[0].startswith("your ")), None)
    cond = next((r for r in sides if r[3]), None)
    fields = {"target": sides[0][1], "sides": shown, "first": packages[0][0], "other": packages[-1][0],
              "first_name": packages[0][0].split()[0],
              "spec": packages[0][2], "requested": user[1] + user[2] if user else "",
              "requirement": sides[0][1] + sides[0][2], "who": sides[0][0],
              "marker": part["marker"].format(who=cond[0], condition=cond[3]) if cond else ""}
    kind = "one" if len(sides) == 1 else "user" if user else "packages"
    fields["_texts"] = dict((k, part[k + "_" + kind] if k + "_" + kind in part else part[k])
                            for k in ("title", "cause", "fix"))
    return _answer(part, "conflict", fields, m.group(0)[:200], m.start())


def _wheel(data, text):
    m = WHEEL.search(text)
    if not m:
        return None
    part = data["wheel"]
    tag, plat = m.group(3), m.group(5)
    digits = tag[2:]
    python = ("Python " + digits[0] + ("." + digits[1:] if len(digits) > 1 else "")) if digits else "Python"
    if tag.startswith("cp"):
        python = "C" + python
    platform = next((v for k, v in sorted(part["platforms"].items(), key=lambda kv: -len(kv[0]))
                     if plat.startswith(k) or ("_" + k) in plat), plat)
    fields = {"wheel": m.group(0).split(" is not")[0], "python": "{} ({})".format(python, tag),
              "abi": m.group(4), "platform": platform, "tags": "-".join(m.group(3, 4, 5)),
              "project": m.group(1).replace("_", "-"), "version": m.group(2),
              "_texts": {"title": part["title"], "cause": part["cause"], "fix": part["fix"]}}
    return _answer(part, "wheel", fields, m.group(0), m.start())


def _venv(data, text):
    part = data["venv"]
    m = VENV_PY.search(text)
    pkg = VENV_PKG.search(text)
    if m:
        python = m.group(1)
    elif pkg:
        python = pkg.group(1)[:-len("-venv")]
    else:
        python = "python3"
    i = min(i for i in (text.lower().find(t) for t in TRIGGERS) if i >= 0)
    fields = {"python": python, "package": python + "-venv",
              "_texts": {"title": part["title"], "cause": part["cause"], "fix": part["fix"]}}
    return _answer(part, "venv", fields, text[i:i + 120], i)


def _python_versions(spec):
    """'3.5.*|>=3.6,<3.7.0a0|3.7.*' -> ['3.5', '3.6', '3.7'] (each alternative's lowest Python)."""
    found = set()
    for alt in spec.split("|"):
        m = re.search(r"(\d+\.\d+)", alt)
        if m:
            found.add(m.group(1))
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


def _conda(data, text):
    part = data["conda"]
    spec, yours, pin = CONDA_SPEC.search(text), CONDA_YOURS.search(text), CONDA_PIN.search(text)
    if spec and yours:
        allowed = _python_versions(spec.group(2))
        if not allowed:
            return None
        fields = {"package": spec.group(1), "allowed": ", ".join(allowed), "yours": yours.group(1),
                  "best": allowed[-1], "_texts": {"title": part["title"], "cause": part["cause"], "fix": part["fix"]}}
        return _answer(part, "conda", fields, spec.group(0), spec.start())
    if pin:
        fields = {"package": pin.group(2), "version": pin.group(3) or "", "yours": pin.group(1),
                  "_texts": {"title": part["title_pin"], "cause": part["cause"], "fix": part["fix_pin"]}}
        return _answer(part, "conda", fields, pin.group(0), pin.start())
    return None


def resolve(text, low=None, path=None):
    """The python-env answer for `text` (normalised), or None. `low` lets a caller skip texts cheaply."""
    low = text.lower() if low is None else low
    if not any(t in low for t in TRIGGERS):
        return None
    data = load(path)
    if "the conflict is caused by" in low:
        return _conflict(data, text)
    if "supported wheel" in low:
        return _wheel(data, text)
    if "unsatisfiableerror" in low:
        return _conda(data, text)
    return _venv(data, text)
