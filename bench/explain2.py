"""Benchmark for issue #24: `provision explain` on the dev2 and held-out2 sets (real texts from public
threads nothing else in the repository cites; tests/fixtures/explain/{dev2,heldout2}.yaml).

Scoring of the top-1 answer (odcore.explain.explain, what `provision explain` runs):
  useful   a signature (not a generic family answer, not a harmless notice) whose title+cause+fix
           contains one alternative of every `keywords` group of the entry,
  generic  the top-1 answer is a family answer (names a kind of failure, no cause): never useful.
Prints overall and per-family figures for both sets and how many answers were generic.
Usage: python bench/explain2.py [--set dev2|heldout2|both]
"""
import argparse
import collections
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "explain"
GOAL, FAMILY_GOAL = 0.9, 0.75


def useful(entry, top):
    if top is None or top["harmless"] or top["kind"] == "family":
        return False
    text = " ".join((top["title"], top["cause"], top["fix"])).lower()
    return all(any(alt.lower() in text for alt in group) for group in entry.get("keywords") or [])


def score_set(core, kb, name):
    entries = yaml.safe_load((FIXTURES / (name + ".yaml")).read_text(encoding="utf-8"))["entries"]
    per = collections.defaultdict(lambda: [0, 0])
    generic = nothing = ok = 0
    for e in entries:
        matches = core.explain(e["text"], kb)
        top = matches[0] if matches else None
        per[e["family"]][1] += 1
        if top is None:
            nothing += 1
        elif top["kind"] == "family":
            generic += 1
        if useful(e, top):
            ok += 1
            per[e["family"]][0] += 1
    n = len(entries)
    fam_ok = all(a / b >= FAMILY_GOAL for a, b in per.values())
    return {"entries": n, "useful_top1": "{}/{} = {:.0%}".format(ok, n, ok / n if n else 0),
            "goal_overall_0.9_met": bool(n) and ok / n >= GOAL, "goal_every_family_0.75_met": fam_ok,
            "generic_top1": generic, "nothing_matched": nothing,
            "per_family": {f: "{}/{}".format(a, b) for f, (a, b) in sorted(per.items())}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("dev2", "heldout2", "both"), default="both")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from odcore import explain as core

    kb = core.load()
    names = ("dev2", "heldout2") if args.set == "both" else (args.set,)
    print(json.dumps({n: score_set(core, kb, n) for n in names}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
