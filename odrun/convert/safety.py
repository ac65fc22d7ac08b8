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


def check_output(o):
    """Refuse an --out that is/contains/lies inside an input, is a file or is read-only, or holds
    anything but an earlier convert output (the set replaces --out as one)."""
    inputs = [("annotation source", o.source), ("--train folder", o.train_dir), ("--test folder", o.test_dir),
              ("--images folder", o.image_dir), ("--label-map file", o.label_map)]
    src = o.source
    if src and os.path.isfile(src):  # a CSV/JSON: its images live beside it
        inputs.append(("folder of the annotation file (its images)", os.path.dirname(os.path.abspath(src))))
    paths.check_output_dir(o.out_dir, inputs, flag="--out", kind="convert", replaces=True)


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
