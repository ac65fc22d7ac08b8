"""`odrun train --task classify`: transfer learning on a Keras application base, retrain.py style.

1. settings: RUN_DIR/run.json records the data, model, size, hyper-parameters and step counts;
   a re-run (or --resume) continues the same run, a different one in the same RUN_DIR is refused;
2. model: Keras base (weights=None; --pretrained loads a Keras .h5, local or downloaded and
   sha256-checked) + a new softmax head; the newest checkpoint in RUN_DIR is restored;
3. head phase (--steps N or --epochs E): the base is frozen; without augmentation the head trains
   on cached bottleneck features (odrun.tasks.classify.bottleneck), with augmentation (retrain.py's
   --flip_left_right/--random_crop/--random_scale/--random_brightness) the base runs every step;
4. fine-tune phase (--fine-tune-from LAYER, --fine-tune-steps M): the base's layers from LAYER on
   train with the head at a lower learning rate;
5. checkpoints (RUN_DIR/ckpt-STEP, every --checkpoint-every steps, at the end and on Ctrl-C),
   TensorBoard scalars in RUN_DIR/train, train.json with the test accuracy, RUN_DIR/results.csv +
   results.png (loss, accuracy, learning rate: odrun.tasks.classify.history).
"""
import json
import math
import os
import time

from odcore import paths
from odcore.errors import UserError
from odcore.fileio import sha256_file, write_json
from odrun.tasks.classify import bottleneck, data, defaults, history as H, model as M, require_tf2
from odrun.ui import interrupt, quiet
from odrun.ui.progress import enabled
from odrun.ui.quiet import terminal  # the terminal, also while library noise goes to the log

SETTINGS = "run.json"
SUMMARY = "train.json"
CHECKPOINT_NAME = "ckpt"
KEEP_CHECKPOINTS = 5
DEFAULT_CHECKPOINT_EVERY = 100
DEFAULT_EPOCHS = 10
# run.json fields that make two runs different runs (a re-run with others is refused)
IDENTITY = ("data", "model", "image_size", "pretrained", "classes")


def add_flags(p):
    """Classify-only flags of `odrun train` (the shared ones: --data --workdir --model --steps
    --batch --image-size --pretrained --set --checkpoint-every --resume --json)."""
    g = p.add_argument_group("classify (--task classify)")
    g.add_argument("--epochs", type=float, help="head training epochs (instead of --steps; default {})".format(
        DEFAULT_EPOCHS))
    g.add_argument("--fine-tune-from", metavar="LAYER",
                   help="after the head, also train the base from this layer (name, index or 'default')")
    g.add_argument("--fine-tune-steps", type=int, metavar="N", help="fine-tuning steps (default: as many as the head)")
    g.add_argument("--flip-left-right", action="store_true", help="retrain.py's --flip_left_right")
    g.add_argument("--random-crop", type=float, metavar="PCT", help="retrain.py's --random_crop (percent margin)")
    g.add_argument("--random-scale", type=float, metavar="PCT", help="retrain.py's --random_scale (percent)")
    g.add_argument("--random-brightness", type=float, metavar="PCT", help="retrain.py's --random_brightness")
    g.add_argument("--bottleneck-dir", metavar="DIR",
                   help="retrain.py's --bottleneck_dir: where cached base features live "
                        "(default: ~/.cache/odstack/bottlenecks, $ODSTACK_CACHE overrides)")


# -- 1. settings -------------------------------------------------------------------------------

def _parse_set(overrides):
    import yaml
    hyper = dict(defaults()["hyper"])
    for item in overrides or []:
        k, sep, v = item.partition("=")
        if not sep or k not in hyper:
            raise UserError("unknown setting {!r}".format(k if sep else item), where="--set",
                            fix="classify settings: " + ", ".join(sorted(hyper)) + " (KEY=VALUE)")
        hyper[k] = yaml.safe_load(v)
    return hyper


def _read(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _resumed(args, old):
    """--resume: RUN_DIR/run.json, with the step counts the command line extends."""
    if old is None:
        raise UserError("nothing to resume: no run.json", where=args.workdir,
                        fix="start a run: odrun train --task classify --data DATA --workdir " + args.workdir)
    if args.steps:
        old["head_steps"] = args.steps
    if args.fine_tune_steps is not None:
        old["fine_tune_steps"] = args.fine_tune_steps
    return old


def _hyper(args):
    """odrun/data/classify.yaml's hyper-parameters with --set, the retrain.py augmentation flags and --batch."""
    hyper = _parse_set(args.overrides)
    for flag in ("random_crop", "random_scale", "random_brightness"):
        if getattr(args, flag, None) is not None:
            hyper[flag] = getattr(args, flag)
    if getattr(args, "flip_left_right", False):
        hyper["flip_left_right"] = True
    if args.batch:
        hyper["batch_size"] = args.batch
    return hyper


def _check_lengths(args):
    """--steps / --epochs / --fine-tune-from, checked before TensorFlow loads."""
    if args.steps is not None and args.epochs is not None:
        raise UserError("give --steps or --epochs, not both", where="--steps/--epochs", fix="drop one")
    if args.steps is not None and args.steps < 1 or args.epochs is not None and args.epochs <= 0:
        raise UserError("--steps/--epochs must be > 0", where="--steps/--epochs", fix="e.g. --steps 500")
    if args.fine_tune_from is not None and not args.pretrained:
        raise UserError("nothing to fine-tune: without --pretrained the whole network trains from scratch",
                        where="--fine-tune-from", fix="pass --pretrained WEIGHTS.h5|URL, or drop --fine-tune-from")


def settings(args):
    """-> the run's settings dict (new, or RUN_DIR/run.json merged with what the CLI extends)."""
    run_dir = args.workdir
    old = _read(os.path.join(run_dir, SETTINGS))
    if old is not None and old.get("task") != "classify":
        raise UserError("this run directory holds a detection training", where=run_dir,
                        fix="use a new --workdir for the classifier")
    if args.resume:
        return _resumed(args, old)
    if not args.data:
        raise UserError("no training data", where="--data", fix="pass --data DATA (from `odrun convert --task classify`)")
    names, train_files, test_files = data.find(args.data)
    hyper = _hyper(args)
    name = args.model or defaults()["default_model"]
    size = args.image_size or M.spec(name)["size"]
    _check_lengths(args)
    require_tf2()  # the cheap checks above run without TensorFlow
    n_train = data.count(train_files)
    head = args.steps if args.steps is not None else int(math.ceil(
        (args.epochs or DEFAULT_EPOCHS) * n_train / float(hyper["batch_size"])))
    fine = 0
    if args.fine_tune_from is not None:
        fine = args.fine_tune_steps if args.fine_tune_steps is not None else head
    new = {"task": "classify", "data": os.path.abspath(args.data), "model": name, "image_size": size,
           "classes": names, "hyper": hyper, "head_steps": head, "fine_tune_from": args.fine_tune_from,
           "fine_tune_steps": fine, "train_images": n_train,
           "pretrained": args.pretrained, "weights": None,
           "checkpoint_every": args.checkpoint_every or DEFAULT_CHECKPOINT_EVERY}
    if old is not None:
        differ = [k for k in IDENTITY if old.get(k) != new.get(k)]
        if differ:
            raise UserError("this run directory holds another run (its {} differ)".format(", ".join(differ)),
                            where=run_dir, fix="use a new --workdir, or --resume to continue the old run")
        new["weights"] = old.get("weights")
    return new


# -- 3./4. steps -------------------------------------------------------------------------------

class Batches(object):
    """Exact, resumable feature batches: sample position p of the run -> epoch p // N, and a
    permutation seeded by the epoch; step s takes positions [s*B, (s+1)*B)."""

    def __init__(self, n, batch, seed):
        self.n, self.batch, self.seed, self.perms = n, batch, seed, {}

    def indices(self, step):
        import numpy as np
        out = []
        for pos in range(step * self.batch, (step + 1) * self.batch):
            epoch = pos // self.n
            if epoch not in self.perms:
                self.perms = {epoch: np.random.RandomState(self.seed * 100003 + epoch).permutation(self.n)}
            out.append(self.perms[epoch][pos % self.n])
        return np.asarray(out)


def _image_batches(files, size, batch, seed, start):
    return iter(data.images(files, size, batch, shuffle=True, seed=seed + start, repeat=True))


class Progress(object):
    """step i/N, phase, loss, accuracy, steps/s, ETA (rich; off for --json or when not wanted)."""

    def __init__(self, total, start, enabled):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as P, TextColumn, TimeRemainingColumn
        self.p = P(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]} acc {task.fields[acc]}"),
                   TextColumn("{task.fields[rate]} steps/s"), TimeRemainingColumn(), disable=not enabled)
        self.t = self.p.add_task("train", total=total, completed=start, loss="-", acc="-", rate="-")
        self.first = None

    def __enter__(self):
        self.p.__enter__()
        return self

    def __exit__(self, *exc):
        return self.p.__exit__(*exc)

    def update(self, step, phase, loss, acc):
        now = time.time()
        if self.first is None:
            self.first = (step, now)
        rate = "{:.1f}".format((step - self.first[0]) / (now - self.first[1])) if step > self.first[0] else "-"
        self.p.update(self.t, completed=step, description=phase, loss="{:.3f}".format(loss),
                      acc="{:.2f}".format(acc), rate=rate)


def build(s, progress=True):
    """-> (Classifier, checkpoint, manager, optimizers) for settings s, newest checkpoint restored."""
    import tensorflow as tf
    clf = M.Classifier(s["model"], len(s["classes"]), s["image_size"], s["hyper"], scratch=not s.get("pretrained"))
    step = tf.Variable(0, dtype=tf.int64, name="global_step")
    opts = {"head": tf.keras.optimizers.Adam(float(s["hyper"]["learning_rate"])),
            "fine": tf.keras.optimizers.Adam(float(s["hyper"]["fine_tune_learning_rate"]))}
    ckpt = tf.train.Checkpoint(model=clf.full, head_optimizer=opts["head"], fine_optimizer=opts["fine"], step=step)
    manager = tf.train.CheckpointManager(ckpt, s["run_dir"], max_to_keep=KEEP_CHECKPOINTS,
                                         checkpoint_name=CHECKPOINT_NAME)
    return clf, ckpt, manager, opts, step


def restore(ckpt, manager, where):
    if manager.latest_checkpoint:
        try:
            ckpt.restore(manager.latest_checkpoint).expect_partial()
        except (ValueError, tf_errors()) as exc:
            raise UserError("cannot restore {} ({})".format(manager.latest_checkpoint, str(exc).splitlines()[0]),
                            where=where, fix="the checkpoint is damaged or from another model: use a new --workdir")
    return manager.latest_checkpoint


def tf_errors():
    import tensorflow as tf
    return tf.errors.OpError


def _steps(clf, opts, s):
    import tensorflow as tf
    n = len(s["classes"])
    loss_fn = tf.keras.losses.CategoricalCrossentropy(label_smoothing=float(s["hyper"]["label_smoothing"]))
    hyper = s["hyper"]

    def finish(tape, loss, p, y, variables, opt):
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, tf.reduce_mean(tf.cast(tf.equal(tf.argmax(p, -1, output_type=tf.int32), y), tf.float32))

    @tf.function
    def head_on_features(x, y):
        with tf.GradientTape() as tape:
            p = clf.head(x, training=True)
            loss = loss_fn(tf.one_hot(y, n), p)
        return finish(tape, loss, p, y, clf.head.trainable_variables, opts["head"])

    @tf.function
    def head_on_images(x, y):
        f = clf.features(data.augment(x, hyper), training=False)
        with tf.GradientTape() as tape:
            p = clf.head(f, training=True)
            loss = loss_fn(tf.one_hot(y, n), p)
        return finish(tape, loss, p, y, clf.head.trainable_variables, opts["head"])

    def fine_step_factory(opt):
        variables = clf.full.trainable_variables  # after unfreeze_from

        @tf.function
        def fine(x, y):
            with tf.GradientTape() as tape:
                p = clf.full(data.augment(x, hyper), training=True)
                loss = loss_fn(tf.one_hot(y, n), p)
            return finish(tape, loss, p, y, variables, opt)
        return fine

    return head_on_features, head_on_images, fine_step_factory


class _Phases(object):
    """What one training step trains: the whole network (no pretrained base), the head on cached
    bottlenecks or on images (augmenting), then the fine-tuned base; `run(step)` -> (loss, accuracy, phase)."""

    def __init__(self, clf, s, opts, feats, train_files, steps):
        self.clf, self.s, self.opts, self.feats, self.train_files = clf, s, opts, feats, train_files
        self.head_on_features, self.head_on_images, self.fine_factory = steps
        self.batch, self.seed = int(s["hyper"]["batch_size"]), int(s["hyper"]["seed"])
        self.batches = Batches(len(feats["train"][1]), self.batch, self.seed) if feats else None
        self.images = self.fine = None

    def _images(self, step):
        return _image_batches(self.train_files, self.clf.size, self.batch, self.seed, step)

    def run(self, step):
        import tensorflow as tf
        head_steps, feats = self.s["head_steps"], self.feats
        if self.clf.scratch:  # no pretrained base: the whole network learns, end to end
            if self.fine is None:
                self.fine = self.fine_factory(self.opts["head"])
                self.images = self._images(step)
            x, y = next(self.images)
            loss, acc = self.fine(x, y)
            return loss, acc, "from scratch"
        if step < head_steps and feats:
            idx = self.batches.indices(step)
            loss, acc = self.head_on_features(tf.constant(feats["train"][0][idx]), tf.constant(feats["train"][1][idx]))
            return loss, acc, "head (bottlenecks)"
        if step < head_steps:
            self.images = self.images or self._images(step)
            x, y = next(self.images)
            loss, acc = self.head_on_images(x, y)
            return loss, acc, "head"
        if self.fine is None:
            self.clf.unfreeze_from(self.s["fine_tune_from"])
            self.fine = self.fine_factory(self.opts["fine"])
            self.images = self._images(step)
        x, y = next(self.images)
        loss, acc = self.fine(x, y)
        return loss, acc, "fine-tune"


def train(s, show=True):
    """Run (or continue) the training in settings s; -> the summary dict."""
    import numpy as np
    import tensorflow as tf
    run_dir = s["run_dir"]
    started = time.time()
    clf, ckpt, manager, opts, step_var = build(s)
    resumed = restore(ckpt, manager, run_dir)
    if not resumed and s.get("pretrained"):  # 2. --pretrained weights for a fresh run
        path = M.resolve_weights(s["pretrained"], progress=show)
        clf.load_weights(path)
        s["weights"] = {"path": os.path.abspath(path), "sha256": sha256_file(path)}
    write_json(os.path.join(run_dir, SETTINGS), {k: v for k, v in s.items() if k != "run_dir"})
    _, train_files, test_files = data.find(s["data"])
    head_steps, fine_steps = s["head_steps"], s["fine_tune_steps"]
    total = head_steps + fine_steps
    start = int(step_var.numpy())
    every = s["checkpoint_every"]
    steps = _steps(clf, opts, s)  # the head/fine-tune step functions (tf.function)
    writer = tf.summary.create_file_writer(os.path.join(run_dir, "train"))
    cache_info, feats = None, None
    scratch = clf.scratch
    if start < head_steps and not scratch and not data.augmenting(s["hyper"]):
        feats, cache_info = bottleneck.load_or_compute(clf, {"train": train_files, "test": test_files},
                                                       s.get("bottleneck_dir"))
    saved, last = [], {"loss": float("nan"), "accuracy": float("nan")}
    step = start
    if show and resumed:
        terminal().write("resuming from {}\n".format(resumed))
    phases = _Phases(clf, s, opts, feats, train_files, steps)
    history = H.History(run_dir, start)
    try:
        with Progress(total, start, show) as bar, interrupt.Guard(say=_say) as ctrl_c:
            while step < total:
                loss, acc, phase = phases.run(step)
                step += 1
                step_var.assign(step)
                last = {"loss": float(loss), "accuracy": float(acc)}
                if step % int(s["hyper"]["log_every"]) == 0 or step == total:
                    with writer.as_default():
                        tf.summary.scalar("loss", last["loss"], step=step)
                        tf.summary.scalar("accuracy", last["accuracy"], step=step)
                    history.add(step, last["loss"], last["accuracy"], _lr(s, phase), phase)
                if step % every == 0 or step == total:
                    saved.append(manager.save(checkpoint_number=step))
                    history.flush()
                bar.update(step, phase, last["loss"], last["accuracy"])
                if ctrl_c.requested:  # first Ctrl-C: keep this step, then stop (exit 130)
                    if not saved or not saved[-1].endswith("-{}".format(step)):
                        saved.append(manager.save(checkpoint_number=step))
                    history.flush()
                    raise interrupt.Interrupted(step, saved[-1])
    except interrupt.Interrupted:
        raise
    except KeyboardInterrupt:  # not in the main thread (no Guard): save what there is
        if step > start:
            manager.save(checkpoint_number=step)
        raise
    test_acc = test_accuracy(clf, feats, test_files, scratch or (fine_steps and step > head_steps))
    if test_acc is not None:
        with writer.as_default():
            tf.summary.scalar("test_accuracy", test_acc, step=step)
    writer.flush()
    _finish_history(history, run_dir, test_acc)
    summary = {"task": "classify", "model": s["model"], "run_dir": os.path.abspath(run_dir),
               "start_step": start, "end_step": step, "num_steps": total, "head_steps": head_steps,
               "fine_tune_steps": fine_steps, "seconds": round(time.time() - started, 2),
               "losses": last, "test_accuracy": test_acc, "bottleneck": cache_info,
               "checkpoints": [os.path.abspath(c) for c in saved], "newest": manager.latest_checkpoint}
    write_json(os.path.join(run_dir, SUMMARY), summary)
    del np
    return summary


def _lr(s, phase):
    return float(s["hyper"]["fine_tune_learning_rate" if phase == "fine-tune" else "learning_rate"])


def _finish_history(history, run_dir, test_acc):
    """The last row gets the test accuracy; results.png is drawn (not without matplotlib)."""
    history.finish(test_accuracy=test_acc)
    try:
        H.plot(run_dir)
    except ImportError as exc:
        terminal().write("no results.png ({}): pip install matplotlib\n".format(exc))


def test_accuracy(clf, feats, test_files, tuned):
    import numpy as np
    import tensorflow as tf
    if not test_files:
        return None
    if feats is not None and not tuned and len(feats["test"][1]):
        p = clf.head(tf.constant(feats["test"][0]), training=False).numpy()
        return round(float(np.mean(p.argmax(-1) == feats["test"][1])), 4)
    hits = n = 0
    for x, y in data.images(test_files, clf.size, 64):
        p = clf.full(x, training=False).numpy()
        hits += int(np.sum(p.argmax(-1) == y.numpy()))
        n += len(p)
    return round(hits / float(n), 4) if n else None


def _say(text):
    quiet.terminal().write(text + "\n")  # the terminal, not the library log
    quiet.terminal().flush()


def guard_outputs(args):
    """The output guard (odcore.paths) for what classify train writes: --workdir and
    --bottleneck-dir are not, do not contain and do not lie inside --data or a local --pretrained."""
    inputs = [("--data folder", getattr(args, "data", None))]
    pretrained = getattr(args, "pretrained", None)
    if pretrained and os.path.exists(str(pretrained)):
        inputs.append(("--pretrained file", pretrained))
    paths.check_output(args.workdir, inputs, flag="--workdir", verb="odrun train --task classify")
    paths.check_writable_dir(args.workdir, flag="--workdir")
    bottlenecks = getattr(args, "bottleneck_dir", None)
    if bottlenecks:
        paths.check_output(bottlenecks, inputs, flag="--bottleneck-dir", verb="odrun train --task classify")
        paths.check_writable_dir(bottlenecks, flag="--bottleneck-dir")


def from_args(args):
    """`odrun train --task classify` (flags: odrun.verbs.train) -> the train.json summary."""
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise UserError("--checkpoint-every must be >= 1", where="--checkpoint-every", fix="e.g. 100")
    guard_outputs(args)
    s = settings(args)
    require_tf2()
    if args.checkpoint_every:
        s["checkpoint_every"] = args.checkpoint_every
    s["run_dir"] = args.workdir
    s["bottleneck_dir"] = getattr(args, "bottleneck_dir", None) or s.get("bottleneck_dir")
    os.makedirs(args.workdir, exist_ok=True)
    try:
        return train(s, show=enabled(args))
    except interrupt.Interrupted as exc:
        _say(interrupt.message(exc, args.workdir).replace("--resume", "--task classify --resume"))
        raise


def show(summary, args):
    print("trained steps {start_step}->{end_step} in {seconds}s; test accuracy {test_accuracy}; "
          "newest checkpoint: {newest}".format(**summary))
