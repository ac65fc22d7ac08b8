"""`provision matrix show|check|validate|recommend`: query compat_matrix.yaml (see provision/compat.py).

Exit codes: 0 ok, 1 `check` found incompatibilities, 2 bad input (unknown key, malformed
version, broken matrix file).
"""
import json
import sys

from odcore.argtypes import compute_capability, nonempty
from odcore.errors import EXIT_FAILED, EXIT_OK, UserError
from provision import compat, gpu

KINDS = ("tf", "cuda", "gpu", "image", "od_api")
# columns shown by `show` per kind (JSON carries the full entry)
COLUMNS = {
    "tf": ["version", "latest", "package", "python", "cuda", "cudnn", "numpy", "numpy_effective", "protobuf",
           "protobuf_effective",
           "compute_capabilities", "tf_contrib", "od_api"],
    "cuda": ["version", "min_driver", "minor_compat_driver", "cc_min", "cc_max", "update"],
    "gpu": ["name", "compute_capability", "arch"],
    "image": ["flavor", "image", "tf", "cuda", "cudnn", "python", "min_driver", "compute_capabilities"],
    "od_api": ["code_path", "tf", "python", "train", "eval", "export", "setup", "notes"],
}


EXAMPLES = """examples:
  provision matrix show tf 1.15
  provision matrix check --tf 1.15 --cuda 10.1 --numpy 1.19 --gpu "RTX 3090"
  provision matrix recommend --gpu "NVIDIA GeForce RTX 3090"
  provision matrix --matrix my_matrix.yaml validate"""


def add_parser(subparsers):
    p = subparsers.add_parser("matrix", help="TF/CUDA/cuDNN/driver/GPU compatibility queries",
                              description=__doc__, epilog=EXAMPLES)
    p.add_argument("--matrix", metavar="FILE", help="matrix file (default: $ODSTACK_MATRIX or the bundled one)")
    sub = p.add_subparsers(dest="matrix_command", metavar="ACTION")
    sub.required = True

    show = sub.add_parser("show", help="one row: tf|cuda|gpu|image|od_api KEY (`list`: every key)")
    show.add_argument("kind", choices=KINDS + ("list",),
                      help="what to show: " + ", ".join(KINDS) + ", or `list` (every key of every kind)")
    show.add_argument("key", nargs="?", help="release line (1.15, 10.0), full version (1.15.5, 10.0.130), GPU name or flavour")
    show.add_argument("--json", action="store_true", help="print the row as JSON")
    show.set_defaults(func=run_show)

    check = sub.add_parser("check", help="every incompatibility between found versions and a TF release")
    check.add_argument("--tf", required=True, metavar="V", help="the TensorFlow version to check against (1.15, 2.4.1)")
    for name, what in (("python", "Python"), ("cuda", "CUDA toolkit"), ("cudnn", "cuDNN"), ("numpy", "numpy"),
                       ("protobuf", "protobuf"), ("driver", "NVIDIA driver (as nvidia-smi prints it, 470.82.01)")):
        check.add_argument("--" + name, metavar="V",
                           help="the installed {} version (default: not checked)".format(what))
    who = check.add_mutually_exclusive_group()
    who.add_argument("--gpu", metavar="NAME", type=nonempty("--gpu", "NVIDIA GeForce RTX 3090"),
                     help="GPU name as nvidia-smi prints it (default: no GPU check)")
    who.add_argument("--cc", metavar="X.Y", type=compute_capability("--cc"),
                     help="compute capability instead of a GPU name, e.g. 8.6")
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    check.set_defaults(func=run_check)

    val = sub.add_parser("validate", help="load and validate the matrix file; print what it covers")
    val.add_argument("--json", action="store_true", help="print what the file covers as JSON")
    val.set_defaults(func=run_validate)

    rec = sub.add_parser("recommend", help="which image flavour to use for a GPU, and why")
    who = rec.add_mutually_exclusive_group()
    who.add_argument("--gpu", metavar="NAME", type=nonempty("--gpu", "NVIDIA GeForce RTX 3090"),
                     help="as nvidia-smi prints it, e.g. 'NVIDIA GeForce RTX 3090'")
    who.add_argument("--cc", metavar="X.Y", type=compute_capability("--cc"),
                     help="compute capability instead of a GPU name, e.g. 8.6")
    rec.add_argument("--driver", metavar="V",
                     help="installed NVIDIA driver, e.g. 470.82.01: also says whether it is new enough "
                          "(default: not checked)")
    rec.add_argument("--tf-major", type=int, choices=(1, 2),
                     help="only images of this TensorFlow major version (default: either, in the order of "
                          "compat_matrix.yaml's images, TF 1.15 first: an RTX 3090 gets tf1.15-ngc; "
                          "pass 2 for a TF 2 image)")
    rec.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    rec.set_defaults(func=run_recommend)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _matrix(args):

    return compat.load(args.matrix)


def _emit_json(obj):
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _fmt(value):
    if isinstance(value, dict):
        return "; ".join("{}: {}".format(k, _fmt(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def _console():
    from rich.console import Console

    return Console(width=max(100, Console().width))


def run_show(args):
    m = _matrix(args)
    if args.kind == "list":
        keys = {"tf": m.tf_versions(), "cuda": [c["version"] for c in m.data["cuda"]],
                "gpu": [g["name"] for g in m.data["gpus"]], "image": [i["flavor"] for i in m.data["images"]]}
        if args.json:
            _emit_json(keys)
        else:
            for kind, values in keys.items():
                sys.stdout.write("{}: {}\n".format(kind, ", ".join(values)))
        return EXIT_OK
    if not args.key:

        raise UserError("`show {}` needs a KEY".format(args.kind),
                        fix="e.g. provision matrix show {} {}".format(
                            args.kind, {"tf": "1.15", "cuda": "10.0", "gpu": "'RTX 3090'", "image": "tf1.15-gpu",
                                       "od_api": "1.15"}[args.kind]))
    row = {"tf": m.tf, "cuda": m.cuda, "gpu": m.gpu, "image": m.image, "od_api": m.od_api}[args.kind](args.key)
    if args.json:
        _emit_json(row)
        return EXIT_OK
    from rich.table import Table

    table = Table(title="{} {}".format(args.kind, args.key), show_header=True)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for col in COLUMNS[args.kind]:
        if col in row:
            table.add_row(col, _fmt(row[col]))
    table.add_row("sources", "\n".join(row["sources"]))
    _console().print(table)
    return EXIT_OK


def run_check(args):
    m = _matrix(args)
    found = {k: getattr(args, k) for k in ("python", "cuda", "cudnn", "numpy", "protobuf", "driver", "gpu", "cc")}
    problems = m.check(tf=args.tf, **found)
    notes = m.notes(args.tf, gpu=args.gpu, cc=args.cc) if not any(
        p["component"] == "gpu" for p in problems) else m.notes(args.tf)
    if args.json:
        _emit_json({"ok": not problems, "tf": args.tf, "problems": problems, "notes": notes})
    elif not problems:
        given = ", ".join("{} {}".format(k, v) for k, v in found.items() if v is not None) or "nothing else given"
        sys.stdout.write("ok: TensorFlow {} is compatible with {}\n".format(args.tf, given))
    else:
        from rich.table import Table

        table = Table(title="TensorFlow {}: {} problem(s)".format(args.tf, len(problems)))
        for col in ("component", "found", "expected", "fix"):
            table.add_column(col, overflow="fold")
        for p in problems:
            table.add_row(p["component"], p["found"], p["expected"], p["fix"])
        _console().print(table)
    for note in notes if not args.json else ():
        sys.stdout.write("note: {}\n".format(note))
    return EXIT_FAILED if problems else EXIT_OK


def detect_gpu():
    """(name, driver) of GPU 0 via NVML, or (None, why) when there is none."""

    try:
        name, _cc, driver = gpu.first_gpu()
    except gpu.NvmlFailure as exc:
        return None, "NVML: {}".format(exc.message)
    return (name, driver) if name else (None, "NVML reports no GPUs")


def run_recommend(args):
    m = _matrix(args)
    gpu, cc, driver = args.gpu, args.cc, args.driver
    detected = None
    if gpu is None and cc is None:  # this machine
        name, info = detect_gpu()
        if name:
            gpu, driver, detected = name, driver or info, name
        else:
            detected = info
    rec = m.recommend_host(cc=cc, gpu=gpu, driver=driver, tf_major=args.tf_major)
    if args.gpu is None and args.cc is None:
        rec["detected"] = detected
        if rec["flavor"] == "cpu" and not gpu:
            rec["reason"] = "no NVIDIA GPU found on this machine ({}): the CPU image runs everything (slowly)".format(detected)
    if args.json:
        _emit_json(rec)
    else:
        from rich.panel import Panel

        body = ("[bold]{0}[/bold]  (odstack:{0}, built FROM {1})\n\n{2}\n\n"
                "next: provision image build {0} && provision run --flavor {0} -- demo").format(
                    rec["flavor"], rec["image"], rec["reason"])
        _console().print(Panel(body, title="recommended image"))
    return EXIT_OK


def run_validate(args):
    """Loading validates every entry (compat.MatrixError names the bad one: exit 2)."""
    m = _matrix(args)
    counts = {section: len(m.data[section]) for section in ("tensorflow", "cuda", "gpus", "images", "od_api", "known_issues")}
    sources = sorted({s for section in counts for e in m.data[section]
                      for s in (e["source"] if isinstance(e["source"], list) else [e["source"]])})
    if args.json:
        _emit_json({"ok": True, "path": m.path, "entries": counts, "sources": len(sources)})
    else:
        sys.stdout.write("ok: {} ({}; {} distinct sources)\n".format(
            m.path, ", ".join("{} {}".format(n, k) for k, n in counts.items()), len(sources)))
    return EXIT_OK
