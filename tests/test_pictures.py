"""Every picture where people look for it (issue 25), without TensorFlow: the detection confusion
matrix (rows = true, a filled background row, its own colour scale, a normalised view), results.png's
panels (loss, learning rate, evaluation, per-class AP) after `odrun eval` (odrun.tasks.detect.evaluate
.pictures, fed the per-image detections the TF2 backend returns), the classification results.csv/png
and the contact sheet's marks. The detections are hand-made (boxes in the OD API's normalised
[ymin, xmin, ymax, xmax]); the metrics are pycocotools' own."""
import csv
import os

import pytest

from odrun.tasks.detect import evaluate, results

NAMES = {1: "circle", 2: "square"}
CIRCLE, SQUARE, ELSEWHERE = [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9], [0.0, 0.7, 0.2, 0.9]


def _images(false_positives=40):
    """One image: the circle found, the square detected as a circle, plus many false positives."""
    return [{"height": 100, "width": 100, "gt_boxes": [CIRCLE, SQUARE], "gt_classes": [1, 2],
             "boxes": [CIRCLE, SQUARE] + [ELSEWHERE] * false_positives,
             "classes": [1, 1] + [2] * false_positives, "scores": [0.9, 0.8] + [0.5] * false_positives},
            {"height": 100, "width": 100, "gt_boxes": [SQUARE], "gt_classes": [2],  # a missed square
             "boxes": [], "classes": [], "scores": []}]


def _rows(path):
    with open(str(path), newline="") as f:
        return list(csv.DictReader(f))


def test_confusion_rows_are_true_and_background_row_holds_false_positives():
    cm = results.confusion(_images(), NAMES)
    assert cm["labels"] == ["circle", "square", "background"]
    # rows = true (as the classification matrix), columns = predicted
    assert cm["matrix"] == [[1, 0, 0],    # circle: found
                            [1, 0, 1],    # square: once called a circle, once missed (background column)
                            [0, 40, 0]]   # background row: the 40 false positives, predicted "square"
    assert cm["normalized"] == [[1.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.0, 1.0, 0.0]]
    assert cm["axes"].startswith("rows = true")


@pytest.mark.parametrize("normalized", [False, True])
def test_confusion_figure_axes_and_separate_colour_scales(normalized):
    fig = results.confusion_figure(results.confusion(_images(), NAMES), normalized=normalized)
    ax = fig.axes[0]
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("true", "predicted")
    assert [t.get_text() for t in ax.get_yticklabels()][-1].startswith("background")
    classes, background = ax.images
    # the 40 false positives have their own scale: the class cells' scale tops at their own max (1)
    assert classes.norm.vmax == 1 and background.norm.vmax == (1 if normalized else 40)
    assert classes.get_cmap().name == results.CM_CLASS_CMAP
    assert background.get_cmap().name == results.CM_BACKGROUND_CMAP
    texts = {t.get_text() for t in ax.texts}
    assert ({"0.50", "1.00"} <= texts) if normalized else ({"40", "1"} <= texts)
    assert ("normalized" in ax.get_title()) == normalized


def _trained_run(tmp_path, steps=(50, 100)):
    """What training leaves: losses.csv (each step, with the learning rate), a results.csv row per checkpoint."""
    run = tmp_path / "run"
    run.mkdir()
    log = results.LossLog(str(run))
    for step in range(1, steps[-1] + 1):
        log.add(step, {"Loss/total_loss": 2.0 / step, "learning_rate": 0.01 * (1 - step / 200.0)})
    log.close()
    for step in steps:
        results.append_row(str(run), results.row(step, {"Loss/total_loss": 2.0 / step, "learning_rate": 0.005}))
    return run


def test_odrun_eval_draws_pr_curve_confusion_matrix_and_results_png(tmp_path):
    from PIL import Image
    run = _trained_run(tmp_path)
    meta = {"step": 100, "images": _images(), "names": NAMES}
    files = evaluate.pictures(str(run), meta, {"DetectionBoxes_Precision/mAP": 0.3})
    for key, rel in (("pr_curve", "eval/pr_curve.png"), ("confusion_matrix", "eval/confusion_matrix.png"),
                     ("confusion_matrix_normalized", "eval/confusion_matrix_normalized.png"),
                     ("results_png", "results.png")):
        assert files[key] == os.path.join(str(run), rel)
        with Image.open(files[key]) as im:
            assert im.format == "PNG" and 300 <= im.size[0] <= 2000 and 300 <= im.size[1] <= 2000, (rel, im.size)
    assert os.path.exists(str(run / "eval" / "pr_curve.json")) and os.path.exists(str(run / "eval" / "confusion_matrix.json"))
    rows = _rows(run / "results.csv")
    assert [r["step"] for r in rows] == ["50", "100"]
    assert rows[0]["mAP@.5"] == "" and rows[1]["total_loss"] == "0.02"  # the checkpoint's losses stay
    assert 0 < float(rows[1]["mAP@.5"]) <= 1 and rows[1]["AP/circle"] not in ("", None)
    assert float(rows[1]["AP/square"]) == 0.0


def test_results_png_after_eval_shows_the_evaluation_lr_and_per_class_ap(tmp_path):
    run = _trained_run(tmp_path)
    before = results.results_figure(str(run))
    assert "none" in before.axes[2].get_title() and "no evaluation" in before.axes[3].get_title()
    evaluate.pictures(str(run), {"step": 100, "images": _images(), "names": NAMES}, {})
    fig = results.results_figure(str(run))
    loss, lr, ev, per_class = fig.axes
    assert (loss.get_title(), lr.get_title(), ev.get_title()) == ("training loss", "learning rate", "evaluation")
    assert lr.get_ylabel() == "learning rate" and len(lr.lines[0].get_xdata()) == 100
    assert [list(line.get_xdata()) for line in ev.lines] == [[100], [100]]
    assert per_class.get_title() == "per-class AP at step 100"
    assert [t.get_text() for t in per_class.get_yticklabels()] == ["circle", "square"]
    assert len(per_class.patches) == 2 and per_class.patches[0].get_width() > 0


def test_tf1_eval_without_detections_still_puts_the_map_in_results(tmp_path):
    run = _trained_run(tmp_path)
    files = evaluate.pictures(str(run), {"step": 100}, {"DetectionBoxes_Precision/mAP": 0.25,
                                                        "DetectionBoxes_Precision/mAP@.50IOU": 0.5})
    assert "pr_curve" not in files and os.path.exists(files["results_png"])
    row = _rows(run / "results.csv")[-1]
    assert (row["mAP@.5"], row["mAP@.5:.95"]) == ("0.5", "0.25")


def test_box_demo_data_folder_gets_a_report(tmp_path):
    """The demo's convert stage draws DATA/report.png as `odrun convert` does (no TensorFlow)."""
    from PIL import Image
    from odrun.tasks.detect import demo, synth
    paths = {"images": str(tmp_path / "images"), "data": str(tmp_path / "data")}
    synth.generate(paths["images"], count=6, seed=0)
    summary = demo.convert_stage(paths, quiet=True)
    assert summary["report"]["path"] == str(tmp_path / "data" / "report.png")
    with Image.open(summary["report"]["path"]) as im:
        assert im.format == "PNG" and im.size[0] >= 800 and im.size[1] >= 600
    assert demo.pictures(paths, {"files": {"pr_curve": "p.png"}}) == {
        "report": summary["report"]["path"], "pr_curve": "p.png"}


def test_contact_sheet_marks_wrong_predictions(tmp_path):
    """Images in class folders (as the classify demo predicts them): right ones framed green,
    wrong ones red with the true class; an image outside a class folder is not framed."""
    import numpy as np
    from PIL import Image
    from odrun.tasks.classify import predict
    names = ["circle", "square"]
    files = []
    for folder in ("circle", "square", "other"):
        (tmp_path / folder).mkdir()
        f = tmp_path / folder / "a.png"
        Image.new("RGB", (96, 96), (128, 128, 128)).save(str(f))
        files.append(str(f))
    top = [{"class": "circle", "id": 0, "score": 0.9}, {"class": "square", "id": 1, "score": 0.1}]
    entries = [predict._entry(f, top, names) for f in files]
    assert [e.get("correct") for e in entries] == [True, False, None] and entries[1]["true"] == "square"
    sheet = np.asarray(Image.open(predict.contact_sheet(entries, str(tmp_path / "sheet.png"))).convert("RGB"))
    t = predict.THUMB
    assert sheet.shape[:2] == (t + 32, 3 * t)
    rgb = lambda c: tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))  # noqa: E731
    corner = lambda i: tuple(int(v) for v in sheet[1, i * t + 1])  # noqa: E731
    assert corner(0) == rgb(predict.RIGHT) and corner(1) == rgb(predict.WRONG) and corner(2) == (255, 255, 255)
    # the wrong one's caption has a red line (the true class)
    assert (np.abs(sheet[t + 14:, t:2 * t].astype(int) - rgb(predict.WRONG)).sum(axis=2) < 60).any()


def test_classification_run_writes_results_csv_and_png(tmp_path):
    """What classify train writes (odrun.tasks.classify.history, driven as its loop does): rows
    every log step, kept on a resume up to the restored step, the test accuracy at the end and
    `odrun eval`'s top-1 in its step's row; results.png has loss, accuracy and learning rate."""
    from PIL import Image
    from odrun.tasks.classify import history
    run = str(tmp_path)
    h = history.History(run, 0)
    for step in (10, 20, 30):
        h.add(step, 1.0 / step, step / 40.0, 0.001, "head")
    h.flush()
    h = history.History(run, 20)  # resumed from ckpt-20: the row of step 30 goes
    h.add(30, 0.05, 0.8, 0.0001, "fine-tune")
    h.finish(test_accuracy=0.7)
    png = history.add_evaluation(run, 30, 0.75, {"top5": 1.0})
    rows = _rows(tmp_path / "results.csv")
    assert [(r["step"], r["phase"]) for r in rows] == [("10", "head"), ("20", "head"), ("30", "fine-tune")]
    assert (rows[-1]["test_accuracy"], rows[-1]["top1"], rows[-1]["top5"], rows[-1]["lr"]) == (
        "0.7", "0.75", "1.0", "0.0001")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (1500, 400)
    loss, acc, lr = history.figure(run).axes
    assert [a.get_title() for a in (loss, acc, lr)] == ["training loss", "accuracy", "learning rate"]
    assert [l.get_label() for l in acc.lines] == ["training batches", "test (end of training)", "top-1 (odrun eval)"]
    assert list(lr.lines[0].get_ydata()) == [0.001, 0.001, 0.0001]
