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
from odcore.fileio import write_json
from odrun.convert import inspect as odinspect
from odrun.tasks import TASKS
from odrun.tasks.detect import backends, checks, distribute, pretrained, tracker as train_eval
from odrun.tasks.detect.config import augment, checks as config_checks, pipeline as pc
from odrun.tasks.detect.masks.config import check_data, default_model  # --task segment: Mask R-CNN
from odrun.ui import interrupt, quiet
from odrun.ui.progress import StepProgress, enabled
from odrun.workdir import rundir

DEFAULT_MODEL = "ssd_mobilenet_v2"
CONFIG_NAME = "pipeline.config"


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


def build_config(args, api):
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
        model = args.model or default_model(getattr(args, "task", None), api) or DEFAULT_MODEL
        config = pc.load(pc.template_path(api, model))
    items = None
    train_rec = test_rec = label_map = None
    if args.data:
        train_rec, test_rec, label_map = find_data(args.data)
        items = pc.read_label_map(label_map)
        check_data(config, args.data, model)
    elif not args.config:
        raise UserError("no training data", where="--data",
                        fix="pass --data DATA_DIR (the output of `odrun convert`), or --config with paths set")
    ckpt = ckpt_type = None
    if args.pretrained:
        ckpt, ckpt_type = pretrained.resolve(args.pretrained, api=api)
    pc.fill(config, num_classes=max(i for i, _ in items) if items else None,
            train_record=[os.path.abspath(p) for p in train_rec] if train_rec else None,
            eval_record=[os.path.abspath(p) for p in test_rec] if test_rec else None,
            label_map=os.path.abspath(label_map) if label_map else None,
            batch_size=args.batch, image_size=args.image_size, num_steps=args.steps,
            fine_tune_checkpoint=ckpt, fine_tune_checkpoint_type=ckpt_type, overrides=args.overrides)
    return _augment(config, args), items


def identity_model(args):
    """The model a run's identity names (run.json): the template asked for (default
    DEFAULT_MODEL, also for --task segment, as run directories made so far record it) or
    "config:FILE" for --config."""
    return "config:" + os.path.basename(args.config) if args.config else (args.model or DEFAULT_MODEL)


def _augment(config, args):
    return augment.apply(config, getattr(args, "augment", None))


def before_training(config, where):
    """`odrun inspect`'s cheap checks (class ids/texts vs the label map, box ranges) on the train
    and eval records, TF-free: a defect that trains silently is exit 2 here."""
    label_map = config.train_input_reader.label_map_path
    readers = [config.train_input_reader] + list(config.eval_input_reader)
    files = [f for r in readers for pattern in r.tf_record_input_reader.input_path for f in sorted(glob.glob(pattern))]
    if label_map and os.path.isfile(label_map) and files:
        odinspect.before_training(list(dict.fromkeys(files)), label_map, where=where)


def options():
    """The `odrun train` options of the detect task, argparse dest -> default (None: the
    flag's "not given"): what a library caller may pass (odrun.tasks lists them)."""
    return {dest: ([] if dest == "overrides" else None) for dest in TASKS["detect"].stage("train").flags - {"func", "command"}}


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


def from_args(args):
    """`odrun train` (flags: odrun.verbs.train) -> the train.json summary."""
    return _train(args, show=enabled(args))


def show(summary, args):
    print("trained steps {start_step}->{end_step} in {seconds}s; newest checkpoint: {ck}".format(
        ck=(summary["checkpoints"] or ["-"])[-1], **summary))


def _check_not_past(run_dir, done, steps, show):
    """A run already at step `done` >= the steps asked: past them is refused (exit 2, nothing
    written: training cannot go back), exactly at them is a no-op that says how to go on."""
    if done is None or done < steps:
        return
    more = "odrun train --workdir {} --steps {} --resume".format(run_dir, max(2 * done, done + 1))
    if done > steps:
        raise UserError("the run is already at step {}, past the {} steps asked; training does not go back"
                        .format(done, steps), where="--steps",
                        fix="to train further pass a larger total: {} (or a new --workdir to train {} steps "
                            "from scratch)".format(more, steps))
    if show:
        quiet.terminal().write("the run is already at step {} of {}: nothing to train; to train further: {}\n"
                               .format(done, steps, more))


def _interrupted(exc, tracker, run_dir):
    """After a Ctrl-C checkpoint: its results.csv row, losses.csv closed, results.png, the message."""
    if tracker is not None:
        if exc.checkpoint and rundir.step_of(exc.checkpoint) == exc.step:
            tracker.on_interrupt(exc.step)
        tracker.finish()
    quiet.terminal().write(interrupt.message(exc, run_dir) + "\n")


def _already_there(args, show):
    """`--resume` of a run already at its steps: nothing to train, said at once (no TensorFlow);
    -> its train.json summary with no steps trained, or None (train as usual)."""
    if not args.resume:
        return None
    rd = rundir.RunDir(args.workdir)
    done = rundir.step_of(rd.newest_checkpoint())
    path = os.path.join(args.workdir, "train.json")
    if done is None or done != (args.steps or rd.read_json().get("num_steps")) or not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("end_step") != done:
        return None
    _check_not_past(args.workdir, done, done, show)  # says so and how to train further
    return dict(summary, start_step=done, seconds=0.0, steps_per_sec=None, steps_per_sec_p50=None)


def _before_tf(args):
    """1a. The flag checks that need no TensorFlow, first: bad arguments are refused in well under a second."""
    if args.steps is not None and args.steps < 1:
        raise UserError("--steps must be >= 1", where="--steps", fix="e.g. --steps 200")
    rundir.guard_workdir(args)  # the output guard, before anything reads --data or writes
    checks.train_flags(args)
    if getattr(args, "augment", None) is not None:
        augment.steps(args.augment)  # a bad name is refused before anything is read or written
    if args.resume and not os.path.exists(os.path.join(args.workdir, CONFIG_NAME)):
        raise UserError("nothing to resume: no {} in the run directory".format(CONFIG_NAME), where=args.workdir,
                        fix="start a run: odrun train --data DATA_DIR --workdir " + args.workdir)
    if args.data and not args.resume:
        find_data(args.data)  # a missing/incomplete data folder is refused before TensorFlow loads
    if args.steps and not getattr(args, "new_run", False):  # fewer steps than the run has: refused early too
        _check_not_past(args.workdir, rundir.step_of(rundir.RunDir(args.workdir).newest_checkpoint()), args.steps,
                        show=False)
    if args.checkpoint_every is None:  # a resumed run keeps its checkpoint interval
        args.checkpoint_every = rundir.RunDir(args.workdir).read_json().get("checkpoint_every", 100)
    if args.checkpoint_every < 1:
        raise UserError("--checkpoint-every must be >= 1", where="--checkpoint-every", fix="e.g. 100")


def _train(args, show):
    """The steps of `odrun train`: 1. flags, 2. config + checks, 3. RUN_DIR, 4. train, 5. summary."""
    _before_tf(args)
    done = _already_there(args, show)
    if done is not None:
        return done
    api = _check_flags(args)
    config, config_path = _checked_config(args, api)
    steps = config.train_config.num_steps
    dist = distribute.plan(args.gpus, args.cross_device_ops, api=api)
    previous, settings = rundir.prepare_train(args, api, config, identity_model(args))  # refuses another run's RUN_DIR
    _check_not_past(args.workdir, rundir.step_of(previous), steps, show)
    if dist.is_chief:  # other workers of a multi-worker run write nothing into RUN_DIR
        os.makedirs(args.workdir, exist_ok=True)
        pc.save(config, config_path)
        settings.update({"api": api, "checkpoint_every": args.checkpoint_every, "num_steps": steps})
        write_json(os.path.join(args.workdir, "run.json"), settings)
    else:
        config_path = distribute.worker_config(dist, config, pc.save)
    if previous and show:
        print("resuming from " + previous)
    started = time.time()
    result, timings, last, tracker = _run_backend(args, api, config, config_path, dist, previous, show)
    rate, p50 = _rates(timings)
    summary = {
        "api": api, "arch": pc.arch(config), "run_dir": os.path.abspath(args.workdir),
        "config": os.path.abspath(config_path), "start_step": result["start_step"],
        "end_step": result["end_step"], "num_steps": steps, "seconds": round(time.time() - started, 2),
        "steps_per_sec": round(rate, 4) if rate else None,
        "steps_per_sec_p50": round(p50, 4) if p50 else None, "losses": last,
        "checkpoints": [os.path.abspath(c) for c in result["checkpoints"]],
        "distribution": distribute.summary(dist, config.train_config.batch_size, result.get("replicas", 1)),
    }
    if dist.is_chief:
        summary["results"] = tracker.finish()  # results.csv/png, best/, PR curve, confusion matrix
        write_json(os.path.join(args.workdir, "train.json"), summary)
    return summary


def _check_flags(args):
    """1b. Flags TensorFlow would reject only after building the graph (after _before_tf); -> the api."""
    api = backends.resolve(args.api)
    train_eval.check_flags(args, api)
    if getattr(args, "eval_every", None):
        args.checkpoint_every = args.eval_every  # each evaluation reads the checkpoint just written
    return api


def _checked_config(args, api):
    """2. The pipeline config to train, validated with its records; -> (config, RUN_DIR/pipeline.config)."""
    run_dir = args.workdir
    config_path = os.path.join(run_dir, CONFIG_NAME)
    config, items = build_config(args, api)
    config_checks.validate(config, label_map_items=items, where=config_path)
    checks.config_values(config, where=config_path if args.resume else (args.config or "--set/--batch"))
    checks.records([f for pattern in config.train_input_reader.tf_record_input_reader.input_path
                    for f in sorted(glob.glob(pattern))], where="train_input_reader.tf_record_input_reader")
    before_training(config, where=config_path if args.resume else (args.data or args.config))
    if config.train_config.num_steps < 1:
        raise UserError("train_config.num_steps is 0 (unbounded)", where=config_path, fix="pass --steps N")
    return config, config_path


def _run_backend(args, api, config, config_path, dist, previous, show):
    """4. The backend's training loop with the progress bar and the evaluation tracker;
    -> (backend result, [(step, time)], the last losses, the tracker)."""
    run_dir, steps = args.workdir, config.train_config.num_steps
    timings = []
    last = {}

    def on_step(step, losses):
        timings.append((step, time.time()))
        last.clear()
        last.update(losses)
        bar.update(step, losses)
        if dist.is_chief:
            tracker.on_step(step, losses)

    start_guess = rundir.step_of(previous) or 0  # the checkpoint the backend restores
    tracker = train_eval.Tracker(run_dir, config_path, dict(pc.read_label_map(config.train_input_reader.label_map_path)),
                                 eval_every=getattr(args, "eval_every", None), patience=getattr(args, "patience", None),
                                 show=show, start_step=start_guess if dist.is_chief else None)

    def on_checkpoint(step, prefix, model):
        if not tracker.eval_every:
            return tracker.on_checkpoint(step, prefix, model)
        with bar.busy("evaluating step {}".format(step)):  # tens of seconds: say so, not a frozen bar
            return tracker.on_checkpoint(step, prefix, model)

    hooks = {"on_checkpoint": on_checkpoint} if api == "tf2" and dist.is_chief else {}
    try:
        with StepProgress(steps, start=start_guess, enabled=show) as bar:
            result = backends.get(api).train(config_path, run_dir, steps, checkpoint_every=args.checkpoint_every,
                                             on_step=on_step, **dict(hooks, **distribute.backend_kwargs(dist)))
    except interrupt.Interrupted as exc:  # first Ctrl-C: the backend saved this step
        _interrupted(exc, tracker if dist.is_chief else None, run_dir)
        raise
    return result, timings, last, tracker


def _rates(timings):
    """Steps per second, mean and median, in steady state (the first step, graph tracing, excluded)."""
    if len(timings) < 2:
        return None, None
    rate = (timings[-1][0] - timings[0][0]) / max(timings[-1][1] - timings[0][1], 1e-9)
    gaps = sorted(b[1] - a[1] for a, b in zip(timings, timings[1:]))
    return rate, 1.0 / max(gaps[len(gaps) // 2], 1e-9)
