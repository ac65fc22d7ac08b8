"""`odrun convert`: annotations (Pascal VOC from labelImg/CVAT, COCO JSON, xml_to_csv.py's CSV) to
the OD API's TFRecords + label_map.pbtxt + train/test CSVs + summary.json.

Replaces the tutorial scripts xml_to_csv.py + generate_tfrecord.py (hard-coded class names, JPEG only,
silent None labels, one slow process). Heavy imports stay inside functions.
"""
import os

from odrun.convert import problems as P, report
from odrun.ui.quiet import terminal  # the terminal, also while library noise goes to the log


def convert(source, out_dir, **options):
    """Library entry point (what `odrun demo` calls): see odrun.convert.pipeline.ConvertOptions for
    the options (the CLI flags' dest names); returns the summary dict."""
    from odrun.convert import pipeline

    return pipeline.convert(source, out_dir, **options)


def convert_with_report(source, out_dir, input_size=report.DEFAULT_INPUT_SIZE, **options):
    """convert() plus OUT/report.png drawn into the staged set (as `odrun convert` does; what the
    demos call): -> the summary with "report": {path, warnings}."""
    drawn = _Report(input_size)
    summary = convert(source, out_dir, finish=drawn.append, **options)
    summary["report"] = {"path": os.path.abspath(os.path.join(out_dir, report.REPORT)), "warnings": drawn.warnings,
                         "check_only": False}
    return summary


def seed_folders(source):
    """The tutorial 000 layout: SOURCE/train and SOURCE/test, each with its images + XML."""
    if not source or not os.path.isdir(source):
        return None
    dirs = [os.path.join(source, d) for d in ("train", "test")]
    if all(os.path.isdir(d) and any(f.lower().endswith(".xml") for f in os.listdir(d)) for d in dirs):
        return dirs
    return None


def from_args(args):
    """`odrun convert` (flags: odrun.verbs.convert) -> summary.json's dict plus the report."""
    if args.split is None and args.train_dir is None and args.test_dir is None and seed_folders(args.source):
        args.train_dir, args.test_dir = seed_folders(args.source)
        args.source = None
        terminal().write("using the existing train/ and test/ folders (pass --split to split anew)\n")
    out_dir, check_dir = args.out, None
    if getattr(args, "check", False):  # convert into a temp folder: every check runs, no records kept
        import tempfile
        from odrun.convert import safety
        safety.check_report_dir(args)  # --out gets report.png: never inside an input
        check_dir = out_dir = tempfile.mkdtemp(prefix="odrun-convert-check-")
    try:
        summary = _convert_and_report(args, out_dir)
    finally:
        if check_dir:
            import shutil
            shutil.rmtree(check_dir, ignore_errors=True)
    return summary


def show(summary, args):
    print_summary(summary, extra=summary["report"]["warnings"])  # the report's size warnings count too
    print("report: " + summary["report"]["path"])


def _convert_and_report(args, out_dir):
    drawn = _Report(args.input_size or report.DEFAULT_INPUT_SIZE)
    summary = convert(args.source, out_dir, fmt=args.fmt, split=0.8 if args.split is None else args.split,
                      seed=args.seed,
                      label_map=args.label_map, shards=args.shards, strict=args.strict,
                      skip_empty=args.skip_empty, train_dir=args.train_dir, test_dir=args.test_dir,
                      progress=not args.json and terminal().isatty(), workers=args.workers,
                      image_dir=args.image_dir, allow_outside_images=args.allow_outside_images,
                      masks=args.masks,
                      max_size=args.max_size, finish=None if out_dir != args.out else drawn.append)
    target = os.path.join(args.out, report.REPORT)
    size = args.input_size or report.DEFAULT_INPUT_SIZE
    if out_dir != args.out:  # --check: report.png only, in --out
        os.makedirs(args.out, exist_ok=True)
        path, warnings = report.write(out_dir, summary, out_path=target, input_size=size)
    else:  # drawn in the staged folder: it replaces --out together with the records (one set)
        path, warnings = target, drawn.warnings
    summary["report"] = {"path": os.path.abspath(path), "warnings": warnings, "check_only": out_dir != args.out}
    if out_dir != args.out:
        summary["out_dir"] = "{} (--check: report.png only, no records)".format(os.path.abspath(args.out))
    return summary


class _Report(object):
    """convert's `finish` hook: draw report.png into the staged output folder."""

    def __init__(self, input_size):
        self.input_size, self.warnings = input_size, []

    def append(self, stage, summary):
        _path, self.warnings = report.write(stage, summary, out_path=os.path.join(stage, report.REPORT),
                                            input_size=self.input_size, shown_dir=summary["out_dir"])


def print_summary(summary, limit=20, extra=()):
    """The table and counts; EXTRA: warnings already rendered (the report's), shown and counted with the rest."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    err = Console(file=terminal())  # the terminal, not the library log
    warnings = [P.render(p) for p in summary["warnings"]] + list(extra)
    for text in warnings[:limit]:
        err.print(Text.assemble(("warning", "yellow"), ": " + text), highlight=False)  # names may hold [..]
    if len(warnings) > limit:
        err.print("... {} more warnings in {}".format(len(warnings) - limit, summary["outputs"]["summary"]))
    table = Table(title_justify="left")
    for col in ("id", "class", "train boxes", "test boxes"):
        table.add_column(col, justify="right" if col != "class" else "left")
    for c in summary["classes"]:
        table.add_row(str(c["id"]), c["name"], str(c["train_boxes"]), str(c["test_boxes"]))
    out = Console()
    out.print("converted {} images ({} train / {} test) in {:.1f}s ({} worker{})".format(
        summary["images"]["total"], summary["images"]["train"], summary["images"]["test"], summary["seconds"],
        summary["workers"], "s" if summary["workers"] > 1 else ""), highlight=False)
    out.print(table)
    out.print("negatives: {}  skipped: {}  warnings: {}  -> {}".format(
        summary["images"]["negatives"], len(summary["skipped"]), len(warnings), summary["out_dir"]),
        highlight=False)
