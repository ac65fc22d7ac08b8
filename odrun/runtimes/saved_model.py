"""SavedModel runtime: the OD API export loaded by the training backend (imports TensorFlow)."""


class Runtime(object):
    name = "saved_model"

    def __init__(self, export_dir, meta, api=None):
        from odrun.tasks.detect import backends
        self.detect = backends.get(api or meta.get("api")).load_detector(export_dir)
        self.max_batch = None
