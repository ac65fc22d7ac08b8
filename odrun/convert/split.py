"""Deterministic, stratified train/test split.

The seeds split by hand (5:1 in seed 000, 80/20 in seed 002) and a rare class easily ends up
only in train, so evaluation never sees it. Here: a seeded shuffle, then images go to test
rarest-class first until every class has its share of test images (at least one when the
class is in two or more images) without taking a class's last train image; the test split is
then topped up to its target size.
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
    n_test = int(round(len(order) * (1.0 - train_fraction)))
    if n_test == 0:
        return sorted(order, key=lambda it: it["filename"]), []
    count = {}
    for it in order:
        for c in _classes(it):
            count[c] = count.get(c, 0) + 1
    want = {c: max(1 if n >= 2 else 0, int(round(n * (1.0 - train_fraction)))) for c, n in count.items()}
    rank = {id(it): i for i, it in enumerate(order)}
    # Rarest class first; images without objects last (they only fill up the test split).
    order.sort(key=lambda it: (min([count[c] for c in _classes(it)] or [float("inf")]), rank[id(it)]))
    left = dict(count)  # images of each class not yet assigned
    train_n = {c: 0 for c in count}
    test_n = {c: 0 for c in count}
    test, train = [], []
    for it in order:
        cls = _classes(it)
        for c in cls:
            left[c] -= 1
        needed = any(test_n[c] < want[c] for c in cls)
        keeps_train = all(train_n[c] + left[c] >= 1 for c in cls)
        if needed and keeps_train and len(test) < n_test:
            test.append(it)
            for c in cls:
                test_n[c] += 1
        else:
            train.append(it)
            for c in cls:
                train_n[c] += 1
    # Top up: move train images whose classes all keep at least one train image.
    for it in sorted(train, key=lambda it: rank[id(it)]):
        if len(test) >= n_test:
            break
        cls = _classes(it)
        if all(train_n[c] >= 2 for c in cls):
            train.remove(it)
            test.append(it)
            for c in cls:
                train_n[c] -= 1
                test_n[c] += 1
    key = lambda it: it["filename"]  # noqa: E731
    return sorted(train, key=key), sorted(test, key=key)
