"""odrun: the TF Object Detection API pipeline as one CLI (convert, train, eval, export, detect, demo).

Runs on Python 3.6 (TF 1.15 images) and later: keep this package to 3.6 syntax (checked by vermin in tests).
"""
__version__ = "0.1.0"
