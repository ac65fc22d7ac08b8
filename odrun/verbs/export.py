"""`odrun export`: a checkpoint of RUN_DIR (--checkpoint newest|best|STEP) -> EXPORT_DIR.

TF2: saved_model/ whose serving signature takes a batch of float images (any size);
TF1: frozen_inference_graph.pb plus saved_model/. Alongside: label_map.pbtxt,
pipeline.config and metadata.json (classes, TF version, input signature, training step).
"""

from odrun import verbs
from odrun.tasks.detect.backends import add_api_flag
from odrun.workdir.rundir import add_checkpoint_flags


def add_parser(sub):
    p = sub.add_parser("export", help="export a checkpoint (default: the newest) for inference", description=__doc__)
    add_checkpoint_flags(p)  # --workdir, --checkpoint
    p.add_argument("--out", metavar="EXPORT_DIR", required=True, help="where to write the exported model")
    p.add_argument("--json", action="store_true", help="print metadata.json")
    p.add_argument("--format", action="append", metavar="FORMATS",
                   help="saved_model, frozen, onnx, tflite; comma-separated or repeated; each one checked "
                        "against the SavedModel before it is kept (default saved_model)")
    p.add_argument("--quantize", choices=("dynamic",), default=None,
                   help="tflite: dynamic-range quantised weights (default: float)")
    add_api_flag(p)
    return verbs.finish(p, "export", run)


def run(args):
    return verbs.run_on_run_dir("export", args)
