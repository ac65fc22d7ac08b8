"""JSON answers that hold numpy arrays: each float32 array written by one C-level `%` format over
all its numbers, instead of `json.dumps` of its `tolist()` (a Python float repr per number).

Why: a detector's TF Serving answer is every output of the signature (~2,700 float32 numbers for
the 96 px SSD of bench/serve.py); `json.dumps` took 3 ms per image, about half the server's CPU
per request (profile: bench/README.md "serve speed"); one format string over them: ~0.9 ms.

The numbers are TF Serving's (tensorflow_serving/util/json_tensor.cc WriteDecimal): a float32 with
max_digits10 = 9 significant digits ("%.9g": reads back as the same float32), whole numbers with
".0" (TF Serving appends it so that a list never mixes ints and floats). TF Serving first tries 6
digits ("%g") and keeps them when they read back the same; here always 9: the same float32 values,
a few digits longer. Arrays of other dtypes, with NaN/Infinity, or empty go through `json.dumps`.
"""
import json

import numpy as np

WHOLE_BELOW = 1e9  # "%.9g" writes whole numbers below this without an exponent: they get ".0"
_FORMATS = {}  # (shape, all whole?) -> the format string of an array with no mixed cells
_CACHED = 256  # at most this many (a model's outputs have a few shapes)


def dumps(value):
    """value: dicts, lists, numbers, strings and numpy arrays/scalars -> UTF-8 JSON bytes."""
    out = []
    _write(value, out)
    return b"".join(out)


def _write(value, out):
    if isinstance(value, (np.ndarray, np.generic)):
        out.append(array_json(np.asarray(value)))
    elif isinstance(value, dict):
        out.append(b"{")
        for i, (key, item) in enumerate(value.items()):
            out.append(b", " if i else b"")
            out.append(json.dumps(str(key)).encode("utf-8") + b": ")
            _write(item, out)
        out.append(b"}")
    elif isinstance(value, (list, tuple)):
        out.append(b"[")
        for i, item in enumerate(value):
            out.append(b", " if i else b"")
            _write(item, out)
        out.append(b"]")
    else:
        out.append(json.dumps(value).encode("utf-8"))


def array_json(a):
    """One numpy array -> its nested JSON list (a 0-d array: one number)."""
    if a.dtype != np.float32 or a.size == 0 or not np.isfinite(a).all():
        return json.dumps(a.tolist()).encode("utf-8")
    flat = a.ravel()
    whole = (flat == np.rint(flat)) & (np.abs(flat) < WHOLE_BELOW)
    if whole.all() or not whole.any():
        key = (a.shape, bool(whole[0]))
        fmt = _FORMATS.get(key)
        if fmt is None:
            fmt = _nest([b"%.1f" if key[1] else b"%.9g"] * a.size, a.shape)
            if len(_FORMATS) < _CACHED:
                _FORMATS[key] = fmt
    else:
        fmt = _nest(np.where(whole, b"%.1f", b"%.9g").tolist(), a.shape)
    return fmt % tuple(flat.tolist())


def _nest(cells, shape):
    """Per-number format cells (flat, C order) -> one format string with the array's brackets."""
    if not shape:
        return cells[0]
    for size in reversed(shape):
        cells = [b"[" + b",".join(cells[i:i + size]) + b"]" for i in range(0, len(cells), size)]
    return cells[0]
