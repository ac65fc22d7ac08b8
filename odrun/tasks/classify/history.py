"""A classifier run's RUN/results.csv + RUN/results.png, as a detection run's (odrun.tasks.detect.results):
a row every `log_every` steps (loss, accuracy, learning rate, phase), the test accuracy at the end
of training and `odrun eval`'s top-1/top-5 in the row of the step it evaluated; the picture has the
loss, the accuracies and the learning rate."""
import os

from odrun.tasks.detect import results as R

RESULTS_CSV, RESULTS_PNG = R.RESULTS_CSV, R.RESULTS_PNG


class History(object):
    """Rows kept in memory, written (atomically, with the earlier ones) at each checkpoint, on
    Ctrl-C and at the end: a resumed run first drops the rows after its restored step."""

    def __init__(self, run_dir, start_step):
        self.path = os.path.join(run_dir, RESULTS_CSV)
        self.run_dir = run_dir
        R.drop_after(run_dir, start_step)
        self.rows = []
        self.last = None

    def add(self, step, loss, accuracy, lr, phase, **extra):
        r = {"step": step, "loss": round(loss, 6), "accuracy": round(accuracy, 6), "lr": lr, "phase": phase}
        r.update(extra)
        self.rows.append(r)
        self.last = r

    def finish(self, **extra):
        """The last logged row again with `extra` (the test accuracy), then flush."""
        if self.last is not None:
            self.rows.append(dict(self.last, **extra))
        return self.flush()

    def flush(self):
        if self.rows:
            R.write_rows(self.path, R.read_rows(self.path) + self.rows)
            self.rows = []
        return self.path


def add_evaluation(run_dir, step, top1, topk):
    """`odrun eval`'s numbers into the row of `step` (its loss etc. stay); -> results.png's path."""
    path = os.path.join(run_dir, RESULTS_CSV)
    rows = R.read_rows(path)
    old = [r for r in rows if int(float(r["step"])) == int(step)]
    merged = dict(old[-1]) if old else {"step": step}
    merged.update(topk)
    merged["top1"] = top1
    R.write_rows(path, rows + [merged])
    return plot(run_dir)


def figure(run_dir):
    """Loss per logged step, accuracy (training batches, test at the end, eval top-1), learning rate."""
    plt = R.pyplot()
    rows = R.read_rows(os.path.join(run_dir, RESULTS_CSV))
    fig, (loss, acc, lr) = plt.subplots(1, 3, figsize=(15, 4))
    loss.plot(*R.column(rows, "loss"), lw=1.5)
    loss.set_xlabel("step")
    loss.set_ylabel("loss")
    loss.set_title("training loss")
    for key, label, style in (("accuracy", "training batches", "-"), ("test_accuracy", "test (end of training)", "o"),
                              ("top1", "top-1 (odrun eval)", "s")):
        steps, values = R.column(rows, key)
        if values:
            acc.plot(steps, values, style, label=label)
    acc.set_xlabel("step")
    acc.set_ylabel("accuracy")
    acc.set_ylim(0, 1.02)
    acc.set_title("accuracy")
    acc.legend(loc="lower right")
    lr.plot(*R.column(rows, "lr"), lw=1.5, color="tab:green")
    lr.set_xlabel("step")
    lr.set_ylabel("learning rate")
    lr.set_title("learning rate")
    fig.tight_layout()
    return fig


def plot(run_dir):
    return R.save_figure(figure(run_dir), os.path.join(run_dir, RESULTS_PNG))
