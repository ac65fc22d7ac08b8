"""Checks across examples: the same image twice (sha256 of the encoded bytes), class balance
between train and test, label-map classes no record uses; and the per-class table."""
from odrun.convert.inspect.checks import ERROR, WARNING, finding

DUPLICATES_SHOWN = 5


def duplicates(examples, split_of):
    """The same image bytes in train and test: error (the evaluation sees training images);
    twice within one split: warning (that image weighs double)."""
    by_hash = {}
    for ex in examples:
        if ex["sha256"]:
            by_hash.setdefault(ex["sha256"], []).append(ex)
    out = []
    for digest, group in sorted(by_hash.items(), key=lambda kv: (kv[1][0]["file"], kv[1][0]["index"])):
        if len(group) < 2:
            continue
        splits = {split_of(ex["file"]) for ex in group}
        across = "train" in splits and "test" in splits
        others = ", ".join("{}[{}]".format(ex["file"], ex["index"]) for ex in group[1:DUPLICATES_SHOWN + 1])
        more = len(group) - 1 - DUPLICATES_SHOWN
        first = group[0]
        out.append(finding(
            ERROR if across else WARNING, "duplicate", first["file"], first["index"],
            "the same image (sha256 {}…) is also {}{}{}".format(
                digest[:12], others, " and {} more".format(more) if more > 0 else "",
                ": in train and in test, the evaluation measures images the model trained on" if across else "")))
    return out


def class_table(examples, lm, split_of):
    """[{id, name, train_boxes, test_boxes, other_boxes}] for the label map's classes and any others seen."""
    counts = {}
    for ex in examples:
        split = split_of(ex["file"]) or "other"
        for name in ex["classes"]:
            row = counts.setdefault(name, {"train": 0, "test": 0, "other": 0})
            row[split] += 1
    names = [n for _i, n in sorted(lm.by_id.items())] + sorted(n for n in counts if n not in lm.by_name)
    return [{"id": lm.by_name.get(n), "name": n, "train_boxes": counts.get(n, {}).get("train", 0),
             "test_boxes": counts.get(n, {}).get("test", 0), "other_boxes": counts.get(n, {}).get("other", 0)}
            for n in names]


def balance(table, lm, files, split_of):
    """A class in train but not in test is never evaluated; in test but not in train, never learned.
    Only when both splits are given; label-map classes no box uses are a warning."""
    splits = {split_of(f) for f in files}
    out = []
    for row in table:
        if {"train", "test"} <= splits:
            if row["train_boxes"] and not row["test_boxes"]:
                out.append(finding(ERROR, "balance", lm.path, None, "class {!r} has {} boxes in train and none in "
                                   "test: its AP is never measured (split again: `odrun convert --split`)".format(
                                       row["name"], row["train_boxes"])))
            if row["test_boxes"] and not row["train_boxes"]:
                out.append(finding(ERROR, "balance", lm.path, None, "class {!r} has {} boxes in test and none in "
                                   "train: the model never learns it".format(row["name"], row["test_boxes"])))
    unused = [row for row in table if row["id"] is not None
              and not row["train_boxes"] + row["test_boxes"] + row["other_boxes"]]
    if unused:
        out.append(finding(WARNING, "balance", lm.path, None, "{} of the label map's {} classes no box has: {}".format(
            len(unused), len(lm.by_id), ", ".join("{!r} (id {})".format(r["name"], r["id"]) for r in unused[:10])
            + (" …" if len(unused) > 10 else ""))))
    return out
