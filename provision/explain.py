"""`provision explain`: recognise a known failure in an error message or a whole log and say
what it means, why it happens and the fix. A thin CLI over odcore.explain (the matcher and the
knowledge base, odcore/data/errors.yaml, shared with odrun inside the images).

    provision explain "Failed to initialize NVML: Driver/library version mismatch"
    provision explain --log RUN/logs/train.log
    some_command 2>&1 | provision explain -
"""
import json
import re
import sys

from odcore import explain as core
from odcore.console import make_console
from odcore.errors import EXIT_FAILED, UserError
from provision import compat

KB_PATH = core.KB_PATH
MAX_SHOWN = 5


def load(path=None):
    try:
        return core.load(path)
    except core.KnowledgeBaseError as exc:
        raise UserError(exc.message, where=exc.where, fix="fix the entry in the knowledge base (schema: "
                        "odcore/data/errors.schema.json)")


def explain(text, kb=None):
    return core.explain(text, kb or load())


def add_parser(subparsers):
    p = subparsers.add_parser("explain", help="explain an error message or a log: cause and fix",
                              description="Match an error text or a log against known failure signatures. "
                                          "Exit 0 when a problem was recognised, 1 when nothing (or only "
                                          "harmless notices) matched, 2 for empty or binary input.")
    p.add_argument("text", nargs="*", help="the error text (quote it); '-' reads standard input")
    p.add_argument("--log", metavar="FILE", help="a log file to scan (streamed: any size)")
    p.add_argument("--all", action="store_true", help="show every match, not only the best {}".format(MAX_SHOWN))
    p.add_argument("--json", action="store_true",
                   help='print {"matches": [{"id","kind","family","title","cause","fix","harmless","matched"}]}')
    p.add_argument("--here", action="store_true",
                   help="the error happened on this machine: rank causes by its installed TensorFlow (package "
                        "metadata, no import) and say which ones its version rules out")
    p.set_defaults(func=run)


def _scan_binary(fh, where):
    try:
        return core.scan_stream(fh, load())
    except core.NotText as exc:
        raise UserError(str(exc), where=where,
                        fix="give the text of the error or a text log: provision explain --log train.log")


def collect(args):
    """-> ranked matches from --log, stdin ('-') and/or the text arguments."""
    kb = load()
    parts = []
    if args.log:
        try:
            with open(args.log, "rb") as fh:
                parts.append(_scan_binary(fh, args.log))
        except (OSError, IOError) as exc:
            raise UserError("cannot read the log: {}".format(exc.strerror or exc), where=args.log,
                            fix="give an existing file: provision explain --log train.log")
    if args.text == ["-"]:
        parts.append(_scan_binary(sys.stdin.buffer, "standard input"))
    elif args.text:
        text = " ".join(args.text)
        if not text.strip():
            raise UserError("empty input: nothing to explain", where="arguments",
                            fix="provision explain \"ERROR TEXT\" or provision explain --log FILE")
        parts.append(core.explain(text, kb))
    if not parts:
        raise UserError("nothing to explain", where="arguments",
                        fix="provision explain \"ERROR TEXT\" or provision explain --log FILE")
    if len(parts) == 1:
        return parts[0]
    seen, merged = set(), []
    for m in sorted((m for p in parts for m in p), key=lambda m: (m["harmless"], m["kind"] == "family")):
        if m["id"] not in seen:
            seen.add(m["id"])
            merged.append(m)
    return merged


FIELDS = ("id", "kind", "family", "title", "cause", "fix", "harmless", "matched")


def confidence(match):
    """high: a signature naming the cause; low: only the kind of failure (a family hint, no cause)."""
    return "low" if match["kind"] == "family" else "high"


CUDA_LIB = re.compile(r"lib(cudart|cublas|cufft|curand|cusolver|cusparse)\.so\.(\d+(?:\.\d+)?)|"
                      r"(cudart|cublas)64_(\d+)\.dll", re.IGNORECASE)


def resolve_cuda_library(match):
    """A missing CUDA library names its CUDA version: answer which odstack image ships it, from the
    compat matrix's `images` (each with its sources) instead of a fixed image name."""
    found = CUDA_LIB.search(" ".join(filter(None, (match.get("matched"), match.get("line")))))
    if not found or match["kind"] != "signature":
        return match
    version = found.group(2) or found.group(4)
    if "." not in version and len(version) >= 3:  # cudart64_100.dll -> 10.0, cudart64_110 -> 11.0
        version = "{}.{}".format(version[:-1], version[-1])

    try:
        images = compat.load().data.get("images") or []
    except compat.MatrixError:
        return match
    fits = [i for i in images if str(i.get("cuda")) == version or str(i.get("cuda")).split(".")[0] == version]
    if not fits:
        return match
    image = fits[0]
    match = dict(match)
    shipped = ("This library is CUDA {}: the {} image (TensorFlow {}, CUDA {}) ships it: provision image "
               "build {} (or install CUDA {} for that TensorFlow: provision matrix show tf {}).").format(
        version, image["flavor"], image["tf"], image["cuda"], image["flavor"], image["cuda"], image["tf"])
    # odcore's GPU-stack resolver already read the version from the matrix (no image named): keep its fix
    match["fix"] = match["fix"] + " " + shipped if match.get("resolved_from") == "compat_matrix.yaml" else shipped
    match["resolved_from"] = "compat_matrix.yaml images"
    return match


TF_DISTS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-macos", "tensorflow-intel", "tf-nightly")


def machine_context():
    """--here: this Python's TensorFlow version from its package metadata (a TensorFlow import would
    cost seconds; doctor's tf probe does that). {} when none is installed."""
    from importlib import metadata

    for dist in TF_DISTS:
        try:
            return {"tensorflow": metadata.version(dist), "from": "{} package metadata".format(dist)}
        except metadata.PackageNotFoundError:
            continue
    return {}


def in_spec(version, spec):
    """`spec` is a versions.tensorflow range of the knowledge base: 'A || B' is a union of specifier sets."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        v = Version(version)
    except InvalidVersion:
        return True  # unknown here: rule nothing out
    return any(v in SpecifierSet(part.strip()) for part in spec.split("||"))


def apply_context(matches, facts, kb=None):
    """Signatures whose cause holds only for a TensorFlow range that excludes this machine's TensorFlow
    go after the others (they cannot be the cause here), each saying why; the rest keep their order."""
    tf = facts.get("tensorflow")
    if not tf:
        return matches
    kb = kb or load()
    out = []
    for m in matches:
        spec = (kb.by_id[m["id"]].versions if m["id"] in kb.by_id else {}).get("tensorflow")
        if spec:
            fits = in_spec(tf, spec)
            m = dict(m, context="{} this machine: TensorFlow {} here is {} {}".format(
                "fits" if fits else "not", tf, "within" if fits else "outside", spec), ruled_out=not fits)
        out.append(m)
    return sorted(out, key=lambda m: (m["harmless"], bool(m.get("ruled_out"))))


def run(args):
    facts = machine_context() if args.here else None
    matches = [resolve_cuda_library(m) for m in collect(args)]
    if facts is not None:
        matches = apply_context(matches, facts)
    if args.json:
        out = [dict({k: m[k] for k in FIELDS}, confidence=confidence(m),
                    **{k: m[k] for k in ("resolved_from", "replacement", "context") if k in m}) for m in matches]
        doc = {"matches": out}
        if facts is not None:
            doc["context"] = facts
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        render(matches if args.all else matches[:MAX_SHOWN], len(matches), facts)
    return 0 if any(not m["harmless"] for m in matches) else EXIT_FAILED


def render(matches, total, facts=None):
    from rich.text import Text


    console = make_console()
    if facts is not None:
        console.print(Text("context: " + ("TensorFlow {} ({}) ranked the causes".format(facts["tensorflow"], facts["from"])
                                          if facts else "no TensorFlow in this Python: ranking unchanged"), style="dim"))
    if not matches:
        console.print(Text("No known signature matched. Run `provision doctor` for a host check, and "
                           "`provision doctor --report FILE` to share the environment.", style="yellow"))
        return
    if all(m["harmless"] for m in matches):
        console.print(Text("Only informational notices found - none of these is an error:", style="green"))
    for i, m in enumerate(matches):
        style = "bold green" if m["harmless"] else ("bold red" if i == 0 else "bold")
        label = "harmless: " if m["harmless"] else ("not recognised; hint: " if m["kind"] == "family" else "")
        console.print(Text.assemble(("{}. ".format(i + 1), "bold"), (label + m["title"], style),
                                    ("  [{}]".format(m["id"]), "dim")))
        console.print(Text.assemble(("   matched: ", "dim"), (m["line"] or m["matched"] or "")[:200]))
        console.print(Text.assemble(("   why: ", "bold"), m["cause"]))
        console.print(Text.assemble(("   fix: ", "bold green"), m["fix"]))
        if m.get("context"):
            console.print(Text.assemble(("   here: ", "dim"), m["context"]))
        links = [s for s in m["sources"] if s.startswith("http")]
        if links:
            console.print(Text.assemble(("   see: ", "dim"), ", ".join(links[:3])))
        if m["kind"] == "family" and not m["harmless"]:
            console.print(Text("   no known cause matched: collect `provision doctor --report FILE` and share it "
                               "with the error", style="yellow"))
    if total > len(matches):
        console.print(Text("({} more: provision explain --all)".format(total - len(matches)), style="dim"))
