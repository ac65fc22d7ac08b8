"""`odrun convert`'s guards against hostile or broken input (issue 11):

- the output folder is not, does not contain and is not inside an input (odcore.paths);
- --out is a folder we can write (not a file, not read-only);
- temps of our own naming left by a kill -9 (`.train.record.*.tmp`, `.report.png.*.tmp`, `.parts-*/`)
  are removed;
- numbers in annotations are finite (NaN/inf refused with the file and the object);
- every image path, after resolving `..`, absolute paths and symlinks, lies inside the
  dataset's folders, unless --allow-outside-images is given;
- cells written to CSV that a spreadsheet would run as a formula are neutralised.
"""
import math
import os

from odcore import paths
from odrun.convert import problems as P

from odrun.convert.report import REPORT

OUTPUT_NAMES = ("train.record", "test.record", "label_map.pbtxt", "train_labels.csv", "test_labels.csv",
                "summary.json", REPORT, "parts-")
ALLOW_FLAG = "--allow-outside-images"


def inputs_of(source, train_dir, test_dir, image_dir, label_map):
    """[(label, path)] of everything convert reads (what the output guard compares --out with)."""
    inputs = [("annotation source", source), ("--train folder", train_dir), ("--test folder", test_dir),
              ("--images folder", image_dir), ("--label-map file", label_map)]
    if source and os.path.isfile(source):  # a CSV/JSON: its images live beside it
        inputs.append(("folder of the annotation file (its images)", os.path.dirname(os.path.abspath(source))))
    return inputs


def check_output(o):
    """Refuse an --out that is/contains/lies inside an input, is a file or is read-only, or holds
    anything but an earlier convert output (the set replaces --out as one)."""
    inputs = inputs_of(o.source, o.train_dir, o.test_dir, o.image_dir, o.label_map)
    paths.check_output_dir(o.out_dir, inputs, flag="--out", kind="convert", replaces=True)


def check_report_dir(args):
    """`convert --check`: only report.png goes into --out; the same guard, rules 1-2 (odcore.paths)."""
    inputs = inputs_of(args.source, args.train_dir, args.test_dir, args.image_dir, args.label_map)
    paths.check_output_dir(args.out, inputs, flag="--out", verb="odrun convert --check")
    target = os.path.join(os.path.abspath(args.out), REPORT)
    if os.path.islink(target) or (os.path.exists(target) and not os.path.isfile(target)):
        paths.check_output_file(target, inputs, flag="--out")  # names the symlink / folder


def clean_stale(out_dir):
    """Remove temps a killed run left in `out_dir` (only names our own writers use)."""
    return paths.clean_stale_temps(out_dir, names=OUTPUT_NAMES)


def finite(values):
    """True if every value is a finite number."""
    try:
        return all(math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError, OverflowError):
        return False


def not_finite_error(file, what, values, obj=None):
    return P.error(file, "{} must be finite numbers, got {} (NaN/inf cannot go into a record)".format(
        what, ", ".join(str(v) for v in values)), obj)


def image_roots(item, image_dir=None):
    """The folders an item's image may come from."""
    return [r for r in item.get("roots", []) + [image_dir] if r]


def check_images(items, found, allow_outside=False, image_dir=None):
    """Drop (with an error) items whose image resolves outside their dataset folders."""
    if allow_outside:
        return items
    kept = []
    for it in items:
        roots = image_roots(it, image_dir)
        if roots and not paths.inside(it["image"], roots):
            found.append(P.error(it["ann"], "image path {!r} leads outside the dataset folders ({}) after "
                                            "resolving '..', absolute paths and symlinks: refused".format(
                                                it.get("ref", it["filename"]),
                                                ", ".join(paths.real(r) for r in roots)) +
                                 " (move the image into the dataset, or pass {} if this is intended)".format(
                                     ALLOW_FLAG)))
            continue
        kept.append(it)
    return kept


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A text cell a spreadsheet would evaluate (=, +, -, @ first) gets a leading ' (OWASP's
    CSV-injection advice); numbers are left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_rows(rows):
    return [[csv_cell(v) for v in row] for row in rows]
