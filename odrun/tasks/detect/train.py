"""`odrun train`: template (or your config) + converted data -> pipeline.config -> exactly N steps.

RUN_DIR gets pipeline.config (validated with the OD API's pipeline_pb2 before TensorFlow
starts), checkpoints every --checkpoint-every steps and at the end, TensorBoard events in
RUN_DIR/train, and train.json. A re-run (or --resume) continues from the newest checkpoint.
"""
import argparse
import glob
import json
import os
import time

from odcore.errors import UserError

DEFAULT_MODEL = "ssd_mobilenet_v2"
CONFIG_NAME = "pipeline.config"


def add_parser(sub):
    from odrun.tasks.detect.backends import add_api_flag
    p = sub.add_parser("train", help="train a detector for exactly N steps (resumable)",
                       description=__doc__)
    p.add_argument("--data", metavar="DATA_DIR",
                   help="output of `odrun convert`: train.record, test.record, label_map.pbtxt")
    p.add_argument("--workdir", metavar="RUN_DIR", required=True,
                   help="run directory: pipeline.config, checkpoints, TensorBoard events")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="NAME",
                     help="model template (default {}); see odrun/data/templates/<tf1|tf2>/".format(DEFAULT_MODEL))
    src.add_argument("--config", metavar="PIPELINE_CONFIG",
                     help="start from your own pipeline.config instead of a template")
    p.add_argument("--steps", type=int, help="total training steps (exact; default: the config's num_steps)")
    p.add_argument("--batch", type=int, help="train_config.batch_size")
    p.add_argument("--image-size", type=int, help="input size in pixels (fixed_shape_resizer height=width)")
    p.add_argument("--pretrained", metavar="CKPT_DIR|URL|ZOO_NAME",
                   help="fine-tune from a model-zoo checkpoint: a zoo name (odrun/data/zoo.yaml), a "
                        "tar.gz URL or a local directory; downloaded, sha256-verified and cached")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override any config field, e.g. --set train_config.optimizer.momentum_optimizer."
                        "momentum_optimizer_value=0.8 (repeatable)")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="write a checkpoint every N steps (and always at the end); default 100, "
                        "or the interrupted run's value on --resume")
    p.add_argument("--resume", action="store_true",
                   help="continue RUN_DIR's training with its own pipeline.config (no --data needed)")
    p.add_argument("--new-run", action="store_true",
                   help="RUN_DIR holds a training of another model/config/label map: move it aside to "
                        "RUN_DIR.old-<time> and start fresh (without this, such a RUN_DIR is refused)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    add_api_flag(p)
    from odrun.tasks.detect import tracker as train_eval
    train_eval.add_flags(p)  # --eval-every, --patience
    from odrun.tasks.detect.config import augment
    augment.add_flag(p)  # --augment flip,crop,...
    from odrun.tasks.detect import distribute
    distribute.add_flags(p)
    from odrun.tasks.classify import train as classify_train
    classify_train.add_flags(p)
    p.set_defaults(func=run)
    return p


def find_data(data_dir):
    """(train records, eval records, label map) in a convert output directory."""
    if not os.path.isdir(data_dir):
        raise UserError("data directory not found", where=data_dir,
                        fix="run `odrun convert SOURCE --out {}` first".format(data_dir))
    found = {}
    for split in ("train", "test"):
        plain = os.path.join(data_dir, split + ".record")
        shards = sorted(glob.glob(plain + "-?????-of-?????"))
        found[split] = [plain] if os.path.exists(plain) else shards
    label_map = os.path.join(data_dir, "label_map.pbtxt")
    missing = [n for n, v in (("train.record", found["train"]), ("test.record", found["test"]),
                              ("label_map.pbtxt", os.path.exists(label_map))) if not v]
    if missing:
        raise UserError("missing " + ", ".join(missing), where=data_dir,
                        fix="point --data at the output directory of `odrun convert`")
    return found["train"], found["test"], label_map


def newest_checkpoint(run_dir):
    """Prefix named in RUN_DIR/checkpoint (TF1 and TF2 write the same text file), or None;
    a damaged state file or a truncated .index is a UserError (see odrun.workdir.rundir)."""
    from odrun.workdir.rundir import RunDir
    return RunDir(run_dir).newest_checkpoint()


def build_config(args, api):
    from odrun.tasks.detect.config import pipeline as pc
    run_dir = args.workdir
    config_path = os.path.join(run_dir, CONFIG_NAME)
    if args.resume:
        config = pc.load(config_path)
        config = pc.fill(config, num_steps=args.steps, overrides=args.overrides)
        return _augment(config, args), None
    model = args.config
    if args.config:
        config = pc.load(args.config)
    else:
        from odrun.tasks.detect.masks.config import default_model  # --task segment: a Mask R-CNN template
        model = args.model or default_model(getattr(args, "task", None), api) or DEFAULT_MODEL
        config = pc.load(pc.template_path(api, model))
    items = None
    train_rec = test_rec = label_map = None
    if args.data:
        train_rec, test_rec, label_map = find_data(args.data)
        items = pc.read_label_map(label_map)
        from odrun.tasks.detect.masks.config import check_data  # masks in the records vs the model
        check_data(config, args.data, model)
    elif not args.config:
        raise UserError("no training data", where="--data",
                        fix="pass --data DATA_DIR (the output of `odrun convert`), or --config with paths set")
    ckpt = ckpt_type = None
    if args.pretrained:
        from odrun.tasks.detect import pretrained
        ckpt, ckpt_type = pretrained.resolve(args.pretrained, api=api)
    pc.fill(config, num_classes=max(i for i, _ in items) if items else None,
            train_record=[os.path.abspath(p) for p in train_rec] if train_rec else None,
            eval_record=[os.path.abspath(p) for p in test_rec] if test_rec else None,
            label_map=os.path.abspath(label_map) if label_map else None,
            batch_size=args.batch, image_size=args.image_size, num_steps=args.steps,
            fine_tune_checkpoint=ckpt, fine_tune_checkpoint_type=ckpt_type, overrides=args.overrides)
    return _augment(config, args), items


def _augment(config, args):
    from odrun.tasks.detect.config import augment
    return augment.apply(config, getattr(args, "augment", None))


def options():
    """The `odrun train` flags, argparse dest -> default: what a library caller may pass (read
    from the parser itself, so a new flag needs no second list)."""
    parser = argparse.ArgumentParser(prog="odrun")
    p = add_parser(parser.add_subparsers())
    return {a.dest: a.default for a in p._actions if a.dest != "help"}


def train(workdir, progress=True, **kwargs):
    """Library entry point (what `odrun demo` calls): train into WORKDIR; keyword arguments are
    the CLI flags' dests (see `options()`); returns the summary written to WORKDIR/train.json."""
    defaults = options()
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise TypeError("train() got unknown options: " + ", ".join(unknown))
    args = argparse.Namespace(**dict(defaults, **kwargs))
    args.workdir = workdir
    args.overrides = list(args.overrides or ())
    return _train(args, show=progress)


def run(args):
    if getattr(args, "task", "detect") == "classify":
        from odrun.tasks.classify import train as classify_train
        return classify_train.run(args)
    from odrun.ui.progress import enabled

    summary = _train(args, show=enabled(args))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print("trained steps {start_step}->{end_step} in {seconds}s; newest checkpoint: {ck}".format(
            ck=(summary["checkpoints"] or ["-"])[-1], **summary))
    return 0


def _train(args, show):
    from odrun.tasks.detect import backends
    from odrun.tasks.detect.config import pipeline as pc
    from odcore.fileio import write_json
    from odrun.ui.progress import StepProgress

    if args.steps is not None and args.steps < 1:
        raise UserError("--steps must be >= 1", where="--steps", fix="e.g. --steps 200")
    from odrun.tasks.detect import checks
    from odrun.workdir import rundir
    rundir.guard_workdir(args)  # before anything reads --data or writes
    checks.train_flags(args)
    settings_path = os.path.join(args.workdir, "run.json")
    if args.checkpoint_every is None:  # a resumed run keeps its checkpoint interval
        args.checkpoint_every = rundir.RunDir(args.workdir).read_json().get("checkpoint_every", 100)
    if args.checkpoint_every < 1:
        raise UserError("--checkpoint-every must be >= 1", where="--checkpoint-every", fix="e.g. 100")
    api = backends.resolve(args.api)
    from odrun.tasks.detect import tracker as train_eval
    train_eval.check_flags(args, api)
    if getattr(args, "augment", None) is not None:
        from odrun.tasks.detect.config import augment
        augment.steps(args.augment)  # a bad name is refused before anything is read or written
    if getattr(args, "eval_every", None):
        args.checkpoint_every = args.eval_every  # each evaluation reads the checkpoint just written
    run_dir = args.workdir
    config_path = os.path.join(run_dir, CONFIG_NAME)
    if args.resume and not os.path.exists(config_path):
        raise UserError("nothing to resume: no {} in the run directory".format(CONFIG_NAME), where=run_dir,
                        fix="start a run: odrun train --data DATA_DIR --workdir " + run_dir)
    config, items = build_config(args, api)
    pc.validate(config, label_map_items=items, where=config_path)
    checks.config_values(config, where=config_path if args.resume else (args.config or "--set/--batch"))
    checks.records([f for pattern in config.train_input_reader.tf_record_input_reader.input_path
                    for f in sorted(glob.glob(pattern))], where="train_input_reader.tf_record_input_reader")
    steps = config.train_config.num_steps
    if steps < 1:
        raise UserError("train_config.num_steps is 0 (unbounded)", where=config_path, fix="pass --steps N")
    from odrun.tasks.detect import distribute
    dist = distribute.plan(args.gpus, args.cross_device_ops, api=api)
    previous, settings = rundir.prepare_train(args, api, config)  # refuses another run's RUN_DIR
    if dist.is_chief:  # other workers of a multi-worker run write nothing into RUN_DIR
        os.makedirs(run_dir, exist_ok=True)
        pc.save(config, config_path)
        settings.update({"api": api, "checkpoint_every": args.checkpoint_every, "num_steps": steps})
        write_json(settings_path, settings)
    else:
        config_path = distribute.worker_config(dist, config, pc.save)

    backend = backends.get(api)
    if previous and show:
        print("resuming from " + previous)
    started = time.time()
    timings = []
    last = {}

    def on_step(step, losses):
        timings.append((step, time.time()))
        last.clear()
        last.update(losses)
        bar.update(step, losses)
        if dist.is_chief:
            tracker.on_step(step, losses)

    tracker = train_eval.Tracker(run_dir, config_path, dict(pc.read_label_map(config.train_input_reader.label_map_path)),
                                 eval_every=getattr(args, "eval_every", None), patience=getattr(args, "patience", None),
                                 show=show)
    hooks = {"on_checkpoint": tracker.on_checkpoint} if api == "tf2" and dist.is_chief else {}
    start_guess = rundir.step_of(previous) or 0
    with StepProgress(steps, start=start_guess, enabled=show) as bar:
        result = backend.train(config_path, run_dir, steps, checkpoint_every=args.checkpoint_every,
                               on_step=on_step, **dict(hooks, **distribute.backend_kwargs(dist)))
    rate = p50 = None
    if len(timings) > 1:  # steady state: excludes the first step (graph tracing)
        rate = (timings[-1][0] - timings[0][0]) / max(timings[-1][1] - timings[0][1], 1e-9)
        gaps = sorted(b[1] - a[1] for a, b in zip(timings, timings[1:]))
        p50 = 1.0 / max(gaps[len(gaps) // 2], 1e-9)
    summary = {
        "api": api, "arch": pc.arch(config), "run_dir": os.path.abspath(run_dir),
        "config": os.path.abspath(config_path), "start_step": result["start_step"],
        "end_step": result["end_step"], "num_steps": steps, "seconds": round(time.time() - started, 2),
        "steps_per_sec": round(rate, 4) if rate else None,
        "steps_per_sec_p50": round(p50, 4) if p50 else None, "losses": last,
        "checkpoints": [os.path.abspath(c) for c in result["checkpoints"]],
        "distribution": distribute.summary(dist, config.train_config.batch_size, result.get("replicas", 1)),
    }
    if dist.is_chief:
        summary["results"] = tracker.finish()  # results.csv/png, best/, PR curve, confusion matrix
        write_json(os.path.join(run_dir, "train.json"), summary)
    return summary

