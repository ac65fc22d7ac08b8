"""`odrun eval --workdir RUN` for a classifier: top-1 / top-5 accuracy, per-class precision and
recall, a confusion matrix (rich table, RUN/eval.json, RUN/confusion_matrix.png) for the newest
checkpoint on the test records; top-1/top-5 also go into RUN/results.csv and results.png."""
import os

from odcore.errors import UserError
from odcore.fileio import atomic_path, write_json
from odrun.tasks.classify import data, history, require_tf2, train as T
from odrun.ui.progress import status

EVAL_NAME = "eval.json"
PICTURE_NAME = "confusion_matrix.png"


def load_run(run_dir):
    """-> (settings, Classifier) with RUN_DIR's newest checkpoint restored."""
    require_tf2()
    s = T._read(os.path.join(run_dir, T.SETTINGS))
    if not s or s.get("task") != "classify":
        raise UserError("not a classifier run directory (no run.json with task classify)", where=run_dir,
                        fix="pass the --workdir of `odrun train --task classify`")
    s["run_dir"] = run_dir
    clf, ckpt, manager, _opts, step = T.build(s)
    if not T.restore(ckpt, manager, run_dir):
        raise UserError("no checkpoint yet", where=run_dir,
                        fix="train first: odrun train --task classify --workdir " + run_dir + " --resume")
    s["step"] = int(step.numpy())
    s["checkpoint"] = manager.latest_checkpoint
    return s, clf


def metrics(probs, labels, names, k=5):
    """Top-1/top-k, per-class precision/recall/F1/support and the confusion matrix (rows: true)."""
    import numpy as np
    n = len(names)
    pred = probs.argmax(-1)
    k = min(k, n)
    topk = np.argsort(-probs, axis=-1)[:, :k]
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    per = []
    for i, name in enumerate(names):
        tp, col, row = cm[i, i], cm[:, i].sum(), cm[i, :].sum()
        p = tp / float(col) if col else 0.0
        r = tp / float(row) if row else 0.0
        per.append({"id": i, "name": name, "precision": round(p, 4), "recall": round(r, 4),
                    "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0, "support": int(row)})
    return {"images": int(len(labels)), "top1": round(float(np.mean(pred == labels)), 4) if len(labels) else None,
            "top5" if k == 5 else "top{}".format(k): round(float(np.mean([l in t for l, t in zip(labels, topk)])), 4)
            if len(labels) else None,
            "per_class": per, "confusion_matrix": cm.tolist(), "classes": list(names)}


def predict_records(clf, files, batch=64):
    import numpy as np
    probs, labels, files_out = [], [], []
    for x, y, n in data.images(files, clf.size, batch, with_names=True):
        probs.append(clf.full(x, training=False).numpy())
        labels.append(y.numpy())
        files_out += [v.decode("utf-8") for v in n.numpy()]
    if not probs:
        return np.zeros((0, clf.n_classes)), np.zeros((0,), np.int64), []
    return np.concatenate(probs), np.concatenate(labels), files_out


def picture(result, path):
    """The confusion matrix as a PNG (matplotlib, Agg backend: no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    cm = np.asarray(result["confusion_matrix"])
    names = result["classes"]
    side = max(4.0, 0.6 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)))
    ax.set_yticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("top-1 {:.1%} at step {}".format(result["top1"] or 0, result["step"]))
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2.0 else "black")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def evaluate(run_dir):
    with status("evaluating {} on the test records".format(os.path.basename(os.path.abspath(run_dir)))):
        return _evaluate(run_dir)  # loading the model + the test set: tens of seconds, shown live


def _evaluate(run_dir):
    s, clf = load_run(run_dir)
    _names, _train, test_files = data.find(s["data"])
    if not test_files:
        raise UserError("the data has no test records", where=s["data"],
                        fix="convert again with --split below 1.0 (or a test/ folder)")
    probs, labels, _files = predict_records(clf, test_files)
    result = metrics(probs, labels, s["classes"])
    result.update({"task": "classify", "step": s["step"], "checkpoint": s["checkpoint"]})
    write_json(os.path.join(run_dir, EVAL_NAME), result)
    picture(result, os.path.join(run_dir, PICTURE_NAME))
    result["picture"] = os.path.abspath(os.path.join(run_dir, PICTURE_NAME))
    top = {k: result[k] for k in result if k.startswith("top") and k != "top1"}
    result["results_png"] = os.path.abspath(history.add_evaluation(run_dir, s["step"], result["top1"], top))
    return result


def tables(result):
    from rich.table import Table
    top = [k for k in result if k.startswith("top") and k != "top1"]
    t = Table(title="step {}: top-1 {:.4f}, {} {:.4f} on {} test images".format(
        result["step"], result["top1"], top[0], result[top[0]], result["images"]), title_justify="left")
    for col in ("class", "precision", "recall", "f1", "support"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for c in result["per_class"]:
        t.add_row(c["name"], "{:.3f}".format(c["precision"]), "{:.3f}".format(c["recall"]),
                  "{:.3f}".format(c["f1"]), str(c["support"]))
    cm = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    cm.add_column("")
    for i, _ in enumerate(result["classes"]):
        cm.add_column(str(i), justify="right")
    for i, (name, row) in enumerate(zip(result["classes"], result["confusion_matrix"])):
        cm.add_row("{} {}".format(i, name), *[str(v) for v in row])
    return t, cm


def from_args(args):
    """`odrun eval` on a classifier run (flags: odrun.verbs.evaluate) -> the eval.json result."""
    return evaluate(args.workdir)


def show(result, args):
    from rich.console import Console
    c = Console()
    for t in tables(result):
        c.print(t)
    print("wrote {}, {} and {}".format(os.path.join(args.workdir, EVAL_NAME), result["picture"], result["results_png"]))
