"""Deterministic, stratified train/test split.

The tutorials split by hand (5:1 in tutorial 000, 80/20 in tutorial 002) and a rare class easily ends up
only in train, so evaluation never sees it. Images carry several classes, so this is
iterative stratification (Sechidis, Tsoumakas & Vlahavas, "On the Stratification of
Multi-Label Data", ECML PKDD 2011), made deterministic by a seeded shuffle: take the class
with the fewest unassigned images; give each of its images to the split that still wants
that class most (then the split that wants more images). Every class in two or more images
gets at least one test image; images without objects fill the splits up to their sizes.
"""
import random


def _classes(item):
    return sorted({o["name"] for o in item["objects"]})


def stratified(items, train_fraction=0.8, seed=42):
    """-> (train, test): lists of items, each sorted by filename."""
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError("split must be in (0, 1]")
    order = sorted(items, key=lambda it: it["filename"])
    random.Random(seed).shuffle(order)
    test_share = 1.0 - train_fraction
    n_test = int(round(len(order) * test_share))
    if n_test == 0:
        return sorted(order, key=lambda it: it["filename"]), []
    count = {}
    for it in order:
        for c in _classes(it):
            count[c] = count.get(c, 0) + 1
    want_test = {c: max(1 if n >= 2 else 0, int(round(n * test_share))) for c, n in count.items()}
    want = {"test": dict(want_test), "train": {c: count[c] - want_test[c] for c in count}}
    size = {"test": n_test, "train": len(order) - n_test}
    parts = {"train": [], "test": []}

    def assign(it, part):
        parts[part].append(it)
        size[part] -= 1
        for c in _classes(it):
            want[part][c] -= 1

    pending = [it for it in order if it["objects"]]
    while pending:
        left = {}
        for it in pending:
            for c in _classes(it):
                left[c] = left.get(c, 0) + 1
        rarest = min(left, key=lambda c: (left[c], c))
        rest = []
        for it in pending:
            if rarest not in {o["name"] for o in it["objects"]}:
                rest.append(it)
                continue
            # The split that wants this class more; then the one that wants more images; then train.
            part = max(("train", "test"), key=lambda p: (want[p][rarest], size[p], p == "train"))
            assign(it, part)
        pending = rest
    for it in order:
        if not it["objects"]:
            assign(it, "test" if size["test"] > 0 else "train")
    key = lambda it: it["filename"]  # noqa: E731
    return sorted(parts["train"], key=key), sorted(parts["test"], key=key)
