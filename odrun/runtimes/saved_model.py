"""SavedModel runtime: the OD API export loaded by the training backend (imports TensorFlow)."""

from odrun.tasks.detect import backends


class Runtime(object):
    name = "saved_model"

    def __init__(self, export_dir, meta, api=None):
        self.detect = backends.get(api or meta.get("api")).load_detector(export_dir)
        self.max_batch = None
