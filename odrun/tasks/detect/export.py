"""`odrun export`: RUN_DIR's newest checkpoint -> EXPORT_DIR.

TF2: saved_model/ whose serving signature takes a batch of float images (any size);
TF1: frozen_inference_graph.pb plus saved_model/. Alongside: label_map.pbtxt,
pipeline.config and metadata.json (classes, TF version, input signature, training step).
"""
import os
import shutil

from odcore.errors import UserError
from odcore.fileio import write_json
from odcore.paths import check_output, check_writable_dir
from odrun.tasks.detect import backends, export_formats
from odrun.tasks.detect.config import pipeline as pc
from odrun.tasks.detect.evaluate import run_dir_config
from odrun.ui.progress import status
from odrun.ui.quiet import terminal  # the terminal, not the library log
from odrun.workdir.rundir import newest_checkpoint


def export(run_dir, out_dir, api=None, formats=None, quantize=None):
    check_output(out_dir, [("run directory (--workdir)", run_dir)])  # never export over/into a run
    check_writable_dir(out_dir)
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
    # Export into a temp sibling and swap in at the end: no half-written EXPORT_DIR.
    out_dir = os.path.abspath(out_dir)
    tmp = out_dir + ".partial"
    _recover(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    with status("writing the export (building the model, tracing, saving the SavedModel)"):
        info = backend.export(config_path, run_dir, tmp)
    shutil.copyfile(label_map, os.path.join(tmp, "label_map.pbtxt"))
    try:
        forms = export_formats.write(formats, config_path, run_dir, tmp, quantize=quantize, say=_say)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # parity failed / interrupted: the previous export stays
        raise
    metadata = {
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
        "files": sorted(os.listdir(tmp)),
    }
    write_json(os.path.join(tmp, "metadata.json"), metadata)
    if os.path.exists(out_dir):
        old = out_dir + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)
    return metadata


def _say(text):
    terminal().write(text + "\n")


def _recover(out_dir):
    """Undo what a kill -9 left: a swap stopped between its two renames leaves the previous
    good export in OUT.old and no OUT (put it back); temp folders of ours are removed."""
    import glob
    old = out_dir + ".old"
    if os.path.isdir(old) and not os.path.exists(out_dir):
        os.replace(old, out_dir)
    parent, base = os.path.dirname(out_dir), os.path.basename(out_dir)
    for stale in glob.glob(os.path.join(parent, "." + glob.escape(base) + ".partial.*")):
        shutil.rmtree(stale, ignore_errors=True)  # the tf1 backend's mkdtemp inside OUT.partial's parent


def from_args(args):
    """`odrun export` (flags: odrun.verbs.export) -> the export's metadata.json."""
    return export(args.workdir, args.out, api=args.api, formats=args.format, quantize=args.quantize)


def show(metadata, args):
    print("exported step {} ({}, {}) to {}".format(metadata["step"], metadata["arch"],
                                                   metadata["api"], os.path.abspath(args.out)))
