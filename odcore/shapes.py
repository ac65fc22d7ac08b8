"""The shape resolver of explain: errors that print two shapes or sizes (`Cannot feed value of shape A for Tensor
T, which has shape B`, `Input to reshape is a tensor with N values, but the requested shape has M`) are compared,
so the answer names the mismatch: the channel count (grayscale vs RGB), a missing channel or batch axis, or
N = 3 x M (colour data read as grayscale). Texts come from odcore/data/shapes.yaml. Python 3.6-safe; needs only
PyYAML (loaded on first use).
"""
import os
import re

from odcore import datafile

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PATH = os.path.join(DATA_DIR, "shapes.yaml")
TRIGGERS = ("cannot feed value of shape", "input to reshape is a tensor with")  # lower-case
FEED = re.compile(r"Cannot feed value of shape \(([^)]*)\) for Tensor u?'([^']+)',? which has shape '?\(([^)]*)\)")
RESHAPE = re.compile(r"Input to reshape is a tensor with (\d+) values, but the requested shape "
                     r"(?:has|requires a multiple of) (\d+)")


def load(path=None):
    path = path or PATH
    return datafile.cached_yaml(path)


def _dims(text):
    """'(?, 608, 608, 1)' -> [None, 608, 608, 1]."""
    out = []
    for part in text.replace(" ", "").split(","):
        if part:
            out.append(int(part) if part.isdigit() else None)
    return out


def _answer(data, texts, fields, m, group):
    fill = dict((k, " ".join(str(texts[k]).split()).format(**fields)) for k in ("title", "cause", "fix"))
    return {"group": group, "family": "data", "title": fill["title"], "cause": fill["cause"], "fix": fill["fix"],
            "sources": list(data["sources"]), "matched": m.group(0), "start": m.start(),
            "replacement": fill["fix"], "resolved_from": "shapes.yaml " + group}


def _channel_advice(feed, got, want):
    if got == 1 and want == 3:
        return feed["gray_rgb"]
    if got == 3 and want == 1:
        return feed["rgb_gray"]
    return feed["other_channels"]


def _feed(data, m):
    feed = data["feed"]
    fed, wanted = _dims(m.group(1)), _dims(m.group(3))
    fields = {"fed": m.group(1), "wanted": m.group(3), "tensor": m.group(2)}
    want = wanted[-1] if wanted else None
    if len(fed) == len(wanted) and want is not None and fed[-1] != want:
        fields.update(got=fed[-1], want=want, advice=_channel_advice(feed, fed[-1], want))
        return _answer(data, feed["channels"], fields, m, "feed-channels")
    if len(fed) == len(wanted) - 1 and want in (1, 3, 4) and fed and fed[-1] not in (1, 3, 4):
        fields.update(want=want, advice=_channel_advice(feed, 1, want))
        return _answer(data, feed["no_channel_axis"], fields, m, "feed-no-channel-axis")
    if len(fed) == len(wanted) - 1 and wanted and wanted[0] is None:
        return _answer(data, feed["no_batch_axis"], fields, m, "feed-no-batch-axis")
    return None


def _reshape(data, m):
    values, wanted = int(m.group(1)), int(m.group(2))
    big, small = max(values, wanted), min(values, wanted)
    if not small or big % small or big // small not in (3, 4):
        return None
    ratio = big // small
    fields = {"values": values, "wanted": wanted, "ratio": ratio, "big": ratio, "small": 1, "other": 1}
    return _answer(data, data["reshape"], fields, m, "reshape-channels")


def resolve(text, low=None, path=None):
    """The shape answer for `text` (normalised), or None. `low` lets a caller skip texts cheaply."""
    low = text.lower() if low is None else low
    if not any(t in low for t in TRIGGERS):
        return None
    data = load(path)
    m = FEED.search(text)
    if m:
        return _feed(data, m)
    m = RESHAPE.search(text)
    return _reshape(data, m) if m else None
