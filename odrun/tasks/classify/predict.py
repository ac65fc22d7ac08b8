"""`odrun predict --model MODEL SOURCE... [--top-k 5]` (and `odrun detect` on a classifier
export): the top-k classes of every image, batched through the SavedModel's bytes signature.

Prints a table per image; writes OUT/predictions.json, OUT/predictions.csv (one row per image and
rank) and OUT/contact_sheet.png (every image with its top class and score; an image in a folder
named after a class is framed green when right, red with its true class when wrong). The tutorial's
test script instead runs one sess.run per image (bench/classify.py compares the two)."""
import io
import os

from odcore import imagefile
from odcore.errors import UserError
from odcore.fileio import atomic_path, write_json, write_text
from odcore.paths import check_output_dir
from odrun.tasks.classify import require_tf2
from odrun.tasks.classify.convert import image_extensions
from odrun.tasks.classify.export import BYTES_SIGNATURE, SAVED_MODEL
from odrun.tasks.detect.detect import collect as collect_images
from odrun.tasks.detect.draw import font
from odrun.ui.progress import ItemProgress, enabled
from odrun.ui.quiet import terminal  # the terminal, also while library noise goes to the log
from odrun.workdir.metadata import export_metadata

TF_DECODES = ("jpeg", "png", "gif", "bmp")
THUMB = 128
SHEET_COLUMNS = 8
SHOWN = 20
RIGHT, WRONG = "#2e9e44", "#d62728"  # the contact sheet's frame when the image's folder names its class
FRAME = 4  # px


def collect(sources):
    """Image paths (files, folders (not recursive), globs), any extension Pillow reads."""
    return collect_images(sources, exts=image_extensions())


def encoded(path):
    """The file's bytes when TensorFlow decodes them, else Pillow's PNG re-encoding."""
    try:
        data = imagefile.read_bytes(path)  # the one opener: regular files only, size and pixel caps
        with imagefile.open_bytes(data, path) as im:
            if (im.format or "").lower() in TF_DECODES:
                return data
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG")
            return buf.getvalue()
    except imagefile.ImageRefused:
        raise
    except Exception as exc:  # Pillow raises many types for a damaged file
        raise UserError("cannot read the image ({}: {})".format(type(exc).__name__, exc), where=path,
                        fix="remove or replace the file")


class Predictor(object):
    """The export's bytes signature, loaded once; __call__(list of encoded images) -> probs [N, C]."""

    def __init__(self, model_dir):
        tf = require_tf2()
        self.tf = tf
        self.loaded = tf.saved_model.load(os.path.join(model_dir, SAVED_MODEL))
        self.fn = self.loaded.signatures[BYTES_SIGNATURE]

    def __call__(self, blobs):
        return self.fn(images=self.tf.constant(blobs))["probabilities"].numpy()


def _run_batch(predictor, blobs, paths):
    try:
        return predictor(blobs)
    except predictor.tf.errors.InvalidArgumentError:
        for b, p in zip(blobs, paths):  # name the file TensorFlow cannot decode
            try:
                predictor([b])
            except predictor.tf.errors.InvalidArgumentError as exc:
                raise UserError("TensorFlow cannot decode the image ({})".format(exc.message.splitlines()[0]),
                                where=p, fix="remove or re-save the file (JPEG/PNG)")
        raise


def predict(model_dir, sources, out_dir, top_k=5, batch=32, images=True, progress=True):
    import numpy as np
    import pandas as pd
    if batch < 1 or top_k < 1:
        raise UserError("--batch and --top-k must be >= 1", where="--batch/--top-k", fix="e.g. --top-k 5")
    meta, _ = export_metadata(model_dir, classifier=True)  # a damaged metadata.json is exit 2 naming the field
    names = [c["name"] for c in meta["classes"]]
    paths = collect(sources)
    _guard(out_dir, sources, model_dir)
    blobs = [encoded(p) for p in paths]  # every file read (and refused) before anything is written
    predictor = Predictor(model_dir)
    k = min(top_k, len(names))
    results, rows = [], []
    with ItemProgress(len(paths), "predict", enabled=progress) as bar:
        for start in range(0, len(paths), batch):
            probs = _run_batch(predictor, blobs[start:start + batch], paths[start:start + batch])
            for path, p in zip(paths[start:start + batch], probs):
                order = np.argsort(-p)[:k]
                top = [{"class": names[i], "id": int(i), "score": round(float(p[i]), 5)} for i in order]
                results.append(_entry(path, top, names))
                rows += [{"file": os.path.abspath(path), "rank": r + 1, "class": t["class"], "class_id": t["id"],
                          "score": t["score"]} for r, t in enumerate(top)]
            bar.advance(len(probs))
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "predictions.json"), results)
    write_text(os.path.join(out_dir, "predictions.csv"),
               pd.DataFrame(rows, columns=["file", "rank", "class", "class_id", "score"]).to_csv(index=False))
    sheet = contact_sheet(results, os.path.join(out_dir, "contact_sheet.png")) if images else None
    return {"images": len(paths), "top_k": k, "out_dir": os.path.abspath(out_dir), "contact_sheet": sheet,
            "predictions": results}


def true_class(path, names):
    """The class an image's folder names (class folders, as convert reads them), else None."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return folder if folder in names else None


def _entry(path, top, names):
    """predictions.json's entry; "true"/"correct" when the image's folder names a class."""
    entry = {"file": os.path.abspath(path), "top_k": top}
    truth = true_class(path, names)
    if truth is not None:
        entry.update({"true": truth, "correct": top[0]["class"] == truth})
    return entry


def _guard(out_dir, sources, model_dir):
    inputs = [("image folder", s) for s in sources if os.path.isdir(s)] + [("model", model_dir)]
    check_output_dir(out_dir, inputs, flag="--out", verb="odrun predict", kind="predict")


def contact_sheet(results, path):
    """Thumbnails in a grid, each captioned with its top class and score; where the image's
    folder names its class, a green (right) or red (wrong, captioned with the true class) frame."""
    from PIL import Image, ImageDraw
    cols = min(SHEET_COLUMNS, len(results))
    rows = (len(results) + cols - 1) // cols
    caption = 32 if any("true" in r for r in results) else 18
    sheet = Image.new("RGB", (cols * THUMB, rows * (THUMB + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    fnt = font(11)
    for n, r in enumerate(results):
        x, y = (n % cols) * THUMB, (n // cols) * (THUMB + caption)
        try:
            with imagefile.open_file(r["file"])[1] as im:
                im = im.convert("RGB")
                im.thumbnail((THUMB, THUMB))
                sheet.paste(im, (x + (THUMB - im.width) // 2, y + (THUMB - im.height) // 2))
        except Exception:  # already decoded once; a file changed meanwhile only loses its thumbnail
            pass
        best = r["top_k"][0]
        if "true" in r:
            color = RIGHT if r["correct"] else WRONG
            draw.rectangle((x, y, x + THUMB - 1, y + THUMB - 1), outline=color, width=FRAME)
            if not r["correct"]:
                draw.text((x + 3, y + THUMB + 16), "true: {}".format(r["true"])[:22], fill=WRONG, font=fnt)
        draw.text((x + 3, y + THUMB + 2), "{} {:.0%}".format(best["class"], best["score"])[:22],
                  fill=WRONG if r.get("correct") is False else "black", font=fnt)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return os.path.abspath(path)


def print_tables(summary):
    """One line per image: its path as it is (never wrapped, so it pastes), then the top-k classes
    with their scores, best first."""
    for r in summary["predictions"][:SHOWN]:
        print("{}  {}".format(r["file"], "  ".join("{} {:.4f}".format(p["class"], p["score"]) for p in r["top_k"])))
    more = len(summary["predictions"]) - SHOWN
    if more > 0:
        print("... {} more images in predictions.csv".format(more))
    print("{} images -> {}{}".format(summary["images"], summary["out_dir"],
                                     "; contact sheet " + summary["contact_sheet"] if summary["contact_sheet"] else ""))


def from_args(args):
    """`odrun predict`, or `odrun detect` on a classifier export (flags: odrun.verbs) -> the summary."""
    return predict(args.model, args.sources, args.out, top_k=args.top_k, batch=args.batch,
                   images=not getattr(args, "no_images", False), progress=enabled(args) and terminal().isatty())


def show(summary, args):
    print_tables(summary)
