"""Bottleneck features, retrain.py's speed trick: the frozen base runs over every image once,
its pooled features are stored, and the head trains on those (thousands of steps per second)
instead of re-running the base each step.

One .npz per (records, base) pair under --bottleneck-dir (default <cache>/bottlenecks, the same
cache root as the model zoo): the key is the sha256 of the records' bytes and of the base's
weights, so new or changed images, another model, size, alpha or --pretrained file gets new
features, while a re-run or a second run directory on the same data reuses them. Files are
written atomically (a killed run leaves no half file that a later run would trust)."""
import hashlib
import os
import time

from odcore import cache
from odcore.fileio import atomic_path
from odrun.tasks.classify import data
from odrun.tasks.detect import pretrained

FORMAT_VERSION = "1"


def cache_dir(override=None):
    if override:
        return override
    return os.path.join(os.path.dirname(pretrained.cache_root()), "bottlenecks")


def key(base_digest, records_digest):
    return hashlib.sha256("{}:{}:{}".format(FORMAT_VERSION, base_digest, records_digest).encode()).hexdigest()[:32]


def compute(classifier, files, batch=64):
    """-> (features float32 [N, D], labels int32 [N]) from running the base over the records."""
    import numpy as np
    import tensorflow as tf
    feats, labels = [], []
    fn = getattr(classifier, "_features_fn", None)
    if fn is None:  # one traced function per classifier (a second compute does not retrace)
        fn = classifier._features_fn = tf.function(lambda x: classifier.features(x, training=False))
    for x, y in data.images(files, classifier.size, batch):
        feats.append(fn(x).numpy())
        labels.append(y.numpy())
    if not feats:
        return np.zeros((0, classifier.feature_dim), np.float32), np.zeros((0,), np.int32)
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels).astype(np.int32)


def load_or_compute(classifier, splits, directory=None):
    """splits: {"train": files, "test": files}. -> ({split: (features, labels)}, info dict)."""
    import numpy as np
    started = time.time()
    base = classifier.base_digest()
    records = data.digest(splits["train"] + splits["test"])
    path = os.path.join(cache_dir(directory), key(base, records) + ".npz")
    if os.path.exists(path):
        with np.load(path) as z:
            out = {s: (z[s + "_x"], z[s + "_y"]) for s in splits}
        return out, {"path": path, "hit": True, "seconds": round(time.time() - started, 3)}
    out = {s: compute(classifier, files) for s, files in splits.items()}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cache.mark(path)  # under the cache root: `odrun cache clear` may remove it
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: v for s, (x, y) in out.items() for k, v in ((s + "_x", x), (s + "_y", y))})
    return out, {"path": path, "hit": False, "seconds": round(time.time() - started, 3)}
