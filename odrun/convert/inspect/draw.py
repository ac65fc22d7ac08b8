"""DATA/report.png for records: the same figure as `odrun convert` (odrun/convert/report.py),
fed from the examples instead of the converter's CSVs; sample images come out of the records."""
import csv
import os
import shutil
import tempfile

from odrun.convert import report


def _key(ex):
    return "{}[{}]".format(os.path.basename(ex["file"]), ex["index"])


def write(examples, table, out_path, input_size, split_of):
    """-> (path, size warnings); examples without a known size (undecodable) are left out."""
    tmp = tempfile.mkdtemp(prefix="odrun-inspect-")
    try:
        keys = {}
        rows = {"train": [], "test": []}
        negatives = 0
        for ex in examples:
            if ex["width"] is None or ex.get("undecodable"):
                continue
            if not ex["boxes"]:
                negatives += 1
                continue
            keys[_key(ex)] = ex
            w, h = ex["width"], ex["height"]
            split = "test" if split_of(ex["file"]) == "test" else "train"
            for (xmin, ymin, xmax, ymax), name in zip(ex["boxes"], ex["classes"]):
                rows[split].append([_key(ex), w, h, name, round(xmin * w, 2), round(ymin * h, 2),
                                    round(xmax * w, 2), round(ymax * h, 2)])
        for split, found in rows.items():
            with open(os.path.join(tmp, split + "_labels.csv"), "w", newline="", encoding="utf-8") as f:
                out = csv.writer(f)
                out.writerow(["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"])
                out.writerows(found)
        summary = {"classes": [{"name": r["name"]} for r in table], "images": {"negatives": negatives}}
        return report.write(tmp, summary, out_path=out_path, input_size=input_size,
                            find_images=lambda names: _samples(names, keys, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _samples(names, keys, tmp):
    """The picked examples' image bytes, each written to a file the report opens."""
    found = {}
    for i, name in enumerate(names):
        ex = keys.get(name)
        if ex is None or ex["encoded"] is None:
            continue
        start, end = ex["encoded"]
        with open(ex["file"], "rb") as f:
            f.seek(start)
            data = f.read(end - start)
        path = os.path.join(tmp, "sample{}".format(i))
        with open(path, "wb") as f:
            f.write(data)
        found[name] = path
    return found
