"""`odrun convert --max-size N`: images larger than N px on their longer side are resized
(aspect ratio kept, Lanczos) before they go into the records, boxes rescaled with them; the
EXIF orientation is applied to the pixels and the boxes (so the record holds upright pixels,
which TensorFlow's decoder does not rotate). One tutorial resizes everything to 1000 px wide
with ImageMagick before labelling; this does the same after labelling, boxes included.

Boxes are in the stored (unrotated) pixel frame, as labelImg saves them (images.py).
"""
import io

# EXIF orientation -> Pillow transpose method name, and where a point (x, y) of a w x h stored
# image lands in the upright image (ImageOps.exif_transpose's table).
_METHOD = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
           6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}
_POINT = {2: lambda x, y, w, h: (w - x, y), 3: lambda x, y, w, h: (w - x, h - y),
          4: lambda x, y, w, h: (x, h - y), 5: lambda x, y, w, h: (y, x),
          6: lambda x, y, w, h: (h - y, x), 7: lambda x, y, w, h: (h - y, w - x),
          8: lambda x, y, w, h: (y, w - x)}
JPEG_QUALITY = 95


def orient_box(box, orientation, w, h):
    """(xmin, ymin, xmax, ymax) in the stored frame -> the upright frame."""
    if orientation not in _POINT:
        return box
    f = _POINT[orientation]
    (x0, y0), (x1, y1) = f(box[0], box[1], w, h), f(box[2], box[3], w, h)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def needed(info, max_size):
    return bool(max_size) and (max(info["width"], info["height"]) > max_size or bool(info["orientation"]))


def apply(info, objects, max_size):
    """-> (new info with the resized/upright bytes, objects with boxes in the new pixels)."""
    from PIL import Image

    w, h, orientation = info["width"], info["height"], info["orientation"]
    with Image.open(io.BytesIO(info["data"])) as im:
        im.load()
        icc = im.info.get("icc_profile")
        if orientation in _METHOD:
            im = im.transpose(getattr(Image, _METHOD[orientation], None) or
                              getattr(Image.Transpose, _METHOD[orientation]))
        uw, uh = im.size
        scale = min(1.0, float(max_size) / max(uw, uh))
        nw, nh = max(1, int(round(uw * scale))), max(1, int(round(uh * scale)))
        if (nw, nh) != (uw, uh):
            resample = getattr(Image, "LANCZOS", None) or Image.Resampling.LANCZOS
            im = im.resize((nw, nh), resample)
        out = io.BytesIO()
        if info["format"] == "jpeg":
            im = im.convert("RGB") if im.mode not in ("RGB", "L") else im
            im.save(out, format="JPEG", quality=JPEG_QUALITY, icc_profile=icc) if icc else \
                im.save(out, format="JPEG", quality=JPEG_QUALITY)
        else:
            im.save(out, format="PNG")
    sx, sy = nw / float(uw), nh / float(uh)
    moved = []
    for o in objects:
        x0, y0, x1, y1 = orient_box((o["xmin"], o["ymin"], o["xmax"], o["ymax"]), orientation, w, h)
        moved.append(dict(o, xmin=x0 * sx, ymin=y0 * sy, xmax=x1 * sx, ymax=y1 * sy))
    new = dict(info, data=out.getvalue(), width=nw, height=nh, orientation=None)
    return new, moved
