"""`provision explain`: recognise a known failure in an error message or a whole log and say
what it means, why it happens and the fix. The knowledge base is data
(provision/data/errors.yaml); this module only loads, validates and matches it."""
from __future__ import annotations

import json
import re
import sys
from functools import lru_cache
from pathlib import Path

import yaml

from odcore.errors import EXIT_FAILED, UserError

KB_PATH = Path(__file__).parent / "data" / "errors.yaml"
REQUIRED = ("id", "title", "patterns", "cause", "fix", "sources")
# Straighten curly quotes so a pasted forum post matches like a terminal log does.
QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "：": ":"})


class Signature:
    def __init__(self, entry):
        self.id = entry["id"]
        self.title = entry["title"]
        self.cause = " ".join(entry["cause"].split())
        self.fix = " ".join(entry["fix"].split())
        self.sources = list(entry["sources"])
        self.weight = float(entry.get("weight", 1.0))
        self.patterns = [re.compile(p, re.IGNORECASE) for p in entry["patterns"]]

    def match(self, text):
        """-> (score, first position, matched snippet) or None."""
        hits = [m for m in (p.search(text) for p in self.patterns) if m]
        if not hits:
            return None
        first = min(hits, key=lambda m: m.start())
        return len(hits) * self.weight, first.start(), first.group(0)


@lru_cache(maxsize=4)
def load(path=None):
    path = Path(path or KB_PATH)
    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UserError("cannot read the knowledge base: {}".format(exc), where=str(path))
    if not isinstance(entries, list):
        raise UserError("expected a list of signatures", where=str(path))
    sigs, seen = [], set()
    for i, entry in enumerate(entries):
        where = "{}: entry {} ({})".format(path, i, (entry or {}).get("id", "?") if isinstance(entry, dict) else "?")
        if not isinstance(entry, dict):
            raise UserError("not a mapping", where=where)
        missing = [k for k in REQUIRED if not entry.get(k)]
        if missing:
            raise UserError("missing field(s): " + ", ".join(missing), where=where,
                            fix="every signature needs " + ", ".join(REQUIRED))
        if entry["id"] in seen:
            raise UserError("duplicate id", where=where)
        seen.add(entry["id"])
        try:
            sigs.append(Signature(entry))
        except re.error as exc:
            raise UserError("bad regex: {}".format(exc), where=where + ".patterns")
    return tuple(sigs)


def normalise(text):
    return " ".join(text.translate(QUOTES).split())


def explain(text, kb=None):
    """-> list of dicts (id, title, cause, fix, sources, matched), best first."""
    text = normalise(text)
    found = []
    for sig in kb or load():
        hit = sig.match(text)
        if hit:
            score, pos, snippet = hit
            found.append((-score, pos, sig, snippet))
    found.sort(key=lambda t: (t[0], t[1]))
    return [{"id": s.id, "title": s.title, "cause": s.cause, "fix": s.fix, "sources": s.sources,
             "matched": snippet} for _, _, s, snippet in found]


def add_parser(subparsers):
    p = subparsers.add_parser("explain", help="explain an error message or a log: cause and fix",
                              description="Match an error text or a log against known failure signatures. "
                                          "Exit 0 when something matched, 1 when nothing did.")
    p.add_argument("text", nargs="*", help="the error text (quote it); '-' reads standard input")
    p.add_argument("--log", metavar="FILE", help="a log file to scan")
    p.add_argument("--json", action="store_true", help='print {"matches": [{"id","title","cause","fix"}]}')
    p.set_defaults(func=run)


def read_input(args):
    parts = []
    if args.log:
        try:
            parts.append(Path(args.log).read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            raise UserError("cannot read the log: {}".format(exc.strerror), where=args.log,
                            fix="give an existing file: provision explain --log train.log")
    if args.text == ["-"]:
        parts.append(sys.stdin.read())
    elif args.text:
        parts.append(" ".join(args.text))
    if not parts or not any(p.strip() for p in parts):
        raise UserError("nothing to explain", where="arguments",
                        fix="provision explain \"ERROR TEXT\" or provision explain --log FILE")
    return "\n".join(parts)


def run(args):
    matches = explain(read_input(args))
    if args.json:
        out = [{k: m[k] for k in ("id", "title", "cause", "fix")} for m in matches]
        sys.stdout.write(json.dumps({"matches": out}, indent=2, ensure_ascii=False) + "\n")
    else:
        render(matches)
    return 0 if matches else EXIT_FAILED


def render(matches):
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)
    if not matches:
        console.print(Text("No known signature matched. Run `provision doctor` for a host check.", style="yellow"))
        return
    for i, m in enumerate(matches):
        console.print(Text.assemble(("{}. ".format(i + 1), "bold"), (m["title"], "bold red" if i == 0 else "bold"),
                                    ("  [{}]".format(m["id"]), "dim")))
        console.print(Text.assemble(("   matched: ", "dim"), m["matched"][:160]))
        console.print(Text.assemble(("   why: ", "bold"), m["cause"]))
        console.print(Text.assemble(("   fix: ", "bold green"), m["fix"]))
        console.print(Text.assemble(("   see: ", "dim"), ", ".join(m["sources"])))
