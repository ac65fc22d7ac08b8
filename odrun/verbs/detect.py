"""`odrun detect`: run an exported model over images (files, folders, globs).

Loads the model once, runs in batches, writes OUT_DIR/<name>.png with boxes, class names
and scores (DejaVu Sans if installed, else Pillow's built-in font: no arial.ttf needed),
detections.json (COCO results format: image_id, category_id, bbox [x, y, w, h] in pixels,
score; image ids are listed in images.json) and detections.csv (one row per box).
"""

from odrun import tasks, verbs
from odrun.tasks.detect.backends import add_api_flag
from odrun.tasks.detect.masks import output as seg_output


def add_parser(sub):
    p = sub.add_parser("detect", help="detect objects in images with an exported model", description=__doc__)
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="image file, folder or glob (quote globs)")
    p.add_argument("--model", metavar="EXPORT_DIR", required=True, help="output of `odrun export`")
    p.add_argument("--out", metavar="OUT_DIR", required=True, help="annotated images + detections.json/csv")
    p.add_argument("--threshold", type=float, help="minimum score to keep a box")
    p.add_argument("--agnostic-nms", type=float, metavar="IOU", default=None,
                   help="keep only the best box of any class among boxes overlapping more than IOU, in the "
                        "annotated images and in detections.json/csv (default: off, per-class NMS of the model only)")
    p.add_argument("--runner-up", action="store_true",
                   help="when several classes share one box, show the second-best class in brackets on its label")
    p.add_argument("--batch", type=int, help="images per model call")
    p.add_argument("--no-images", action="store_true", help="skip writing annotated images")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    p.add_argument("--strict", action="store_true",
                   help="an unreadable image is an error (exit 2, checked before the model loads); "
                        "default: it is skipped with a warning naming it")
    p.add_argument("--runtime", choices=("auto", "onnx", "tflite", "frozen", "saved_model"), default="auto",
                   help="inference runtime (default auto: the export's first verified form of onnx, tflite, "
                        "frozen, saved_model; onnx/tflite never import TensorFlow)")
    seg_output.add_flags(p)
    add_api_flag(p)
    return verbs.finish(p, "detect", run)


def run(args):
    # the export says what it is: a classifier export gives the top 5 classes per image
    return tasks.run_verb("detect", args, task=tasks.task_of_export(args.model))
