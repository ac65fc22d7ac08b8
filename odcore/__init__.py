"""odcore: the small base both CLIs (`provision`, `odrun`) share and the images copy with odrun.

Python 3.6-safe (checked by vermin with odrun): errors and exit codes (`errors`), atomic file
output (`fileio`), the verb dispatcher (`cli`). Neither CLI imports the other; both import this.
"""
__version__ = "0.1.0"
