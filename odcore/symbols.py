"""The symbol resolver of explain: errors whose variable part is a name that a library removed or
moved (`module 'X' has no attribute 'Y'`, `cannot import name 'Y' from 'X'`, `Unrecognized keyword
arguments passed to L: {'K': ...}`, `Could not interpret optimizer identifier: <M.O object>`).
The name is read from the message and looked up in odcore/data/symbols.yaml (a name, or a whole
module that `moved`; schema
symbols.schema.json; TensorFlow's own tf_upgrade_v2 table is tf_renames_v2.yaml), so the answer
names the replacement and its source. Python 3.6-safe; needs only PyYAML (loaded on first use).
"""
import os
import re

from odcore import datafile

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PATH = os.path.join(DATA_DIR, "symbols.yaml")
# Lower-case substrings of the messages resolved here: a window without one is not parsed.
TRIGGERS = ("has no attribute", "cannot import name", "unrecognized keyword argument",
            "could not interpret optimizer", "not recognized")
ATTR = re.compile(r"module '([\w.]+)' has no attribute '(\w+)'")
IMPORT = re.compile(r"cannot import name '?(\w+)'?,? from '?([\w.]+)'?")
# Module spellings that name the same public module (TF's generated API packages, tf.keras).
ALIASES = ((re.compile(r"^tensorflow(_core)?\._api\.v[12]\.(compat\.v2\.)?"), "tensorflow."),
           (re.compile(r"^tensorflow_core(\.|$)"), "tensorflow\\1"),
           (re.compile(r"^keras\.api\._v[12]\.keras\."), "tensorflow.keras."),
           (re.compile(r"^keras\.api\."), "keras."))
_CACHE = {}


def load(path=None):
    """symbols.yaml with each group's `table` read in: {"groups", "keywords", "optimizers"}."""
    path = path or PATH
    data = _CACHE.get(path)
    if data is None:
        data = datafile.read_yaml(path)
        for group in data["groups"]:
            if group.get("table"):
                table = datafile.read_yaml(os.path.join(os.path.dirname(path), group["table"]))
                group["symbols"] = dict((_tf_long(k), v) for k, v in table["renames"].items())
                group["modules"] = dict((_tf_long(k), v) for k, v in table["removed_modules"].items())
                group["source"] = list(group["source"]) + [s for s in table["source"] if s not in group["source"]]
            group.setdefault("symbols", {})
            group["prefixes"] = set(k.rsplit(".", n)[0] for k in group["symbols"] for n in range(1, k.count(".")))
        for section in ("keywords", "methods", "optimizers"):
            for entry in data.get(section) or []:
                entry["rx"] = re.compile(entry["pattern"], re.IGNORECASE)
        _CACHE[path] = data
    return data


def _tf_long(name):
    """tf_upgrade_v2 writes tf.X; errors print the module as tensorflow.X."""
    return "tensorflow" + name[2:] if name.startswith("tf.") else name


def _short(name):
    return "tf" + name[len("tensorflow"):] if name.startswith("tensorflow.") else name


def fold(module):
    for rx, repl in ALIASES:
        module = rx.sub(repl, module)
    return module


def names(text):
    """(module.name, start, matched) for each removed-name message in `text`."""
    out = []
    for m in ATTR.finditer(text):
        out.append((fold(m.group(1)) + "." + m.group(2), m.start(), m.group(0)))
    for m in IMPORT.finditer(text):
        out.append((fold(m.group(2)) + "." + m.group(1), m.start(), m.group(0)))
    return sorted(out, key=lambda t: t[1])


def _lookup(group, name):
    """(replacement text, removed module?) for `name` in `group`, or (None, False)."""
    if name in group["symbols"]:
        return _short(group["symbols"][name]), False
    modules = group.get("modules") or {}
    if name in modules:
        return modules[name].replace("<function name> cannot be converted automatically. ", ""), True
    moved = group.get("moved") or {}
    for module in sorted(moved, key=len, reverse=True):  # a whole module moved: any name under it
        if name.startswith(module + ".") and "." not in name[len(module) + 1:]:
            return moved[module].format(name=name[len(module) + 1:]), False
    if name in group["prefixes"]:
        moved = sorted(k for k in group["symbols"] if k.startswith(name + "."))[:3]
        return "its members, each under its new name (" + ", ".join(
            "{} -> {}".format(_short(k), _short(group["symbols"][k])) for k in moved) + ", ...)", False
    return None, False


def answer(texts, entry, subject, replacement, matched, start, removed=False):
    """The explain answer for one resolved name; every text comes from symbols.yaml."""
    fields = dict(subject=subject, replacement=replacement, removed_in=entry["removed_in"],
                  why=" ".join(entry["why"].split()), otherwise=" ".join(entry["otherwise"].split()))
    title = entry.get("title") or texts["removed_module" if removed else "title"]
    return {"group": entry["id"], "family": entry["family"], "symbol": subject, "replacement": replacement,
            "title": title.format(**fields), "cause": texts["cause"].format(**fields),
            "fix": (entry.get("fix") or texts["removed_module_fix" if removed else "fix"]).format(**fields),
            "sources": list(entry["source"]), "matched": matched, "start": start,
            "attach": entry.get("attach", True)}


SUBJECTS = {"keywords": "{owner}'s keyword {key}=", "methods": "{owner}.{key}()"}


def _by_pattern(data, text):
    for section, table in (("keywords", "keywords"), ("methods", "methods"), ("optimizers", "modules")):
        for entry in data.get(section) or []:
            m = entry["rx"].search(text)
            if not m:
                continue
            groups = m.groupdict()
            if section in SUBJECTS:
                key = groups["keyword"]
                owner = groups.get("owner") or entry.get("owner", "")
                subject = SUBJECTS[section].format(owner=owner, key=key)
                replacement = entry[table].get(key)
            else:
                key = next((k for k in sorted(entry[table], key=len, reverse=True)
                            if groups["module"].startswith(k)), None)
                subject = "{}.{}".format(groups["module"], groups["owner"])
                replacement = entry[table][key].replace("OWNER", groups["owner"]) if key else None
            if replacement:
                return answer(data["answers"], entry, subject, replacement, m.group(0), m.start())
    return None


def resolve(text, low=None, path=None):
    """The first removed/moved name in `text` that the data knows, as an answer dict, or None.
    `low` (the lower-cased text) lets a caller skip texts without a trigger cheaply."""
    low = text.lower() if low is None else low
    if not any(t in low for t in TRIGGERS):
        return None
    data = load(path)
    for name, start, matched in names(text):
        for group in data["groups"]:
            replacement, removed = _lookup(group, name)
            if replacement:
                return answer(data["answers"], group, _short(name), replacement, matched, start, removed)
    return _by_pattern(data, text)
