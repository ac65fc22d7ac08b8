"""Run the OD API's TF1 code path (estimator `model_lib`, `exporter`) on TensorFlow 2.x.

`install()` must run BEFORE `object_detection` is imported: the OD API decides at import
time (`tf_version.is_tf1()` in `builders/model_builder.py`) whether the TF1 (slim) or the
TF2 (Keras) feature extractors are registered. Each fix below answers one concrete failure
measured with tf-models-research-object-detection 2.8.0.post1 on TF 2.15.1
(see docs/tf1-path.md for the error each one removes). On real TF 1.x nothing is done.
"""
import importlib
import sys
import types

_STATE = {"installed": False}


class CompatError(RuntimeError):
    """The layer cannot be applied in this process (e.g. the OD API is already loaded as TF2)."""

    def __init__(self, message, fix="run the tf1 command in its own process"):
        RuntimeError.__init__(self, message)
        self.fix = fix


def needed():
    """True when TensorFlow >= 2 is installed, i.e. the TF1 path needs this layer."""
    import tensorflow as tf
    return int(tf.__version__.split(".")[0]) >= 2


def installed():
    return _STATE["installed"]


def install():
    """Apply every fix once; returns the list of fixes applied (empty on TF 1.x)."""
    if _STATE["installed"]:
        return list(_STATE["fixes"])
    if not needed():
        _STATE.update(installed=True, fixes=[])
        return []
    builder = sys.modules.get("object_detection.builders.model_builder")
    if builder is not None and not hasattr(builder, "SSD_FEATURE_EXTRACTOR_CLASS_MAP"):
        raise CompatError("object_detection was already imported in TF2 mode in this process; "
                          "the TF1 path needs a fresh process (run it with --api tf1 on its own)")
    import tensorflow as tf
    if not hasattr(tf.compat.v1, "estimator"):
        # TF >= 2.16 dropped tf.estimator, which model_lib is built on.
        raise CompatError("TensorFlow {} has no tf.estimator: the OD API's TF1 path (model_lib) cannot "
                          "run on it".format(tf.__version__),
                          fix="use --api tf2, or TensorFlow 2.15 (pip install 'odstack[tf]'), or a TF 1.15 image")
    fixes = [_v1_behaviour(), _numpy_aliases(), _framework_aliases(), _tf_slim_control_flow(),
             _legacy_layers(), _contrib_stubs(), _nets_alias()]
    _STATE.update(installed=True, fixes=fixes)
    return list(fixes)


def _v1_behaviour():
    # Graph mode, sessions, tf.estimator and is_tf1() == True for the OD API's builders.
    import tensorflow as tf
    tf.compat.v1.disable_v2_behavior()
    return "tf.compat.v1.disable_v2_behavior()"


def _numpy_aliases():
    # np.int/np.float/np.bool were removed in numpy 1.24; OD API TF1 code still uses them.
    import numpy as np
    for name, value in (("int", int), ("float", float), ("bool", bool), ("object", object)):
        if name not in np.__dict__:
            setattr(np, name, value)
    return "numpy int/float/bool/object aliases"


def _framework_aliases():
    # tf-slim 1.1.0 isinstance-checks ops.Tensor / ops.IndexedSlices, which moved in TF 2.14+.
    from tensorflow.python.framework import ops
    if not hasattr(ops, "Tensor"):
        from tensorflow.python.framework import tensor
        ops.Tensor = tensor.Tensor
    if not hasattr(ops, "IndexedSlices"):
        from tensorflow.python.framework import indexed_slices
        ops.IndexedSlices = indexed_slices.IndexedSlices
    return "tensorflow.python.framework.ops.Tensor/IndexedSlices aliases"


def _legacy_layers():
    # tf-slim's batch_norm uses tf.compat.v1.layers.BatchNormalization, which TF 2.15
    # lazy-loads from `tf_keras.legacy_tf_layers.normalization` ("No module named 'tf_keras'"
    # without the tf-keras package). Keras 2.x ships the same module: point the name at it.
    name = "tf_keras.legacy_tf_layers.normalization"
    try:
        importlib.import_module(name)
        return "tf_keras present"
    except ImportError:
        pass
    for candidate in ("keras.src.legacy_tf_layers.normalization", "keras.legacy_tf_layers.normalization"):
        try:
            sys.modules[name] = importlib.import_module(candidate)
            return "tf_keras.legacy_tf_layers.normalization -> " + candidate
        except ImportError:
            continue
    raise CompatError("tf.compat.v1.layers.BatchNormalization is unavailable (no tf_keras, no Keras 2)",
                      fix="pip install tf-keras matching your TensorFlow")


def _tf_slim_control_flow():
    # tf-slim's TFExampleDecoder calls control_flow_ops.case/.cond, moved out in TF 2.13+.
    from tensorflow.python.ops import control_flow_ops
    if not hasattr(control_flow_ops, "case"):
        control_flow_ops.case = importlib.import_module("tensorflow.python.ops.control_flow_case").case
    if not hasattr(control_flow_ops, "cond"):
        control_flow_ops.cond = importlib.import_module("tensorflow.python.ops.cond").cond
    return "tf-slim control_flow_ops.case/cond"


class _ContribStubs(object):
    """Meta-path finder answering every `tensorflow.contrib[.x.y]` import with an empty
    module: the OD API imports contrib at module level in places it never calls on the
    paths we use (e.g. matchers/bipartite_matcher.py); a real use fails with AttributeError."""

    PREFIX = "tensorflow.contrib"

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.PREFIX and not fullname.startswith(self.PREFIX + "."):
            return None
        import importlib.machinery
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__doc__ = "odrun stand-in: tensorflow.contrib does not exist in TF 2"
        return module

    def exec_module(self, module):
        module.__path__ = []


def _contrib_stubs():
    if not any(isinstance(f, _ContribStubs) for f in sys.meta_path):
        sys.meta_path.append(_ContribStubs())  # last: never shadows a real module
    return "empty tensorflow.contrib.* stand-ins"


def _nets_alias():
    # The TF1 feature extractors do `from nets import mobilenet_v1` (slim's nets, which the
    # pip package ships as object_detection.nets); one module object under both names.
    if "nets" not in sys.modules:
        sys.modules["nets"] = importlib.import_module("object_detection.nets")
    return "nets -> object_detection.nets"


def patch_exporter(exporter):
    """`exporter.profile_inference_graph` uses contrib.tfprof: make it a no-op on TF 2."""
    if needed():
        exporter.profile_inference_graph = lambda graph: None
    return exporter
