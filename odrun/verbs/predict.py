"""`odrun predict --model MODEL SOURCE... [--top-k 5]` (and `odrun detect` on a classifier
export): the top-k classes of every image, batched through the SavedModel's bytes signature.

Prints a table per image; writes OUT/predictions.json, OUT/predictions.csv (one row per image and
rank) and OUT/contact_sheet.png (every image with its top class and score; an image in a folder
named after a class is framed green when right, red with its true class when wrong). The
tutorial's test script instead runs one sess.run per image (bench/classify.py compares the two)."""

from odrun import tasks, verbs


def add_parser(sub):
    p = sub.add_parser("predict", help="classify images with an exported classifier (top-k per image)",
                       description=__doc__)
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="image file, folder or glob (quote globs)")
    p.add_argument("--model", metavar="MODEL_DIR", required=True, help="output of `odrun export` on a classifier")
    p.add_argument("--out", metavar="OUT_DIR", help="predictions.json/.csv + contact_sheet.png")
    p.add_argument("--top-k", type=int, help="classes per image")
    p.add_argument("--batch", type=int, help="images per model call")
    p.add_argument("--no-images", action="store_true", help="skip the contact sheet")
    p.add_argument("--json", action="store_true", help="print predictions.json instead of tables")
    return verbs.finish(p, "predict", run)


def run(args):
    return tasks.run_verb("predict", args, task="classify")  # the classify reader refuses a detector export
