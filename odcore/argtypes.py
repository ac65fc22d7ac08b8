"""argparse `type=` factories for values with a range, e.g. `type=positive_float("--tf-timeout")`.

A bad value raises UserError naming the flag (argparse lets it through; odcore.cli.run renders
it: `error: --cc: ...`, exit 2) before any work starts. Python 3.6-safe.
"""
import math
import re

from odcore.errors import UserError


def _number(flag, text, example):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        raise UserError("{!r} is not a finite number".format(text), where=flag, fix="e.g. {} {}".format(flag, example))
    return value


def positive_float(flag, example="10"):
    """A finite number > 0 (seconds, sizes)."""
    def parse(text):
        value = _number(flag, text, example)
        if value <= 0:
            raise UserError("must be > 0, got {}".format(text), where=flag, fix="e.g. {} {}".format(flag, example))
        return value
    return parse


def unit_float(flag, example="0.5"):
    """A finite number between 0 and 1 (a score threshold, an IoU)."""
    def parse(text):
        value = _number(flag, text, example)
        if not 0.0 <= value <= 1.0:
            raise UserError("must be between 0 and 1, got {}".format(text), where=flag,
                            fix="e.g. {} {}".format(flag, example))
        return value
    return parse


def nonempty(flag, example="NAME"):
    """A non-blank string (a name)."""
    def parse(text):
        if not text.strip():
            raise UserError("must not be empty", where=flag, fix="e.g. {} {!r}, or leave the flag out".format(
                flag, example))
        return text
    return parse


_CC = re.compile(r"^(\d{1,2})\.(\d)$")
MIN_CC = (1, 0)  # the first CUDA GPUs (G80) are compute capability 1.0


def compute_capability(flag="--cc"):
    """NVIDIA compute capability 'X.Y' (>= 1.0), as nvidia-smi --query-gpu=compute_cap prints it."""
    def parse(text):
        m = _CC.match(text.strip())
        if not m:
            raise UserError("{!r} is not a compute capability X.Y".format(text), where=flag,
                            fix="e.g. {} 8.6 (nvidia-smi --query-gpu=compute_cap --format=csv)".format(flag))
        if (int(m.group(1)), int(m.group(2))) < MIN_CC:
            raise UserError("{} is below 1.0, the lowest CUDA compute capability".format(text), where=flag,
                            fix="e.g. {} 8.6 (nvidia-smi --query-gpu=compute_cap --format=csv)".format(flag))
        return text.strip()
    return parse
