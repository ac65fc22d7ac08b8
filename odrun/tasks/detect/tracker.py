"""`odrun train --eval-every N [--patience P]`: evaluate each N-step checkpoint on the test records
while training, keep RUN/best/ (highest mAP@.5:.95), stop after P evaluations without a new best.

Every run (with or without --eval-every) leaves RUN/losses.csv (each step), RUN/results.csv (a row
per checkpoint: step, losses, learning rate and, when evaluated, mAP@.5, mAP@.5:.95 and per-class
AP) and RUN/results.png; the last evaluation also writes RUN/eval/pr_curve.* and
RUN/eval/confusion_matrix*.* (odrun.tasks.detect.results); each evaluation's mAP goes to
TensorBoard events under RUN/eval (the names `odrun eval` writes there).
"""
import os
import sys
import time

from odcore.errors import UserError
from odrun.tasks.detect import results
from odrun.tasks.detect.backends import tf2_eval
from odrun.ui.quiet import terminal  # the terminal, also while library noise goes to the log


def add_flags(p):
    p.add_argument("--eval-every", type=int, default=None, metavar="N",
                   help="evaluate on the test records every N steps while training (TF2; checkpoints every N "
                        "too): results.csv rows with mAP, best/ keeps the best checkpoint (default: off)")
    p.add_argument("--patience", type=int, default=None, metavar="P",
                   help="with --eval-every: stop after P evaluations without a better mAP@.5:.95 (default: never)")


def check_flags(args, api):
    every, patience = getattr(args, "eval_every", None), getattr(args, "patience", None)
    if every is not None and every < 1:
        raise UserError("--eval-every must be >= 1", where="--eval-every", fix="e.g. --eval-every 100")
    if patience is not None and (patience < 1 or every is None):
        raise UserError("--patience needs --eval-every and must be >= 1", where="--patience",
                        fix="e.g. --eval-every 100 --patience 3")
    if every is not None and api != "tf2":
        raise UserError("--eval-every evaluates in-process on the TF2 code path only", where="--eval-every",
                        fix="use --api tf2, or run `odrun eval --workdir RUN_DIR` after training")


class Tracker(object):
    """Hooks for the backend's training loop: on_step (losses.csv) and on_checkpoint (results.csv,
    evaluation, best/, patience)."""

    def __init__(self, run_dir, config_path, names, eval_every=None, patience=None, show=True, start_step=None):
        """start_step: the step training restarts from (the restored checkpoint's, 0 for none);
        history after it is dropped first (None: a worker that writes nothing)."""
        self.results = results
        if start_step is not None:
            results.drop_after(run_dir, start_step)
        self.run_dir, self.config_path, self.names = run_dir, config_path, names
        self.eval_every, self.patience, self.show = eval_every, patience, show
        self.losses = results.LossLog(run_dir)
        self.last_losses = {}
        self.evaluator = self.summaries = None
        self.last_images = self.last_metrics = None
        rows = results.read_rows(os.path.join(run_dir, results.RESULTS_CSV))
        best = results.best_map(rows)
        self.best = best[0] if best else None
        self.since_best = 0
        self.evaluations = []
        self.stopped_early = None

    def on_step(self, step, losses):
        self.last_losses = losses
        self.losses.add(step, losses)

    def on_checkpoint(self, step, prefix, model):
        results = self.results
        if not self.eval_every:
            results.append_row(self.run_dir, results.row(step, self.last_losses))
            return False
        t = time.time()
        images = self._evaluate(model)
        metrics = results.coco_eval(images, self.names)
        seconds = time.time() - t
        self.last_images, self.last_metrics = images, metrics
        if self.summaries is None:
            self.summaries = tf2_eval.Summaries(self.run_dir)
        self.summaries.add(step, metrics)  # TensorBoard's mAP curve (RUN/eval)
        results.append_row(self.run_dir, results.row(step, self.last_losses, metrics, seconds))
        value = metrics[results.MAP]
        improved = self.best is None or value > self.best
        if improved:
            self.best = value
            self.since_best = 0
            results.keep_best(self.run_dir, prefix, step, value)
        else:
            self.since_best += 1
        self.evaluations.append({"step": step, results.MAP: value, results.MAP50: metrics[results.MAP50],
                                 "seconds": round(seconds, 2)})
        if self.show:
            sys.stdout.write("eval at step {}: mAP@.5 {:.3f}  mAP@.5:.95 {:.3f}{}  ({:.1f}s)\n".format(
                step, metrics[results.MAP50], value, "  best" if improved else "", seconds))
            sys.stdout.flush()
        if self.patience and self.since_best >= self.patience:
            self.stopped_early = step
            return True
        return False

    def on_interrupt(self, step):
        """A Ctrl-C checkpoint: its results.csv row (losses only; evaluating would delay the stop)."""
        self.results.append_row(self.run_dir, self.results.row(step, self.last_losses))

    def _evaluate(self, model):
        if self.evaluator is None:
            from object_detection.utils import config_util
            configs = config_util.get_configs_from_pipeline_file(self.config_path)
            self.evaluator = tf2_eval.Evaluator(configs, model)
        return self.evaluator.evaluate()

    def finish(self):
        """results.png always; PR curve + confusion matrix after the last evaluation."""
        self.losses.close()
        out = {"results_csv": os.path.join(self.run_dir, self.results.RESULTS_CSV)}
        try:
            out["results_png"] = self.results.plot_results(self.run_dir)
            if self.last_images is not None:
                out.update(self.results.final_plots(self.run_dir, self.last_images, self.names, self.last_metrics))
        except ImportError as exc:  # matplotlib missing: the tables still hold everything
            terminal().write("no plots ({}): pip install matplotlib\n".format(exc))
        best = os.path.join(self.run_dir, self.results.BEST)
        summary = {"files": out, "evaluations": self.evaluations}
        if os.path.isdir(best):
            summary["best"] = self.results.read_json(os.path.join(best, "best.json"))
        if self.stopped_early is not None:
            summary["stopped_early_at"] = self.stopped_early
        return summary
