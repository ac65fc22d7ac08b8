"""odrun: the TF Object Detection API pipeline as one CLI (convert, train, eval, export, detect, demo).

Runs on Python 3.6 (TF 1.15 images) and later: keep this package to 3.6 syntax (checked by vermin in tests).
"""
import os

__version__ = "0.1.0"
# odrun/data: templates, zoo, defaults (one place, so modules may move without breaking their paths)
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DEFAULTS_FILE = os.path.join(DATA_DIR, "defaults.yaml")
_DEFAULTS = {}


def option_defaults(verb, task=None):
    """odrun/data/defaults.yaml's {option: value} for VERB (every option of the verb), or with TASK
    only the values that task sets for itself (its `tasks:` entry; {} where it has none)."""
    if "d" not in _DEFAULTS:
        import yaml
        with open(DEFAULTS_FILE, encoding="utf-8") as f:  # libyaml's loader where built: every start reads this
            _DEFAULTS["d"] = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    data = _DEFAULTS["d"]
    if task is not None:
        return dict((data.get("tasks", {}).get(task) or {}).get(verb) or {})
    return dict(data[verb])
