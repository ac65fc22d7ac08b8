"""`odrun inspect DATA`: check TFRecords from any tool against their label map.

    odrun inspect data/                  # records + label_map.pbtxt
    odrun inspect train.record --label-map label_map.pbtxt
    odrun inspect data/ --image-size 640 --json   # sizes vs a 640 px input

Every image is decoded with the OD API's own decoder; every box (normalised, ordered, inside the
image, with an area) and class (id 0, ids and texts against the label map) is checked; empty and
duplicate images, classes missing from test. Each finding names the record file and the example
index (0-based). Writes report.png (as `odrun convert` does). Exit 0: clean; 1: errors found
(warnings too with --strict); 2: bad input.
"""
import argparse
import json
import sys

from odrun.convert import inspect as odinspect
from odrun.convert.inspect import checks

SHOWN_PER_CHECK = 10


def add_parser(sub):
    p = sub.add_parser("inspect", help="check TFRecords (any tool's) against their label map",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", metavar="DATA",
                   help="a folder of records (with label_map.pbtxt) or record files")
    p.add_argument("--label-map", metavar="FILE",
                   help="label_map.pbtxt (default: the one beside the records)")
    p.add_argument("--image-size", type=int, metavar="PX",
                   help="the model's input size for the size warnings (default 300, the default template's)")
    p.add_argument("--report", metavar="PNG", help="where to write the report (default: DATA/report.png)")
    p.add_argument("--no-decode", action="store_true",
                   help="skip decoding the images with TensorFlow (headers and sha256 are still checked)")
    p.add_argument("--strict", action="store_true", help="treat every warning as an error (exit 1)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def run(args):
    from odrun.tasks.detect import checks as train_checks
    if args.image_size is not None:
        train_checks.train_flags(args)
    result = odinspect.inspect(args.data, label_map=args.label_map, image_size=args.image_size,
                               report_path=args.report, decode_images=not args.no_decode, strict=args.strict)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    else:
        show(result)
    return 0 if result["ok"] else 1


def show(result):
    by_check = {}
    for f in result["findings"]:
        by_check.setdefault((f["level"], f["check"]), []).append(f)
    for (level, check), found in sorted(by_check.items(), key=lambda kv: (kv[0][0] != "error", kv[0][1])):
        for f in found[:SHOWN_PER_CHECK]:
            sys.stderr.write("{}: {}\n".format(level, checks.render(f)))
        if len(found) > SHOWN_PER_CHECK:
            sys.stderr.write("{}: ... {} more {} findings (--json lists them all)\n".format(
                level, len(found) - SHOWN_PER_CHECK, check))
    print("{:>4}  {:<24} {:>11} {:>10}".format("id", "class", "train boxes", "test boxes"))
    for row in result["classes"]:
        print("{:>4}  {:<24} {:>11} {:>10}".format("-" if row["id"] is None else row["id"], row["name"][:24],
                                                   row["train_boxes"] + row["other_boxes"], row["test_boxes"]))
    print("{} examples, {} boxes in {} file{}: {} errors, {} warnings ({:.1f} s)".format(
        result["examples"], result["boxes"], len(result["files"]), "s" if len(result["files"]) > 1 else "",
        result["errors"], result["warnings"], result["seconds"]))
    print("report: " + result["report"])
    print("OK" if result["ok"] else "NOT OK: fix the errors above")
