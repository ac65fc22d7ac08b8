"""What a run leaves to look at: RUN/results.csv + results.png, RUN/best/, and at the end of an
evaluation a PR curve and a confusion matrix (PNG + JSON), as Ultralytics writes per run.

Backend-free: detections and ground truth come in as plain arrays (one dict per image, boxes
normalised [ymin, xmin, ymax, xmax] as the OD API gives them, class ids from the label map).
COCO numbers are pycocotools' own (COCOeval), per-class AP and the PR curve read from its
`eval["precision"]` array [IoU, recall, class, area, maxDets]; the confusion matrix matches
each ground-truth box to the best unclaimed detection with IoU >= 0.5 (score >= 0.25), the
rest go to a "background" row/column (Ultralytics' ConfusionMatrix does the same).
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
    """(K+1)x(K+1) counts: rows = predicted class (last: background = missed), columns = true
    class (last: background = false positive)."""
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
        claimed = set()
        if gt and boxes:
            ious = _iou(gt, boxes)
            pairs = sorted(((ious[g, d], g, d) for g in range(len(gt)) for d in range(len(boxes))
                            if ious[g, d] >= iou), reverse=True)
            matched_gt = set()
            for _, g, d in pairs:
                if g in matched_gt or d in claimed:
                    continue
                matched_gt.add(g)
                claimed.add(d)
                m[index[classes[d]], index[gt_classes[g]]] += 1
            missed = [g for g in range(len(gt)) if g not in matched_gt]
        else:
            missed = list(range(len(gt)))
        for g in missed:
            m[k, index[gt_classes[g]]] += 1
        for d in range(len(boxes)):
            if d not in claimed:
                m[index[classes[d]], k] += 1
    return {"labels": [names[c] for c in ids] + ["background"], "matrix": m.tolist(),
            "iou": iou, "score": score,
            "axes": "rows = predicted, columns = true; background row = missed, column = false positive"}


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
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    _plt().close(fig)
    return path


def plot_results(run_dir):
    """RUN/results.png: training loss (every step, from losses.csv) and mAP per evaluation."""
    plt = _plt()
    steps, loss = [], []
    losses_path = os.path.join(run_dir, LOSSES_CSV)
    for r in read_rows(losses_path):
        if r.get("total_loss"):
            steps.append(int(r["step"]))
            loss.append(float(r["total_loss"]))
    rows = read_rows(os.path.join(run_dir, RESULTS_CSV))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(steps, loss, lw=1, label="total loss (per step)")
    if len(loss) > 10:
        import numpy as np
        w = max(len(loss) // 20, 2)
        ax1.plot(steps[w - 1:], np.convolve(loss, np.ones(w) / w, mode="valid"), lw=2, label="mean of {}".format(w))
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss")
    ax1.set_title("training loss")
    ax1.legend()
    ev = [r for r in rows if r.get(MAP) not in (None, "")]
    for key in (MAP50, MAP):
        ax2.plot([int(float(r["step"])) for r in ev], [float(r[key]) for r in ev], marker="o", label=key)
    ax2.set_xlabel("step")
    ax2.set_ylabel("mAP")
    ax2.set_ylim(0, 1)
    ax2.set_title("evaluation" if ev else "evaluation (none: pass --eval-every N)")
    ax2.legend()
    fig.tight_layout()
    return _save(fig, os.path.join(run_dir, RESULTS_PNG))


def plot_pr(metrics, out_dir):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, prec in sorted(metrics["pr"].items()):
        ax.plot(metrics["recall"], prec, label="{} AP50 {:.3f}".format(name, metrics["per_class"][name]["ap50"]))
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("PR curve at IoU 0.5 (mAP@.5 {:.3f})".format(metrics[MAP50]))
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    write_json(os.path.join(out_dir, PR_JSON), {"iou": 0.5, "recall": metrics["recall"], "precision": metrics["pr"],
                                                "per_class": metrics["per_class"], MAP50: metrics[MAP50],
                                                MAP: metrics[MAP]})
    return _save(fig, os.path.join(out_dir, PR_PNG))


def plot_confusion(cm, out_dir):
    import numpy as np
    plt = _plt()
    m = np.asarray(cm["matrix"])
    n = len(cm["labels"])
    size = min(3 + 0.6 * n, 14)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(cm["labels"], rotation=45, ha="right")
    ax.set_yticklabels(cm["labels"])
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center",
                        color="white" if m[i, j] > m.max() / 2 else "black", fontsize=8)
    ax.set_title("confusion matrix (IoU >= {}, score >= {})".format(cm["iou"], cm["score"]))
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    write_json(os.path.join(out_dir, CM_JSON), cm)
    return _save(fig, os.path.join(out_dir, CM_PNG))


def final_plots(run_dir, images, names, metrics=None):
    """PR curve + confusion matrix of the last evaluation into RUN/eval/."""
    out = os.path.join(run_dir, EVAL_DIR)
    os.makedirs(out, exist_ok=True)
    metrics = metrics or coco_eval(images, names)
    return {"pr_curve": plot_pr(metrics, out), "confusion_matrix": plot_confusion(confusion(images, names), out)}


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
