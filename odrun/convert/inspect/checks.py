"""The checks of `odrun inspect`, in pure Python (no TensorFlow): each finding names the record
file and the example index (0-based, the order tf.data reads them).

Why these: each defect below trains without a word from the OD API and the model learns nothing
or the wrong thing (tensorflow/models#1906): class id 0 is the background and the box is dropped;
a class text the label map lacks decodes as -1 (no class); with `label_map_path` set the decoder
takes the id from the *text*, so a text/id disagreement trains one class and evaluates another;
pixel, flipped or zero-area boxes give NaN or zero losses; a class absent from test is never
evaluated; the same image in train and test inflates the evaluation.
"""
import hashlib
import io
import os
import re

from odcore.errors import UserError
from odrun.convert import labelmap
from odrun.convert.inspect import records as R

ERROR, WARNING = "error", "warning"
TOL = 1e-6  # float32 rounding of x / width
PIXELS = 1.5  # a coordinate above this is no rounding slip: pixel coordinates
KINDS = {"image/encoded": "bytes", "image/format": "bytes", "image/filename": "bytes", "image/source_id": "bytes",
         "image/height": "int64", "image/width": "int64", "image/object/bbox/xmin": "float",
         "image/object/bbox/xmax": "float", "image/object/bbox/ymin": "float", "image/object/bbox/ymax": "float",
         "image/object/class/label": "int64", "image/object/class/text": "bytes"}
BOX_KEYS = ("image/object/bbox/xmin", "image/object/bbox/ymin", "image/object/bbox/xmax", "image/object/bbox/ymax")


def finding(level, check, file, index, message, obj=None):
    """A plain dict (it goes to --json as is)."""
    return {"level": level, "check": check, "file": file, "index": index, "object": obj, "message": message}


def render(f):
    where = f["file"] + ("[{}]".format(f["index"]) if f["index"] is not None else "")
    return where + (": " + f["object"] if f["object"] else "") + ": " + f["message"]


def split_of(path):
    """train / test from the record file's name (train.record, voc_val.tfrecord-00000-of-00002), or None."""
    name = os.path.basename(path).lower()
    if "train" in name:
        return "train"
    if re.search(r"test|eval|val", name):
        return "test"
    return None


class LabelMap(object):
    """The items as written; by_id / by_name as the OD API's label_map_util sees them (the last wins)."""

    def __init__(self, path, items):
        self.path, self.items = path, list(items)
        self.by_id = {i: n for i, n in self.items}
        self.by_name = {n: i for i, n in self.items}


def read_label_map(path):
    return LabelMap(path, labelmap.parse_items(path))


def label_map_findings(lm):
    """id 0, ids and names used twice, gaps in the ids."""
    out = []

    def add(level, msg):
        out.append(finding(level, "label_map", lm.path, None, msg))
    if not lm.items:
        add(ERROR, "the label map has no items")
    seen_id, seen_name = {}, {}
    for item_id, name in lm.items:
        if item_id < 1:
            add(ERROR, "item {!r} has id {}: ids start at 1 (0 is the background; the OD API drops boxes of "
                       "class 0)".format(name, item_id))
        if item_id in seen_id:
            add(ERROR, "id {} is used twice ({!r} and {!r}): the OD API keeps the last".format(
                item_id, seen_id[item_id], name))
        if name in seen_name:
            add(ERROR, "class {!r} appears twice (ids {} and {}): the OD API keeps the last".format(
                name, seen_name[name], item_id))
        seen_id[item_id], seen_name[name] = name, item_id
    ids = sorted(i for i in seen_id if i > 0)
    gaps = sorted(set(range(1, ids[-1] + 1)) - set(ids)) if ids else []
    if gaps:
        add(WARNING, "{} missing: num_classes is the largest id ({}), so the model gets outputs for "
                     "classes that never occur".format("ids " + _ranges(gaps) + " are" if len(gaps) > 1 else
                                                       "id {} is".format(gaps[0]), ids[-1]))
    return out


def _ranges(ids):
    parts, start = [], None
    for i, v in enumerate(ids):
        if start is None:
            start = v
        if i + 1 == len(ids) or ids[i + 1] != v + 1:
            parts.append(str(start) if start == v else "{}-{}".format(start, v))
            start = None
    return ", ".join(parts)


def _values(f, key, add):
    kind, values = f.get(key, (None, []))
    if kind is not None and kind != KINDS[key]:
        add(ERROR, "example", "{} is a {} list, the OD API's decoder reads {} (it fails on this record)".format(
            key, kind, KINDS[key]))
        return []
    return values


def _text(buf, span):
    return bytes(buf[span[0]:span[1]]).decode("utf-8", "replace")


def examine(buf, start, end, lm, path, index, full=True):
    """One example -> (info, findings); info is None when it is not an Example. full: also sha256
    and the image header (PIL, without decoding the pixels)."""
    out = []

    def add(level, check, msg, obj=None):
        out.append(finding(level, check, path, index, msg, obj))
    try:
        f = R.parse_example(buf, start, end, keys=KINDS)
    except ValueError as exc:
        add(ERROR, "example", "cannot be parsed: {}".format(exc))
        return None, out
    enc = _values(f, "image/encoded", add)
    name = _values(f, "image/filename", add) or _values(f, "image/source_id", add)
    height, width = _values(f, "image/height", add), _values(f, "image/width", add)
    info = {"file": path, "index": index, "filename": _text(buf, name[0]) if name else "",
            "width": width[0] if width else None, "height": height[0] if height else None,
            "encoded": enc[0] if enc else None, "boxes": [], "classes": [], "sha256": None}
    if not enc or enc[0][1] == enc[0][0]:
        add(ERROR, "image", "no image bytes (image/encoded is {})".format("empty" if enc else "missing"))
        info["encoded"] = None
    elif full:
        _image_header(buf, info, add)
    _boxes(f, buf, lm, info, add)
    if not info["boxes"] and not any(x["check"] in ("box", "class") for x in out):
        add(WARNING, "empty", "no boxes: a negative example (fine when meant; --strict makes it an error)")
    return info, out


def _image_header(buf, info, add):
    """sha256 of the encoded bytes, and the size in the image's header against image/width,height."""
    from PIL import Image

    data = buf[info["encoded"][0]:info["encoded"][1]]
    info["sha256"] = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        why = "no image format PIL knows starts its {} bytes".format(len(data)) \
            if type(exc).__name__ == "UnidentifiedImageError" else "{}: {}".format(type(exc).__name__, exc)
        add(ERROR, "image", "image/encoded is not an image ({})".format(why))
        info["undecodable"] = True
        return
    if info["width"] is not None and info["height"] is not None and size != (info["width"], info["height"]):
        add(ERROR, "image", "image/width,height say {}x{}, the image is {}x{} (boxes were normalised by the "
                            "wrong size, or the image was replaced)".format(info["width"], info["height"], *size))
    info["width"], info["height"] = size


def _boxes(f, buf, lm, info, add):
    coords = [_values(f, k, add) for k in BOX_KEYS]
    labels = _values(f, "image/object/class/label", add)
    texts = [_text(buf, s) for s in _values(f, "image/object/class/text", add)]
    n = len(coords[0])
    if any(len(c) != n for c in coords):
        add(ERROR, "box", "the box lists differ in length (xmin {}, ymin {}, xmax {}, ymax {})".format(
            *[len(c) for c in coords]))
        return
    for key, values in (("label", labels), ("text", texts)):
        if values and len(values) != n:
            add(ERROR, "class", "{} boxes but {} class {}s".format(n, len(values), key))
            return
    for i in range(n):
        box = tuple(c[i] for c in coords)
        obj = "box #{}".format(i)
        box_ok = _box(box, obj, add)
        name = _class(labels[i] if labels else None, texts[i] if texts else None, lm, obj, add)
        if box_ok and name is not None:
            info["boxes"].append(box)
            info["classes"].append(name)


def _box(box, obj, add):
    xmin, ymin, xmax, ymax = box
    shown = "xmin={:g} ymin={:g} xmax={:g} ymax={:g}".format(*box)
    if any(v != v for v in box):
        msg = "NaN in the box ({})".format(shown)
    elif max(box) > PIXELS:
        msg = "not normalised ({}): pixel coordinates? the OD API wants 0..1, x / width and y / height".format(shown)
    elif xmin > xmax or ymin > ymax:
        msg = "flipped ({}): xmin must be < xmax and ymin < ymax".format(shown)
    elif min(box) < -TOL or max(box) > 1 + TOL:
        msg = "outside the image ({}): normalised coordinates lie in 0..1".format(shown)
    elif xmax - xmin <= 0 or ymax - ymin <= 0:
        msg = "degenerate ({}): no area".format(shown)
    else:
        return True
    add(ERROR, "box", msg, obj)
    return False


def _class(label, text, lm, obj, add):
    """The box's class name as training sees it, or None (with an error)."""
    if label is None and text is None:
        add(ERROR, "class", "no class: neither image/object/class/label nor /text", obj)
        return None
    bad = False
    if label is not None and label < 1:
        add(ERROR, "class", "class id {} ({}): ids start at 1, 0 is the background; the OD API drops this box"
                            .format(label, repr(text) if text is not None else "no text"), obj)
        bad = True
    elif label is not None and label not in lm.by_id:
        add(ERROR, "class", "class id {} is not in the label map ({} ids: {})".format(
            label, len(lm.by_id), _ranges(sorted(lm.by_id))), obj)
        bad = True
    if text is not None and text not in lm.by_name:
        add(ERROR, "class", "class text {!r} is not in the label map{} (the OD API decodes it as -1: no class)"
                            .format(text, labelmap.suggest(text, lm.by_name)), obj)
        return None
    if text is not None and label is not None and not bad and lm.by_name[text] != label:
        add(ERROR, "class", "class text {!r} is id {} in the label map, the record says {} ({!r}): training "
                            "takes the text's id, the record's id says otherwise".format(
                                text, lm.by_name[text], label, lm.by_id[label]), obj)
        return None
    if bad:
        return None
    return text if text is not None else lm.by_id[label]


def intact(files):
    """{file: how many records are whole (both CRCs checked)} and the findings for damaged tails;
    a file that is no TFRecord from its first byte is bad input (UserError)."""
    counts, out = {}, []
    for path in files:
        buf = _open(path)
        n = 0
        try:
            for n, _start, _end in R.frames(buf, verify=True):
                n += 1
        except R.Damaged as exc:
            if exc.index == 0:
                raise UserError("not a TFRecord file: {}".format(exc.reason), where=path,
                                fix="pass TFRecord files (train.record, ...), not images or CSVs")
            out.append(finding(ERROR, "record", path, exc.index, "{}: TensorFlow stops reading this file here "
                               "(DataLossError), the records from here on are lost".format(exc.reason)))
        if n == 0:
            out.append(finding(ERROR, "record", path, None, "no examples (an empty record file)"))
        counts[path] = n
    return counts, out


def _open(path):
    try:
        return R.open_map(path)
    except (OSError, ValueError) as exc:
        raise UserError("cannot read the record file: {}".format(exc), where=path,
                        fix="pass readable TFRecord files (the output of `odrun convert`, generate_tfrecord.py, ...)")


def scan(files, lm, counts=None, full=True):
    """Every example -> (examples [info], findings). counts: {file: whole records} from `intact`
    (read that many, CRCs already checked); None: check the framing lengths here, CRCs not."""
    if counts is None:
        counts, out = intact_lengths(files)
    else:
        out = []
    examples = []
    for path in files:
        buf = _open(path) if counts[path] else b""
        for index, start, end in R.frames(buf, verify=False):
            info, found = examine(buf, start, end, lm, path, index, full=full)
            out.extend(found)
            if info is not None:
                examples.append(info)
            if index + 1 >= counts[path]:
                break  # before the framing of a damaged tail is read again
    return examples, out


def intact_lengths(files):
    """`intact` without the CRCs (odrun train's quick pass: the image bytes are never paged in)."""
    counts, out = {}, []
    for path in files:
        n = 0
        try:
            for n, _start, _end in R.frames(_open(path), verify=False):
                n += 1
        except R.Damaged as exc:
            out.append(finding(ERROR, "record", path, exc.index, exc.reason))
        counts[path] = n
    return counts, out
