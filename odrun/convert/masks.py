"""One annotation's segmentation -> a checked binary mask and its PNG bytes.

Accepted forms (COCO's, which CVAT's "COCO 1.0" export and odrun's labelme reader also use):
  polygons          [[x0, y0, x1, y1, ...], ...]           (iscrowd 0; parts of one object)
  uncompressed RLE  {"size": [h, w], "counts": [n0, n1, ...]} (iscrowd 1 in COCO/CVAT)
  compressed RLE    {"size": [h, w], "counts": "string"}     (pycocotools' encode output)

Rasterising is pycocotools.mask's (frPyObjects/merge/decode), the same calls as the OD API's
create_coco_tf_record.py; each mask goes into `image/object/mask` as an 8-bit grayscale PNG with
values 0/1, which `TfExampleDecoder(load_instance_masks=True, instance_mask_type=PNG_MASKS)` reads.
Validation names the file and the object: a polygon with < 3 points, zero area or a
self-intersection (shapely's explain_validity), a polygon wholly outside the image (partly
outside: clipped, warning), an RLE whose size is not the image's or whose counts do not add up,
an empty mask, and a bbox that does not match the mask's extent.
"""
import io
import math

from odrun.convert import problems as P

# A given bbox edge may differ from the mask's extent by this many pixels, or this fraction
# of the box's size (polygon boxes are float, the mask's extent whole pixels).
BOX_TOLERANCE_PX = 2.0
BOX_TOLERANCE_FRAC = 0.1
PNG_COMPRESS_LEVEL = 1  # zlib level: binary masks compress nearly as well at 1 as at 6, 3x faster


def _mask_api():
    from pycocotools import mask as mask_api
    return mask_api


def _fmt(v):
    return "{:g}".format(round(float(v), 2))


def _polygon_problems(poly, k, width, height):
    """-> (list of (level, message)) for polygon part k (0-based)."""
    label = "polygon #{}".format(k + 1)
    if not isinstance(poly, (list, tuple)) or not all(isinstance(v, (int, float)) for v in poly):
        return [(P.ERROR, "{} must be a flat list of numbers [x0, y0, x1, y1, ...]".format(label))]
    if len(poly) % 2:
        return [(P.ERROR, "{} has an odd number of coordinates ({}): x and y must pair up".format(label, len(poly)))]
    if len(poly) < 6:
        return [(P.ERROR, "{} has {} point(s): a polygon needs at least 3".format(label, len(poly) // 2))]
    if not all(math.isfinite(v) for v in poly):
        return [(P.ERROR, "{} has a NaN or infinite coordinate".format(label))]
    from shapely.geometry import Polygon, box
    from shapely.validation import explain_validity

    shape = Polygon(list(zip(poly[0::2], poly[1::2])))
    valid = shape.is_valid
    area = shape.area if valid else shape.buffer(0).area  # a bow-tie's signed halves cancel out
    if area <= 0:
        return [(P.ERROR, "{} has zero area (its points are collinear or repeated)".format(label))]
    found = []
    if not valid:
        found.append((P.ERROR, "{} is not a simple polygon: {} (redraw it without crossing edges)".format(
            label, explain_validity(shape))))
    xs, ys = poly[0::2], poly[1::2]
    if min(xs) < 0 or min(ys) < 0 or max(xs) > width or max(ys) > height:
        inside = (shape if valid else shape.buffer(0)).intersection(box(0, 0, width, height)).area
        extent = "x {}..{}, y {}..{}".format(_fmt(min(xs)), _fmt(max(xs)), _fmt(min(ys)), _fmt(max(ys)))
        if inside <= 0:
            found.append((P.ERROR, "{} lies outside the {}x{} image ({})".format(label, width, height, extent)))
        else:
            found.append((P.WARNING, "{} reaches outside the {}x{} image ({}): the mask is clipped to it".format(
                label, width, height, extent)))
    return found


def _whole(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 1 \
        and float(v).is_integer()


def compressed_counts(counts):
    """Run lengths of pycocotools' compressed RLE string (maskApi.c: rleFrString, the inverse of
    rleToString: 5 bits per char + 48, 0x20 = more, 0x10 = sign; from the 3rd run on, deltas of the
    run two before). None when a character is outside that alphabet."""
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", "replace")
    out, p, n = [], 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                return None
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def _counts_problem(runs, width, height):
    if runs is None:
        return "RLE counts is not a valid pycocotools compressed string (damaged or cut short)"
    if any(r < 0 for r in runs):
        return "RLE counts decode to a negative run length: the string is damaged"
    if sum(runs) != height * width:
        return "RLE counts add up to {} pixels, the {}x{} image has {}".format(sum(runs), width, height, height * width)
    return None


def _rle_problems(seg, width, height):
    size = seg.get("size")
    counts = seg.get("counts")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_whole(v) for v in size)):
        return [(P.ERROR, "RLE needs size: [height, width], two positive whole numbers")]
    if [int(size[0]), int(size[1])] != [height, width]:
        return [(P.ERROR, "RLE size is [{}, {}] (height, width) but the image is {}x{} (width x height): the "
                          "mask was made for another image or resolution".format(size[0], size[1], width, height))]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            return [(P.ERROR, "RLE counts must be non-negative integers")]
        if sum(counts) != height * width:
            return [(P.ERROR, "RLE counts add up to {} pixels, the {}x{} image has {}".format(
                sum(counts), width, height, height * width))]
    elif isinstance(counts, (str, bytes)):
        problem = _counts_problem(compressed_counts(counts), width, height)
        if problem:
            return [(P.ERROR, problem)]
    else:
        return [(P.ERROR, "RLE counts must be a list of run lengths or a compressed string")]
    return []


def to_rle(seg, width, height):
    """One pycocotools RLE (merged over polygon parts) for an already checked segmentation."""
    mask_api = _mask_api()
    if isinstance(seg, dict):
        if isinstance(seg["counts"], list):
            return mask_api.frPyObjects(seg, height, width)
        counts = seg["counts"]
        return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_api.merge(mask_api.frPyObjects([list(map(float, p)) for p in seg], height, width))


def check(seg, width, height):
    """-> (RLE or None, [(level, message)]) for one segmentation on a width x height image."""
    if isinstance(seg, dict):
        found = _rle_problems(seg, width, height)
    elif isinstance(seg, (list, tuple)) and seg:
        found = []
        for k, poly in enumerate(seg):
            found += _polygon_problems(poly, k, width, height)
    else:
        return None, [(P.ERROR, "segmentation must be polygons [[x, y, ...]] or an RLE {size, counts}")]
    if any(level == P.ERROR for level, _ in found):
        return None, found
    try:
        rle = to_rle(seg, width, height)
    except (TypeError, ValueError) as exc:  # pycocotools' message on a malformed compressed string
        return None, found + [(P.ERROR, "cannot decode the RLE: {}".format(exc))]
    if _mask_api().area(rle) == 0:
        found.append((P.ERROR, "the mask is empty (no pixel inside the image)"))
        return None, found
    return rle, found


def mask_box(rle):
    """(xmin, ymin, xmax, ymax) of the mask's pixels."""
    x, y, w, h = [float(v) for v in _mask_api().toBbox(rle)]
    return x, y, x + w, y + h


def box_problem(given, extent):
    """A message if the annotation's box does not match the mask's extent, else None."""
    tol = max(BOX_TOLERANCE_PX, BOX_TOLERANCE_FRAC * max(extent[2] - extent[0], extent[3] - extent[1]))
    if all(abs(a - b) <= tol for a, b in zip(given, extent)):
        return None
    return ("bbox ({}) does not match its mask, whose pixels span ({}); fix the box or the mask "
            "(or delete the bbox to have it derived from the mask)".format(
                ", ".join(map(_fmt, given)), ", ".join(map(_fmt, extent))))


def decode(rle):
    """HxW uint8 0/1."""
    return _mask_api().decode(rle)


def png_bytes(mask):
    """8-bit grayscale PNG of a 0/1 mask (create_coco_tf_record's encoding; any zlib level
    decodes to the same pixels)."""
    import numpy as np
    from PIL import Image
    out = io.BytesIO()
    # pycocotools decodes column-major; Pillow copies a non-C-contiguous array pixel by pixel (3x slower)
    Image.fromarray(np.ascontiguousarray(mask)).save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()


def attach(item, width, height):
    """Worker step for an item converted with masks: check each object's segmentation, set its
    box from the mask when none was given (or check the given one), add `mask_png`.
    -> (objects, problems); objects with an error are left out."""
    kept, found, ann = [], [], item["ann"]
    for obj in item["objects"]:
        where = obj["where"]
        seg = obj.get("segmentation")
        if seg is None:
            found.append(P.error(ann, "no segmentation: every object needs a mask when converting with masks "
                                      "(or convert with --no-masks for boxes only)", where))
            continue
        rle, issues = check(seg, width, height)
        for level, message in issues:
            found.append(P.problem(level, ann, message, where))
        if rle is None:
            continue
        extent = mask_box(rle)
        if obj.get("xmin") is None:
            obj = dict(obj, xmin=extent[0], ymin=extent[1], xmax=extent[2], ymax=extent[3])
        else:
            message = box_problem((obj["xmin"], obj["ymin"], obj["xmax"], obj["ymax"]), extent)
            if message:
                found.append(P.error(ann, message, where))
                continue
        obj = dict(obj, mask_png=png_bytes(decode(rle)))
        obj.pop("segmentation", None)
        kept.append(obj)
    return kept, found


def apply_mode(items, mode, where):
    """Decide whether this conversion writes masks: mode True (--masks), False (--no-masks) or
    None (automatic: when any object has a segmentation). Marks the items; returns
    (masks on?, problems)."""
    has = any(o.get("segmentation") is not None for it in items for o in it["objects"])
    found = []
    if mode is True and not has:
        found.append(P.error(where, "--masks given but no annotation has a segmentation (polygons or RLE)"))
    on = has if mode is None else bool(mode)
    for it in items:
        if on:
            it["masks"] = True
            continue
        for o in it["objects"]:
            o.pop("segmentation", None)
            if o.get("xmin") is None:
                found.append(P.error(it["ann"], "no bbox (only a mask): convert with masks, or add the bbox",
                                     o["where"]))
    return on and has, found
