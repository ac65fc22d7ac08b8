"""The tutorials' CSV (`xml_to_csv.py` output): filename,width,height,class,xmin,ymin,xmax,ymax."""
import os

from odcore import imagefile
from odrun.convert import problems as P, safety

COLUMNS = ["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"]


def load(csv_path, image_dir=None):
    import pandas as pd

    image_dir = image_dir or os.path.dirname(os.path.abspath(csv_path))
    try:
        df = pd.read_csv(csv_path, dtype={"filename": str, "class": str}, keep_default_na=False)
    except Exception as exc:  # pandas raises ParserError, EmptyDataError, UnicodeDecodeError...
        return [], [P.error(csv_path, "cannot parse CSV: {}".format(exc))]
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        return [], [P.error(csv_path, "missing column(s) {}; expected header: {}".format(
            ", ".join(missing), ",".join(COLUMNS)))]
    items, found = {}, []
    for row_no, row in enumerate(df.to_dict("records"), start=2):  # line 1 is the header
        fname = str(row["filename"]).strip()
        where = "line {}".format(row_no)
        if not fname:
            found.append(P.error(csv_path, "empty filename", where))
            continue
        item = items.get(fname)
        if item is None:
            cands = [os.path.join(image_dir, fname), os.path.join(image_dir, "images", fname)]
            image = next((c for c in cands if imagefile.present(c)), cands[0])
            try:
                size = (int(float(row["width"])), int(float(row["height"])))
            except (ValueError, OverflowError):  # 'abc', 'inf', 'nan': the image header decides
                size = None
            item = items[fname] = {"filename": os.path.basename(fname), "image": image, "ann": csv_path,
                                   "size": size, "objects": [], "ref": fname,
                                   "roots": [image_dir, os.path.join(image_dir, "images")]}
        name = str(row["class"]).strip()
        if not name:  # a row without a class: an image listed with no objects
            continue
        where = "line {} {!r}".format(row_no, name)
        try:
            box = [float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
        except ValueError:
            found.append(P.error(csv_path, "xmin, ymin, xmax, ymax must be numbers", where))
            continue
        if not safety.finite(box):
            found.append(safety.not_finite_error(csv_path, "xmin, ymin, xmax, ymax", box, where))
            continue
        item["objects"].append({"name": name, "xmin": box[0], "ymin": box[1], "xmax": box[2], "ymax": box[3],
                                "difficult": 0, "truncated": 0, "pose": "Unspecified", "where": where})
    for item in items.values():
        if not imagefile.present(item["image"]):
            found.append(P.error(csv_path, "image {!r} not found in {}".format(item["filename"], image_dir)))
    return [i for i in items.values() if imagefile.present(i["image"])], found
