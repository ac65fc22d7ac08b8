"""`odrun export`: RUN_DIR's newest checkpoint -> EXPORT_DIR.

TF2: saved_model/ whose serving signature takes a batch of float images (any size);
TF1: frozen_inference_graph.pb plus saved_model/. Alongside: label_map.pbtxt,
pipeline.config and metadata.json (classes, TF version, input signature, training step).
"""
import json
import os
import shutil

from odcore.errors import UserError


def add_parser(sub):
    from odrun.tasks.detect.backends import add_api_flag
    p = sub.add_parser("export", help="export the newest checkpoint for inference", description=__doc__)
    p.add_argument("--workdir", metavar="RUN_DIR", required=True, help="the run directory of `odrun train`")
    p.add_argument("--out", metavar="EXPORT_DIR", required=True, help="where to write the exported model")
    p.add_argument("--json", action="store_true", help="print metadata.json")
    p.add_argument("--format", action="append", metavar="FORMATS",
                   help="saved_model, frozen, onnx, tflite; comma-separated or repeated; each one checked "
                        "against the SavedModel before it is kept (default saved_model)")
    p.add_argument("--quantize", choices=("dynamic",), default=None,
                   help="tflite: dynamic-range quantised weights (default: float)")
    add_api_flag(p)
    p.set_defaults(func=run)
    return p


def export(run_dir, out_dir, api=None, formats=None, quantize=None):
    from odrun.tasks.detect import backends, export_formats
    from odrun.tasks.detect.config import pipeline as pc
    from odrun.tasks.detect.evaluate import run_dir_config
    from odcore.fileio import write_json
    from odrun.tasks.detect.train import newest_checkpoint
    from odcore.fileio import staged_dir
    from odcore.paths import check_output_dir
    # never over/into the run; a non-empty --out only if it is an earlier export (nothing else in it)
    check_output_dir(out_dir, [("run directory (--workdir)", run_dir)], kind="export", replaces=True)
    config_path = run_dir_config(run_dir)
    if not newest_checkpoint(run_dir):
        raise UserError("no checkpoint yet", where=run_dir, fix="train first: odrun train --workdir " + run_dir)
    config = pc.load(config_path)
    label_map = config.train_input_reader.label_map_path
    classes = pc.read_label_map(label_map)
    api_name = backends.resolve(api)
    backend = backends.get(api_name)
    formats = export_formats.parse(formats)
    export_formats.check_supported(formats, config, api_name, quantize)  # refused before anything is built
    # Export into a hidden staged sibling that replaces EXPORT_DIR as one at the end (removed on
    # any error or Ctrl-C): no half-written EXPORT_DIR, no EXPORT.partial left behind.
    out_dir = os.path.abspath(out_dir)
    _recover(out_dir)
    from odrun.ui.progress import status
    with staged_dir(out_dir) as tmp:
        with status("writing the export (building the model, tracing, saving the SavedModel)"):
            info = backend.export(config_path, run_dir, tmp)
        shutil.copyfile(label_map, os.path.join(tmp, "label_map.pbtxt"))
        forms = export_formats.write(formats, config_path, run_dir, tmp, quantize=quantize, say=_say)
        metadata = _metadata(api_name, config, info, classes, forms, tmp)
        write_json(os.path.join(tmp, "metadata.json"), metadata)
    return metadata


def _metadata(api_name, config, info, classes, forms, folder):
    from odrun.tasks.detect.config import pipeline as pc
    return {
        "api": api_name,
        "arch": pc.arch(config),
        "tf_version": info.get("tf_version"),
        "step": info.get("step"),
        "checkpoint": info.get("checkpoint"),
        "image_size": pc.image_size(config),
        "classes": [{"id": i, "name": n} for i, n in classes],
        "signature": info.get("signature"),
        "instance_masks": "detection_masks" in ((info.get("signature") or {}).get("outputs") or ()),
        "formats": forms,
        "files": sorted(os.listdir(folder)),
    }


def _say(text):
    from odrun.ui.quiet import terminal  # the terminal, not the library log
    terminal().write(text + "\n")


def _recover(out_dir):
    """Undo what a kill -9 left (odcore.fileio.recover_dir does the staged/replaced siblings;
    OUT.old / OUT.partial are the user's names and never touched); the tf1 backend's temps go."""
    import glob
    parent, base = os.path.dirname(out_dir), os.path.basename(out_dir)
    for stale in glob.glob(os.path.join(parent, "." + glob.escape(base) + ".partial.*")):
        shutil.rmtree(stale, ignore_errors=True)  # the tf1 backend's mkdtemp inside OUT.partial's parent


def run(args):
    from odrun.tasks import task_of
    if task_of(args.workdir, "run.json") == "classify":
        from odrun.tasks.classify import export as classify_export
        return classify_export.run(args)
    metadata = export(args.workdir, args.out, api=args.api, formats=args.format, quantize=args.quantize)
    if args.json:
        print(json.dumps(metadata, indent=2))
    else:
        print("exported step {} ({}, {}) to {}".format(metadata["step"], metadata["arch"],
                                                       metadata["api"], os.path.abspath(args.out)))
    return 0
