"""Reading `odrun convert --task classify` output: the records, labels.txt, and the one
decode + resize rule that training, evaluation, every export and `odrun predict` share (so a
model sees the same pixels everywhere: TensorFlow's decoder, bilinear resize, 0..255 floats)."""
import glob
import hashlib
import os

from odcore.errors import UserError
from odrun.tasks.classify import labels as L

FEATURES = ("image/encoded", "image/format", "image/class/label", "image/height", "image/width")
HASH_CHUNK = 1 << 20


def find(data_dir):
    """-> (class names, train record files, test record files)."""
    if not data_dir or not os.path.isdir(data_dir):
        raise UserError("data folder not found", where=data_dir or "--data",
                        fix="run `odrun convert IMAGES --task classify --out {}` first".format(data_dir or "DATA"))
    names = L.read(os.path.join(data_dir, L.SLIM_NAME))
    files = {s: sorted(glob.glob(os.path.join(data_dir, "image_{}_?????-of-?????.tfrecord".format(s))))
             for s in ("train", "test")}
    if not files["train"]:
        raise UserError("no image_train_*-of-*.tfrecord files", where=data_dir,
                        fix="point --data at the output folder of `odrun convert --task classify`")
    return names, files["train"], files["test"]


def digest(paths):
    """sha256 over the records' bytes (the bottleneck cache's key for 'the same images')."""
    h = hashlib.sha256()
    for p in paths:
        h.update(os.path.basename(p).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
                h.update(chunk)
    return h.hexdigest()


def decode_resize(encoded, size):
    """Encoded JPEG/PNG/GIF/BMP bytes (scalar string) -> float32 [size, size, 3] in 0..255."""
    import tensorflow as tf
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return resize(image, size)


def resize(image, size):
    import tensorflow as tf
    image = tf.cast(image, tf.float32)
    return tf.image.resize(image, [size, size], method="bilinear")


def parse(serialized):
    import tensorflow as tf
    f = tf.io.parse_single_example(serialized, {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
        "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=""),
    })
    return f["image/encoded"], tf.cast(f["image/class/label"], tf.int32), f["image/filename"]


def images(files, size, batch, shuffle=False, seed=0, repeat=False, with_names=False):
    """tf.data: (float images [B, size, size, 3], labels [B]) (+ file names) from the records."""
    import tensorflow as tf
    ds = tf.data.TFRecordDataset(files)
    if shuffle:
        ds = ds.shuffle(2048, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if with_names:
        ds = ds.map(lambda e, y, n: (decode_resize(e, size), y, n), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda e, y, n: (decode_resize(e, size), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def count(files):
    import tensorflow as tf
    return sum(1 for _ in tf.data.TFRecordDataset(files)) if files else 0


def augment(x, hyper, seed=None):
    """retrain.py's distortions on a float batch: --flip_left_right, --random_crop (percent margin),
    --random_scale (percent), --random_brightness (percent)."""
    import tensorflow as tf
    size = tf.shape(x)[1]
    if hyper.get("flip_left_right"):
        x = tf.image.random_flip_left_right(x)
    crop, scale = float(hyper.get("random_crop") or 0), float(hyper.get("random_scale") or 0)
    if crop or scale:
        factor = (1.0 + crop / 100.0) * tf.random.uniform([], 1.0, 1.0 + scale / 100.0)
        grown = tf.cast(tf.cast(size, tf.float32) * factor, tf.int32)
        x = tf.image.resize(x, [grown, grown])
        x = tf.image.random_crop(x, tf.stack([tf.shape(x)[0], size, size, 3]))
    bright = float(hyper.get("random_brightness") or 0)
    if bright:
        x = x * tf.random.uniform([tf.shape(x)[0], 1, 1, 1], 1.0 - bright / 100.0, 1.0 + bright / 100.0)
        x = tf.clip_by_value(x, 0.0, 255.0)
    return x


def augmenting(hyper):
    return bool(hyper.get("flip_left_right") or any(float(hyper.get(k) or 0) for k in
                                                    ("random_crop", "random_scale", "random_brightness")))
