"""`odrun export`: a checkpoint of RUN_DIR (--checkpoint newest|best|STEP) -> EXPORT_DIR.

TF2: saved_model/ whose serving signature takes a batch of float images (any size);
TF1: frozen_inference_graph.pb plus saved_model/. Alongside: label_map.pbtxt,
pipeline.config and metadata.json (classes, TF version, input signature, training step).
"""
import json
import os
import shutil


def add_parser(sub):
    from odrun.tasks.detect.backends import add_api_flag
    p = sub.add_parser("export", help="export a checkpoint (default: the newest) for inference", description=__doc__)
    p.add_argument("--workdir", metavar="RUN_DIR", required=True, help="the run directory of `odrun train`")
    p.add_argument("--out", metavar="EXPORT_DIR", required=True, help="where to write the exported model")
    p.add_argument("--json", action="store_true", help="print metadata.json")
    p.add_argument("--format", action="append", metavar="FORMATS",
                   help="saved_model, frozen, onnx, tflite; comma-separated or repeated; each one checked "
                        "against the SavedModel before it is kept (default saved_model)")
    p.add_argument("--quantize", choices=("dynamic",), default=None,
                   help="tflite: dynamic-range quantised weights (default: float)")
    from odrun.tasks.detect.evaluate import add_checkpoint_flag
    add_checkpoint_flag(p)
    add_api_flag(p)
    p.set_defaults(func=run)
    return p


def export(run_dir, out_dir, api=None, formats=None, quantize=None, checkpoint=None):
    """checkpoint: newest (default), best or a step number (odrun.workdir.rundir.resolve_checkpoint).
    Every argument is checked before TensorFlow is imported."""
    from odrun.tasks.detect import backends, export_formats
    from odrun.tasks.detect.config import pipeline as pc
    from odrun.tasks.detect.evaluate import run_api, run_dir_config
    from odcore.fileio import write_json
    from odrun.workdir.rundir import checkpoint_dir, resolve_checkpoint
    from odcore.paths import check_output, check_writable_dir
    formats = export_formats.parse(formats)
    check_output(out_dir, [("run directory (--workdir)", run_dir)])  # never export over/into a run
    check_writable_dir(out_dir)
    config_path = run_dir_config(run_dir)
    prefix = resolve_checkpoint(run_dir, checkpoint)
    config = pc.load(config_path)
    label_map = config.train_input_reader.label_map_path
    classes = pc.read_label_map(label_map)
    api_name = backends.resolve(run_api(run_dir, api))
    export_formats.check_supported(formats, config, api_name, quantize)  # refused before anything is built
    backend = backends.get(api_name)
    # Export into a temp sibling and swap in at the end: no half-written EXPORT_DIR.
    out_dir = os.path.abspath(out_dir)
    tmp = out_dir + ".partial"
    _recover(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    from odrun.ui.progress import status
    with status("writing the export of {} (building the model, tracing, saving the SavedModel)".format(
            os.path.basename(prefix))):
        info = backend.export(config_path, run_dir, tmp, checkpoint=prefix)
    shutil.copyfile(label_map, os.path.join(tmp, "label_map.pbtxt"))
    try:
        with checkpoint_dir(prefix) as ckpt_dir:  # tflite's exporter reads a directory's checkpoint
            forms = export_formats.write(formats, config_path, ckpt_dir, tmp, quantize=quantize, say=_say)
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
    from odrun.ui.quiet import terminal  # the terminal, not the library log
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


def run(args):
    from odrun.tasks import task_of
    from odrun.tasks.detect.evaluate import classify_newest_only
    if task_of(args.workdir, "run.json") == "classify":
        from odrun.tasks.classify import export as classify_export
        classify_newest_only(args)
        return classify_export.run(args)
    metadata = export(args.workdir, args.out, api=args.api, formats=args.format, quantize=args.quantize,
                      checkpoint=getattr(args, "checkpoint", None))
    if args.json:
        print(json.dumps(metadata, indent=2))
    else:
        print("exported step {} ({}, {}) to {}".format(metadata["step"], metadata["arch"],
                                                       metadata["api"], os.path.abspath(args.out)))
    return 0
