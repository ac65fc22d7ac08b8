"""odrun: the TF Object Detection API pipeline as one CLI (convert, train, eval, export, detect, demo).

Runs on Python 3.6 (TF 1.15 images) and later: keep this package to 3.6 syntax (checked by vermin in tests).
"""
import os

__version__ = "0.1.0"
# odrun/data: templates, zoo, defaults (one place, so modules may move without breaking their paths)
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
