"""Image classification (`--task classify`): the other half of the tutorials.

Replaces TensorFlow's `retrain.py` (frozen Inception-v3, bottleneck files, a new `final_result`
softmax, `output_graph.pb` + `output_labels.txt`) and the slim TFRecord writer
(`image_train_00000-of-00005.tfrecord`, `labels.txt`) with the same verbs as detection:

    odrun convert DIR --task classify --out DATA      # one sub-folder per class
    odrun train --task classify --data DATA --workdir RUN [--model mobilenet_v2] [--steps N]
    odrun eval --workdir RUN
    odrun export --workdir RUN --out MODEL
    odrun predict --model MODEL IMAGES...

Pieces: convert.py (folders -> records), data.py (records -> tensors), model.py (Keras base +
head), bottleneck.py (cached base features), train.py, evaluate.py, export.py, predict.py,
synth.py and demo.py. Needs TensorFlow 2 (tf.keras, tf.function); see docs/classify.md.
"""
import os

from odcore.errors import UserError
from odrun import DATA_DIR

DEFAULTS_FILE = os.path.join(DATA_DIR, "classify.yaml")
_CACHE = {}


def defaults():
    """odrun/data/classify.yaml, parsed once."""
    if "d" not in _CACHE:
        import yaml
        with open(DEFAULTS_FILE, encoding="utf-8") as f:
            _CACHE["d"] = yaml.safe_load(f)
    return _CACHE["d"]


def require_tf2():
    """The classify task is TF2-only (tf.keras 2.x, tf.function, SavedModel v2)."""
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise UserError("TensorFlow is needed ({})".format(exc),
                        fix="run odrun where TensorFlow 2 is installed: scripts/setup.sh or an odstack TF2 image")
    if int(tf.__version__.split(".")[0]) < 2:
        raise UserError("`--task classify` needs TensorFlow 2 (this is TensorFlow {})".format(tf.__version__),
                        fix="use an odstack TF2 image; on TF 1.x only the exported output_graph.pb is usable "
                            "(see docs/classify.md)")
    return tf
