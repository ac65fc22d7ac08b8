"""Backend selection: one module per OD API code path.

`tf2` drives `model_lib_v2` / `exporter_lib_v2`; `tf1` drives `model_lib` / `exporter`
(the TF 1.15 images, or TF 2.x through a compatibility layer). Both expose the same
functions: prepare, train, evaluate, export, load_detector.
"""
import importlib
import os

from odcore.errors import UserError

APIS = ("tf1", "tf2")
ENV = "ODRUN_API"


def installed_tf_major():
    """Major version of the installed TensorFlow (imports it: call only when about to use it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the import, or it is too late
    try:
        import tensorflow as tf
    except ImportError:
        from odcore.install import tf_fix
        raise UserError("TensorFlow is not installed in this Python ({})".format(os.sys.executable),
                        fix=tf_fix())
    return int(tf.__version__.split(".")[0])


def resolve(api=None):
    """'tf1' or 'tf2': the flag, else $ODRUN_API, else the installed TensorFlow's major version."""
    where = "--api"
    if not api:
        api, where = os.environ.get(ENV) or None, "$" + ENV
    if not api:
        return "tf1" if installed_tf_major() == 1 else "tf2"
    api = api.lower()
    if api not in APIS:
        raise UserError("unknown OD API code path {!r}".format(api), where=where,
                        fix="use one of: " + ", ".join(APIS))
    return api


def get(api=None):
    """The backend module for `api` (None -> auto, see `resolve`)."""
    name = resolve(api)
    try:
        return importlib.import_module("odrun.tasks.detect.backends." + name)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("object_detection", "tensorflow", "tf_slim"):
            from odcore.install import tf_fix
            raise UserError("the TF Object Detection API is not importable ({})".format(exc), fix=tf_fix())
        if exc.name != "odrun.tasks.detect.backends." + name:
            raise
        raise UserError("the {} backend is not available in this odrun".format(name),
                        fix="use --api " + ("tf2" if name == "tf1" else "tf1"))


def add_api_flag(parser):
    parser.add_argument("--api", choices=APIS, default=None,
                        help="OD API code path: tf1 (model_main/export_inference_graph) or tf2 "
                             "(model_main_tf2/exporter_main_v2); default: $ODRUN_API, else the "
                             "installed TensorFlow's major version")
