"""What a run leaves to look at: RUN/results.csv + results.png (loss, learning rate, mAP, per-class
AP), RUN/best/, and after an evaluation (`odrun eval`, the last --eval-every one) a PR curve and a
confusion matrix (counts and normalized per row; PNG + JSON) in RUN/eval/, as Ultralytics writes per run.

Backend-free: detections and ground truth come in as plain arrays (one dict per image, boxes
normalised [ymin, xmin, ymax, xmax] as the OD API gives them, class ids from the label map).
COCO numbers are pycocotools' own (COCOeval), per-class AP and the PR curve read from its
`eval["precision"]` array [IoU, recall, class, area, maxDets]; the confusion matrix matches
each ground-truth box to the best unclaimed detection with IoU >= 0.5 (score >= 0.25), the
rest go to a "background" row/column (Ultralytics' ConfusionMatrix does the same); rows = true,
as in the classification matrix (odrun.tasks.classify.evaluate).
"""
import csv
import json
import os
import shutil

from odcore.fileio import atomic_path, staged_dir, write_json
from odrun.ui import quiet
from odrun.workdir.rundir import BEST  # noqa: F401 (RUN_DIR/best/, named where the layout is)

RESULTS_CSV = "results.csv"
RESULTS_PNG = "results.png"
LOSSES_CSV = "losses.csv"
EVAL_DIR = "eval"
PR_PNG, PR_JSON = "pr_curve.png", "pr_curve.json"
CM_PNG, CM_JSON = "confusion_matrix.png", "confusion_matrix.json"
CM_NORM_PNG = "confusion_matrix_normalized.png"
CM_CLASS_CMAP, CM_BACKGROUND_CMAP = "Blues", "Oranges"  # two scales: class cells, background cells
CM_IOU, CM_SCORE = 0.5, 0.25
MAP50, MAP = "mAP@.5", "mAP@.5:.95"


# ------------------------------------------------------------------ metrics
def coco_eval(images, names):
    """images: [{height, width, gt_boxes, gt_classes, boxes, classes, scores}] (normalised boxes).
    -> {mAP@.5, mAP@.5:.95, per_class: {name: {ap, ap50}}, pr: {name: [precision at recall r]},
       recall: [0..1 in 101 steps]}."""
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [], "annotations": [], "categories": [{"id": i, "name": n} for i, n in sorted(names.items())]}
    dets = []
    for image_id, im in enumerate(images, 1):
        h, w = im["height"], im["width"]
        gt["images"].append({"id": image_id, "height": h, "width": w})
        for box, cls in zip(im["gt_boxes"], im["gt_classes"]):
            x, y, bw, bh = _xywh(box, w, h)
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id,
                                      "category_id": int(cls), "bbox": [x, y, bw, bh], "area": bw * bh,
                                      "iscrowd": 0})
        for box, cls, score in zip(im["boxes"], im["classes"], im["scores"]):
            dets.append({"image_id": image_id, "category_id": int(cls), "bbox": list(_xywh(box, w, h)),
                         "score": float(score)})
    out = {MAP50: 0.0, MAP: 0.0, "per_class": {n: {"ap": 0.0, "ap50": 0.0} for n in names.values()},
           "recall": [round(r, 2) for r in np.linspace(0, 1, 101)], "pr": {}}
    if not gt["annotations"]:
        return out
    with quiet.library_stdout():  # pycocotools prints its progress and table
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        if not dets:
            return out
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out[MAP], out[MAP50] = float(ev.stats[0]), float(ev.stats[1])
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    for k, cat_id in enumerate(ev.params.catIds):
        name = names[cat_id]
        p = precision[:, :, k, 0, -1]
        valid = p[p > -1]
        out["per_class"][name] = {"ap": float(valid.mean()) if valid.size else 0.0,
                                  "ap50": float(p[0][p[0] > -1].mean()) if (p[0] > -1).any() else 0.0}
        out["pr"][name] = [round(float(max(v, 0.0)), 4) for v in precision[0, :, k, 0, -1]]
    return out


def _xywh(box, w, h):
    ymin, xmin, ymax, xmax = [float(v) for v in box]
    return xmin * w, ymin * h, (xmax - xmin) * w, (ymax - ymin) * h


def _iou(a, b):
    """IoU matrix of boxes a [N,4] and b [M,4] ([ymin, xmin, ymax, xmax])."""
    import numpy as np
    a, b = np.asarray(a, dtype=float).reshape(-1, 4), np.asarray(b, dtype=float).reshape(-1, 4)
    y0 = np.maximum(a[:, None, 0], b[None, :, 0])
    x0 = np.maximum(a[:, None, 1], b[None, :, 1])
    y1 = np.minimum(a[:, None, 2], b[None, :, 2])
    x1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)


def confusion(images, names, iou=CM_IOU, score=CM_SCORE):
    """(K+1)x(K+1) counts, rows = true class, columns = predicted class (as the classification
    matrix): the last column (background) = missed boxes, the last row (background) = false
    positives (a detection >= score that matches no true box, duplicates included); the
    background/background cell stays 0 (true negatives are not counted)."""
    import numpy as np
    ids = sorted(names)
    index = {c: i for i, c in enumerate(ids)}
    k = len(ids)
    m = np.zeros((k + 1, k + 1), dtype=int)
    for im in images:
        keep = [i for i, s in enumerate(im["scores"]) if s >= score]
        boxes = [im["boxes"][i] for i in keep]
        classes = [int(im["classes"][i]) for i in keep]
        gt = list(im["gt_boxes"])
        gt_classes = [int(c) for c in im["gt_classes"]]
        claimed, matched_gt = set(), set()
        if gt and boxes:
            ious = _iou(gt, boxes)
            pairs = sorted(((ious[g, d], g, d) for g in range(len(gt)) for d in range(len(boxes))
                            if ious[g, d] >= iou), reverse=True)
            for _, g, d in pairs:
                if g in matched_gt or d in claimed:
                    continue
                matched_gt.add(g)
                claimed.add(d)
                m[index[gt_classes[g]], index[classes[d]]] += 1
        for g in range(len(gt)):
            if g not in matched_gt:
                m[index[gt_classes[g]], k] += 1
        for d in range(len(boxes)):
            if d not in claimed:
                m[k, index[classes[d]]] += 1
    return {"labels": [names[c] for c in ids] + ["background"], "matrix": m.tolist(),
            "normalized": normalize_rows(m).tolist(), "iou": iou, "score": score, "axes": CM_AXES}


CM_AXES = ("rows = true, columns = predicted; background column = missed, background row = false positive; "
           "normalized: each row divided by its sum")


def normalize_rows(m):
    """Each row as fractions of its sum (an empty row stays 0): for a true class, where its boxes went."""
    import numpy as np
    m = np.asarray(m, dtype=float)
    sums = m.sum(axis=1, keepdims=True)
    return np.round(np.divide(m, sums, out=np.zeros_like(m), where=sums > 0), 4)


# ------------------------------------------------------------------ tables
def loss_columns(losses):
    """{'Loss/total_loss': 1.2, 'learning_rate': .01} -> {'total_loss': 1.2, 'lr': .01}."""
    out = {}
    for key, value in sorted(losses.items()):
        if key == "learning_rate":
            out["lr"] = value
        else:
            out[key.split("Loss/", 1)[-1].replace("/", "_")] = value
    return out


def row(step, losses, metrics=None, seconds=None):
    r = {"step": step}
    r.update(loss_columns(losses))
    if metrics is not None:
        r[MAP50] = round(metrics[MAP50], 5)
        r[MAP] = round(metrics[MAP], 5)
        for name, ap in sorted(metrics["per_class"].items()):
            r["AP/" + name] = round(ap["ap"], 5)
        if seconds is not None:
            r["eval_seconds"] = round(seconds, 2)
    return r


def read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path, rows):
    """All rows (a later row replaces an earlier one of the same step), columns in first-seen order."""
    by_step = {}
    for r in rows:
        by_step[int(float(r["step"]))] = r
    rows = [by_step[s] for s in sorted(by_step)]
    columns = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)
    return rows


def append_row(run_dir, r):
    path = os.path.join(run_dir, RESULTS_CSV)
    return write_rows(path, read_rows(path) + [r])


def drop_after(run_dir, step):
    """A resumed run restarts at checkpoint `step`: rows after it (steps a Ctrl-C or a crash
    threw away, which the resumed run trains again) leave losses.csv and results.csv, each
    file rewritten once, atomically; a step logged twice keeps its last row. -> rows dropped."""
    dropped = 0
    path = os.path.join(run_dir, LOSSES_CSV)
    if os.path.exists(path):
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().splitlines()
        by_step = {}
        for line in lines[1:]:
            try:
                s = int(line.split(",", 1)[0])
            except ValueError:  # a line a kill cut short
                dropped += 1
                continue
            if s > step:
                dropped += 1
            else:
                dropped += s in by_step
                by_step[s] = line
        if dropped:
            with atomic_path(path) as tmp:
                with open(tmp, "w", encoding="utf-8", newline="") as f:
                    f.write("\n".join([lines[0]] + [by_step[s] for s in sorted(by_step)]) + "\n")
    path = os.path.join(run_dir, RESULTS_CSV)
    rows = read_rows(path)
    kept = [r for r in rows if int(float(r["step"])) <= step]
    if len(kept) < len(rows):
        dropped += len(rows) - len(kept)
        write_rows(path, kept)
    return dropped


class LossLog(object):
    """RUN/losses.csv: step, total loss, lr for every step (the loss curve of results.png);
    flushed each step, so `tail -f` follows it and a Ctrl-C or kill loses no logged step."""

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, LOSSES_CSV)
        self.f = None

    def add(self, step, losses):
        if self.f is None:
            new = not os.path.exists(self.path)
            self.f = open(self.path, "a", encoding="utf-8", newline="")
            if new:
                self.f.write("step,total_loss,lr\n")
        total = losses.get("Loss/total_loss", losses.get("loss"))
        self.f.write("{},{},{}\n".format(step, "" if total is None else "{:.6g}".format(total),
                                         "{:.6g}".format(losses["learning_rate"]) if "learning_rate" in losses else ""))
        self.f.flush()

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None


# ------------------------------------------------------------------ best/
def best_map(rows):
    vals = [(float(r[MAP]), int(float(r["step"]))) for r in rows if r.get(MAP) not in (None, "")]
    return max(vals) if vals else None


def keep_best(run_dir, prefix, step, value):
    """Copy checkpoint `prefix` into RUN/best/ (with its own `checkpoint` file and best.json)."""
    best = os.path.join(run_dir, BEST)
    base = os.path.basename(prefix)
    folder = os.path.dirname(prefix)
    with staged_dir(best) as tmp:  # best/ is replaced as one: never half old, half new
        for name in os.listdir(folder):
            if name.startswith(base + "."):
                shutil.copy2(os.path.join(folder, name), os.path.join(tmp, name))
        with open(os.path.join(tmp, "checkpoint"), "w", encoding="utf-8") as f:
            f.write('model_checkpoint_path: "{0}"\nall_model_checkpoint_paths: "{0}"\n'.format(base))
        write_json(os.path.join(tmp, "best.json"), {"step": step, MAP: value, "checkpoint": base})
    return best


# ------------------------------------------------------------------ pictures
def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    pyplot().close(fig)
    return path


def column(rows, key):
    """(steps, values) of the rows where `key` has a value."""
    pts = [(int(float(r["step"])), float(r[key])) for r in rows if r.get(key) not in (None, "")]
    return [p[0] for p in pts], [p[1] for p in pts]


def results_figure(run_dir):
    """The figure of RUN/results.png: training loss (every step, losses.csv), learning rate,
    mAP per evaluation (--eval-every rows and `odrun eval`'s) and the per-class AP of the last one."""
    plt = pyplot()
    losses = read_rows(os.path.join(run_dir, LOSSES_CSV))
    rows = read_rows(os.path.join(run_dir, RESULTS_CSV))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    _loss_panel(axes[0][0], *column(losses, "total_loss"))
    lr_steps, lr = column(losses, "lr")
    if not lr:
        lr_steps, lr = column(rows, "lr")
    axes[0][1].plot(lr_steps, lr, lw=1.5, color="tab:green")
    axes[0][1].set_xlabel("step")
    axes[0][1].set_ylabel("learning rate")
    axes[0][1].set_title("learning rate" if lr else "learning rate (none logged)")
    ev = [r for r in rows if r.get(MAP) not in (None, "")]
    ax = axes[1][0]
    for key in (MAP50, MAP):
        ax.plot(*column(ev, key), marker="o", label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("mAP")
    ax.set_ylim(0, 1)
    ax.set_title("evaluation" if ev else "evaluation (none: run `odrun eval` or pass --eval-every N)")
    ax.legend()
    _class_ap_panel(axes[1][1], ev[-1] if ev else None)
    fig.tight_layout()
    return fig


def _loss_panel(ax, steps, loss):
    ax.plot(steps, loss, lw=1, label="total loss (per step)")
    if len(loss) > 10:
        import numpy as np
        w = max(len(loss) // 20, 2)
        ax.plot(steps[w - 1:], np.convolve(loss, np.ones(w) / w, mode="valid"), lw=2, label="mean of {}".format(w))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("training loss")
    ax.legend()


def _class_ap_panel(ax, last):
    """Horizontal bars: AP@.5:.95 of each class at the last evaluation."""
    names = sorted(k[3:] for k in (last or {}) if k.startswith("AP/") and last[k] not in (None, ""))
    values = [float(last["AP/" + n]) for n in names]
    ax.barh(range(len(names)), values, color="tab:blue")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("AP@.5:.95")
    ax.set_title("per-class AP at step {}".format(int(float(last["step"]))) if names
                 else "per-class AP (no evaluation yet)")
    for i, v in enumerate(values):
        ax.text(min(v + 0.01, 0.9), i, "{:.3f}".format(v), va="center", fontsize=8)


def plot_results(run_dir):
    """RUN/results.png (results_figure)."""
    return save_figure(results_figure(run_dir), os.path.join(run_dir, RESULTS_PNG))


def add_evaluation(run_dir, step, losses, metrics, seconds=None):
    """The evaluation of checkpoint `step` (coco_eval's metrics) into its results.csv row, keeping
    the row's losses (written at the checkpoint) when `losses` is empty; -> the rows."""
    path = os.path.join(run_dir, RESULTS_CSV)
    rows = read_rows(path)
    old = [r for r in rows if int(float(r["step"])) == int(step)]
    merged = dict(old[-1]) if old else {"step": step}
    merged.update(row(step, losses, metrics, seconds))
    return write_rows(path, rows + [merged])


def pr_figure(metrics):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, prec in sorted(metrics["pr"].items()):
        ax.plot(metrics["recall"], prec, label="{} AP50 {:.3f}".format(name, metrics["per_class"][name]["ap50"]))
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("PR curve at IoU 0.5 (mAP@.5 {:.3f})".format(metrics[MAP50]))
    if metrics["pr"]:
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_pr(metrics, out_dir):
    write_json(os.path.join(out_dir, PR_JSON), {"iou": 0.5, "recall": metrics["recall"], "precision": metrics["pr"],
                                                "per_class": metrics["per_class"], MAP50: metrics[MAP50],
                                                MAP: metrics[MAP]})
    return save_figure(pr_figure(metrics), os.path.join(out_dir, PR_PNG))


def confusion_figure(cm, normalized=False):
    """Rows = true, columns = predicted. Class cells and background cells (missed column, false
    positive row) have their own colour scales, so many false positives do not wash out the
    class cells; `normalized`: each row as fractions of its sum."""
    import numpy as np
    plt = pyplot()
    m = np.asarray(cm["normalized"] if normalized else cm["matrix"], dtype=float)
    n = len(cm["labels"])
    size = min(3.5 + 0.6 * n, 14)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    background = np.zeros(m.shape, dtype=bool)
    background[-1, :] = background[:, -1] = True
    cells = background.copy()
    cells[-1, -1] = False  # background/background: true negatives, not counted
    class_max, back_max = (1.0, 1.0) if normalized else (max(m[~background].max(), 1), max(m[cells].max(), 1))
    im = ax.imshow(np.ma.masked_where(background, m), cmap=CM_CLASS_CMAP, vmin=0, vmax=class_max)
    ax.imshow(np.ma.masked_where(~cells, m), cmap=CM_BACKGROUND_CMAP, vmin=0, vmax=back_max)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(cm["labels"][:-1] + ["background\n(missed)"], rotation=45, ha="right")
    ax.set_yticklabels(cm["labels"][:-1] + ["background\n(false pos.)"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if m[i, j] and not (i == j == n - 1):
                scale = back_max if background[i, j] else class_max
                ax.text(j, i, "{:.2f}".format(m[i, j]) if normalized else str(int(m[i, j])), ha="center",
                        va="center", color="white" if m[i, j] > scale / 2.0 else "black", fontsize=8)
    ax.set_title("confusion matrix{} (IoU >= {}, score >= {})".format(
        ", normalized per row" if normalized else "", cm["iou"], cm["score"]), fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_confusion(cm, out_dir):
    """confusion_matrix.png (counts), confusion_matrix_normalized.png (per row) and the JSON."""
    write_json(os.path.join(out_dir, CM_JSON), cm)
    save_figure(confusion_figure(cm, normalized=True), os.path.join(out_dir, CM_NORM_PNG))
    return save_figure(confusion_figure(cm), os.path.join(out_dir, CM_PNG))


def final_plots(run_dir, images, names, metrics=None):
    """PR curve + confusion matrix (counts and normalized) of the last evaluation into RUN/eval/."""
    out = os.path.join(run_dir, EVAL_DIR)
    os.makedirs(out, exist_ok=True)
    metrics = metrics or coco_eval(images, names)
    return {"pr_curve": plot_pr(metrics, out), "confusion_matrix": plot_confusion(confusion(images, names), out),
            "confusion_matrix_normalized": os.path.join(out, CM_NORM_PNG)}


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
