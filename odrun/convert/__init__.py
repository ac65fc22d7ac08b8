"""`odrun convert`: annotations (Pascal VOC from labelImg/CVAT, COCO JSON, xml_to_csv.py's CSV) to
the OD API's TFRecords + label_map.pbtxt + train/test CSVs + summary.json.

Replaces the tutorial scripts xml_to_csv.py + generate_tfrecord.py (hard-coded class names, JPEG only,
silent None labels, one slow process). Heavy imports stay inside functions.
"""
import json
import os
import sys

from odrun.convert import problems as P
from odrun.ui.quiet import terminal  # the terminal, also while library noise goes to the log


def convert(source, out_dir, **options):
    """Library entry point (what `odrun demo` calls): see odrun.convert.pipeline.ConvertOptions for
    the options (the CLI flags' dest names); returns the summary dict."""
    from odrun.convert import pipeline

    return pipeline.convert(source, out_dir, **options)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "convert", help="annotations (VOC/COCO/CSV) -> train/test TFRecords + label map",
        description="Convert Pascal VOC XML (labelImg, CVAT), COCO instances JSON or the CSV of xml_to_csv.py "
                    "(filename,width,height,class,xmin,ymin,xmax,ymax) into the TF Object Detection "
                    "API's train/test TFRecords, label_map.pbtxt, train_labels.csv/test_labels.csv "
                    "and summary.json. Nothing is written unless the whole input is valid.")
    p.add_argument("source", nargs="?", help="VOC folder (*.xml), COCO .json or .csv")
    p.add_argument("--out", required=True, metavar="DATA_DIR", help="output folder")
    p.add_argument("--format", dest="fmt", choices=["voc", "coco", "csv", "labelme", "yolo", "labelstudio"],
                   help="input format (default: from SOURCE: folder=voc, .json=coco, .csv=csv; labelme JSON "
                        "files or a folder of them=labelme; images/+labels/ or data.yaml=yolo; a Label Studio JSON export=labelstudio)")
    p.add_argument("--split", type=float, default=None,
                   help="train fraction (default 0.8; if SOURCE has train/ and test/ folders, the "
                        "layout xml_to_csv.py reads, those are used unless --split is given)")
    p.add_argument("--train", dest="train_dir", metavar="DIR", help="use this folder as the train split")
    p.add_argument("--test", dest="test_dir", metavar="DIR", help="use this folder as the test split")
    p.add_argument("--label-map", metavar="FILE", help="use these class ids; a class not in it is an error")
    p.add_argument("--images", dest="image_dir", metavar="DIR",
                   help="image folder (default: beside each XML / the JSON / the CSV, or a sibling "
                        "images/ or JPEGImages/ folder)")
    p.add_argument("--shards", type=int, default=1, help="files per split, train.record-00000-of-0000N (default %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="split seed: same seed, same split (default %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--strict", action="store_true", help="treat every warning as an error")
    p.add_argument("--allow-outside-images", action="store_true",
                   help="accept image paths that lead outside the dataset folders ('../', absolute paths, "
                        "symlinks); refused by default")
    p.add_argument("--skip-empty", action="store_true", help="drop images without objects")
    p.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p.add_argument("--check", action="store_true",
                   help="validate everything and write DATA_DIR/report.png, but no records (the conversion "
                        "runs into a temporary folder that is removed)")
    p.add_argument("--max-size", type=int, default=None, metavar="PX",
                   help="resize images whose longer side exceeds PX (aspect ratio kept, boxes rescaled, EXIF "
                        "orientation applied to pixels and boxes), as the tutorials do with ImageMagick before "
                        "labelling (default: keep the images as they are)")
    p.add_argument("--input-size", type=int, default=None, metavar="PX",
                   help="model input size for the report's size warnings: images smaller than it, boxes "
                        "too small at it (default 300, the default template's)")
    from odrun.tasks.detect.masks import add_mask_flags
    add_mask_flags(p)
    from odrun.tasks import add_task_flag
    add_task_flag(p, "; classify: SOURCE holds one sub-folder per class (defaults: --shards 5, --seed 0)")
    p.set_defaults(func=run)


def seed_folders(source):
    """The tutorial 000 layout: SOURCE/train and SOURCE/test, each with its images + XML."""
    if not source or not os.path.isdir(source):
        return None
    dirs = [os.path.join(source, d) for d in ("train", "test")]
    if all(os.path.isdir(d) and any(f.lower().endswith(".xml") for f in os.listdir(d)) for d in dirs):
        return dirs
    return None


def run(args):
    if getattr(args, "task", "detect") == "classify":
        from odrun.tasks.classify import convert as classify_convert
        return classify_convert.run(args)
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
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    else:
        print_summary(summary)
        for w in summary["report"]["warnings"]:
            terminal().write("warning: {}\n".format(w))
        print("report: " + summary["report"]["path"])
    return 0


def _convert_and_report(args, out_dir):
    from odrun.convert import report
    drawn = _Report(args.input_size or report.DEFAULT_INPUT_SIZE)
    summary = convert(args.source, out_dir, fmt=args.fmt, split=0.8 if args.split is None else args.split,
                      seed=args.seed,
                      label_map=args.label_map, shards=args.shards, strict=args.strict,
                      skip_empty=args.skip_empty, train_dir=args.train_dir, test_dir=args.test_dir,
                      progress=not args.json and terminal().isatty(), workers=args.workers,
                      image_dir=args.image_dir, allow_outside_images=args.allow_outside_images,
                      masks=True if getattr(args, "task", None) == "segment" else args.masks,
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
        from odrun.convert import report
        _path, self.warnings = report.write(stage, summary, out_path=os.path.join(stage, report.REPORT),
                                            input_size=self.input_size, shown_dir=summary["out_dir"])


def print_summary(summary, limit=20):
    from rich.console import Console
    from rich.table import Table

    err = Console(file=terminal())  # the terminal, not the library log
    warnings = summary["warnings"]
    for p in warnings[:limit]:
        err.print("[yellow]warning[/yellow]: " + P.render(p), markup=True, highlight=False)
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
