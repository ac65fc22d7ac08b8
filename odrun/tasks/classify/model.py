"""The classifier: 0..255 RGB pixels -> the base's own preprocessing -> a Keras application base
(include_top=False, global average pool) -> dropout -> Dense -> softmax ("final_result", as in
retrain.py). The base is never downloaded: weights=None, then --pretrained weights (a Keras .h5
file) are loaded when given, so no run reaches the internet."""
import difflib
import hashlib
import os

from odcore.errors import UserError
from odcore.fileio import atomic_path, write_text
from odrun.tasks.classify import defaults
from odrun.tasks.detect import pretrained

# ImageNet channel means in BGR order (keras.applications.imagenet_utils, mode="caffe").
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def spec(name):
    models = defaults()["models"]
    if name not in models:
        close = difflib.get_close_matches(name, list(models), n=1)
        raise UserError("unknown model {!r}{}".format(name, " (did you mean {!r}?)".format(close[0]) if close else ""),
                        where="--model", fix="one of: " + ", ".join(sorted(models)))
    return models[name]


def preprocess(x, mode):
    """The base's expected input from 0..255 RGB floats (keras.applications.imagenet_utils)."""
    import tensorflow as tf
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "caffe":
        return tf.reverse(x, axis=[-1]) - tf.constant(CAFFE_MEAN_BGR, dtype=x.dtype)
    return x


def build_base(name, size, hyper):
    import tensorflow as tf
    s = spec(name)
    if size < s["min_size"]:
        raise UserError("{} needs --image-size >= {} (got {})".format(name, s["min_size"], size),
                        where="--image-size", fix="e.g. --image-size {}".format(s["size"]))
    kwargs = {"alpha": float(hyper["alpha"])} if "alpha" in s.get("options", []) else {}
    cls = getattr(tf.keras.applications, s["keras"])
    return cls(include_top=False, weights=None, input_shape=(size, size, 3), pooling="avg", **kwargs)


class Classifier(object):
    """full (pixels -> probabilities), features (pixels -> base features), head (features ->
    probabilities); all three share the same layers, so one checkpoint holds them."""

    def __init__(self, name, n_classes, size, hyper, scratch=False):
        import tensorflow as tf
        s = spec(name)
        self.name, self.size, self.n_classes, self.scratch = name, size, n_classes, scratch
        tf.keras.utils.set_random_seed(int(hyper["seed"]))  # the same random base for the same seed
        self.base = build_base(name, size, hyper)
        mode = s["preprocess"]
        pixels = tf.keras.Input((size, size, 3), name="pixels")
        x = tf.keras.layers.Lambda(lambda t: preprocess(t, mode), name="preprocess")(pixels)
        # Transfer learning: BatchNorm stays in inference mode, also when fine-tuning (the Keras
        # transfer-learning guide). From scratch: the whole network trains, BatchNorm included.
        feats = self.base(x) if scratch else self.base(x, training=False)
        if scratch:  # Keras' 0.99-0.999 leaves short runs' moving statistics near their initial values
            for l in self.base.layers:
                if isinstance(l, tf.keras.layers.BatchNormalization):
                    l.momentum = float(hyper["bn_momentum"])
        self.dropout = tf.keras.layers.Dropout(float(hyper["dropout"]), name="dropout")
        self.dense = tf.keras.layers.Dense(n_classes, name="logits")
        feat_in = tf.keras.Input((self.base.output_shape[-1],), name="bottleneck")
        self.head = tf.keras.Model(feat_in, tf.nn.softmax(self.dense(self.dropout(feat_in))), name="head")
        self.features = tf.keras.Model(pixels, feats, name="features")
        self.full = tf.keras.Model(pixels, self.head(feats), name="classifier")
        self.feature_dim = int(self.base.output_shape[-1])

    def calibrate(self, images, passes=1):
        """Hand-made base for tests and benchmarks: set every BatchNorm's moving mean/variance to
        the statistics of IMAGES (float 0..255 batch), so a randomly initialised base gives
        normalised features instead of ~1e-11 (NOT ImageNet weights; a stand-in for them)."""
        import tensorflow as tf
        bns = [l for l in self.base.layers if isinstance(l, tf.keras.layers.BatchNormalization)]
        old = [l.momentum for l in bns]
        for l in bns:
            l.momentum = 0.0
        mode = spec(self.name)["preprocess"]
        for _ in range(passes):
            self.base(preprocess(tf.convert_to_tensor(images, tf.float32), mode), training=True)
        for l, m in zip(bns, old):
            l.momentum = m

    def load_weights(self, path):
        """Base weights from a Keras .h5 (e.g. the *_no_top.h5 files keras.applications ships)."""
        try:
            self.base.load_weights(path)
        except (ValueError, OSError, KeyError) as exc:
            raise UserError("these weights do not fit the {} base ({})".format(self.name, str(exc).splitlines()[0]),
                            where=path, fix="use the include_top=False .h5 of the same model"
                                            " (and alpha / --image-size it was saved with)")

    def base_digest(self):
        """sha256 of the base's weights: the bottleneck cache's key for 'the same base'."""
        h = hashlib.sha256(self.name.encode())
        h.update(str(self.size).encode())
        for w in self.base.weights:
            h.update(w.name.encode())
            h.update(w.numpy().tobytes())
        return h.hexdigest()

    def unfreeze_from(self, layer):
        """Make the base trainable from LAYER (name or index) on; -> the index used."""
        names = [l.name for l in self.base.layers]
        if layer is None or layer == "default":
            layer = spec(self.name)["fine_tune_from"]
        if isinstance(layer, str) and layer.lstrip("-").isdigit():
            layer = int(layer)
        if isinstance(layer, int):
            if not -len(names) <= layer < len(names):
                raise UserError("layer index {} out of range (the base has {} layers)".format(layer, len(names)),
                                where="--fine-tune-from", fix="a layer name or an index below {}".format(len(names)))
            index = layer % len(names)
        elif layer in names:
            index = names.index(layer)
        else:
            close = difflib.get_close_matches(layer, names, n=3)
            raise UserError("no layer {!r} in the {} base".format(layer, self.name), where="--fine-tune-from",
                            fix="did you mean: {}? (or an index; 'default' = {})".format(
                                ", ".join(close) or names[-1], spec(self.name)["fine_tune_from"]))
        self.base.trainable = True
        for l in self.base.layers[:index]:
            l.trainable = False
        return index


def resolve_weights(spec_text, progress=True):
    """--pretrained: a local .h5 (or a folder with one .h5) or an http(s) URL to an .h5 or an
    archive holding one; a URL may pin its digest as URL#sha256=HEX. Downloads are cached and
    verified like the detection zoo (odrun.tasks.detect.pretrained). -> local .h5 path."""
    if "://" not in spec_text:
        if os.path.isdir(spec_text):
            return _one_h5(spec_text, spec_text)
        if os.path.isfile(spec_text):
            return spec_text
        raise UserError("no such file or folder", where="--pretrained",
                        fix="a Keras .h5 weights file, a folder holding one, or an http(s) URL")
    url, _, frag = spec_text.partition("#")
    sha = frag[len("sha256="):] if frag.startswith("sha256=") else None
    name, _stem = pretrained.archive_name(url)
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return _one_h5(pretrained.fetch(url, sha256=sha, progress=progress), url)
    return _fetch_file(url, name, sha, progress)


def _one_h5(folder, where):
    found = sorted(os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f.endswith((".h5", ".hdf5")))
    if len(found) != 1:
        raise UserError("expected one .h5 weights file, found {}".format(len(found)), where=where,
                        fix="an archive/folder with exactly one Keras weights .h5")
    return found[0]


def _fetch_file(url, name, sha, progress):
    """A plain file download into the zoo cache, sha256-checked (pinned, or the first download's)."""
    root = os.path.join(pretrained.cache_root(), "keras")
    path = os.path.join(root, hashlib.sha256(url.encode()).hexdigest()[:16] + "-" + name)
    digest_file = path + ".sha256"
    recorded = open(digest_file).read().split()[0] if os.path.exists(digest_file) else None
    if os.path.exists(path) and recorded and (not sha or sha == recorded):
        return path
    with atomic_path(path) as tmp:
        got = pretrained.download(url, tmp, progress=progress)
        expected = sha or recorded
        if expected and got != expected:
            raise UserError("sha256 mismatch for {}: expected {}, got {}".format(name, expected, got), where=url,
                            fix="the download is corrupt or the file changed; retry, or fix the #sha256= pin")
    write_text(digest_file, "{}  {}\n".format(got, name))
    if not expected:
        pretrained.say_trusted(name, got, digest_file)
    return path
