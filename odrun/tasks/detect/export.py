"""`odrun export`: a checkpoint of RUN_DIR (--checkpoint newest|best|STEP) -> EXPORT_DIR.

TF2: saved_model/ whose serving signature takes a batch of float images (any size);
TF1: frozen_inference_graph.pb plus saved_model/. Alongside: label_map.pbtxt,
pipeline.config and metadata.json (classes, TF version, input signature, training step).
"""
import os
import shutil

from odcore.fileio import staged_dir, write_json
from odcore.paths import check_output_dir
from odrun.tasks.detect import backends, export_formats
from odrun.tasks.detect.config import pipeline as pc
from odrun.tasks.detect.evaluate import run_api, run_dir_config
from odrun.ui.progress import status
from odrun.ui.quiet import terminal  # the terminal, not the library log
from odrun.workdir.rundir import checkpoint_dir, resolve_checkpoint


def export(run_dir, out_dir, api=None, formats=None, quantize=None, checkpoint=None):
    """checkpoint: newest (default), best or a step number (odrun.workdir.rundir.resolve_checkpoint).
    Every argument is checked before TensorFlow is imported."""
    formats = export_formats.parse(formats)
    # never over/into the run; a non-empty --out only if it is an earlier export (nothing else in it)
    check_output_dir(out_dir, [("run directory (--workdir)", run_dir)], kind="export", replaces=True)
    config_path = run_dir_config(run_dir)
    prefix = resolve_checkpoint(run_dir, checkpoint)
    config = pc.load(config_path)
    label_map = config.train_input_reader.label_map_path
    classes = pc.read_label_map(label_map)
    api_name = backends.resolve(run_api(run_dir, api))
    export_formats.check_supported(formats, config, api_name, quantize)  # refused before anything is built
    backend = backends.get(api_name)
    # Export into a hidden staged sibling that replaces EXPORT_DIR as one at the end (removed on
    # any error or Ctrl-C): no half-written EXPORT_DIR, no EXPORT.partial left behind.
    out_dir = os.path.abspath(out_dir)
    _recover(out_dir)
    with staged_dir(out_dir) as tmp:
        with status("writing the export of {} (building the model, tracing, saving the SavedModel)".format(
                os.path.basename(prefix))):
            info = backend.export(config_path, run_dir, tmp, checkpoint=prefix)
        shutil.copyfile(label_map, os.path.join(tmp, "label_map.pbtxt"))
        with checkpoint_dir(prefix) as ckpt_dir:  # tflite's exporter reads a directory's checkpoint
            forms = export_formats.write(formats, config_path, ckpt_dir, tmp, quantize=quantize, say=_say)
        metadata = _metadata(api_name, config, info, classes, forms, tmp)
        write_json(os.path.join(tmp, "metadata.json"), metadata)
    return metadata


def _metadata(api_name, config, info, classes, forms, folder):
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
    terminal().write(text + "\n")


def _recover(out_dir):
    """Undo what a kill -9 left (odcore.fileio.recover_dir does the staged/replaced siblings;
    OUT.old / OUT.partial are the user's names and never touched); the tf1 backend's temps go."""
    import glob
    parent, base = os.path.dirname(out_dir), os.path.basename(out_dir)
    for stale in glob.glob(os.path.join(parent, "." + glob.escape(base) + ".partial.*")):
        shutil.rmtree(stale, ignore_errors=True)  # the tf1 backend's mkdtemp inside OUT.partial's parent


def from_args(args):
    """`odrun export` (flags: odrun.verbs.export) -> the export's metadata.json."""
    return export(args.workdir, args.out, api=args.api, formats=args.format, quantize=args.quantize,
                  checkpoint=getattr(args, "checkpoint", None))


def show(metadata, args):
    print("exported step {} ({}, {}) to {}".format(metadata["step"], metadata["arch"],
                                                   metadata["api"], os.path.abspath(args.out)))
