"""What the image bytes really are: format from the magic number, size from the header
(Pillow reads only the header here, not the pixels), EXIF orientation, truncation."""
import os

from odcore import imagefile

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXT_FORMAT = {".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png"}
# EXIF orientation values (TIFF 6.0 tag 0x0112) other than 1 mean a viewer rotates/flips the
# pixels; TensorFlow's decode_jpeg does not, so the boxes must match the stored pixels.
ORIENTATION = {2: "mirrored", 3: "rotated 180", 4: "flipped", 5: "mirrored + rotated 90 CCW",
               6: "rotated 90 CW", 7: "mirrored + rotated 90 CW", 8: "rotated 90 CCW"}


class BadImage(Exception):
    """The file cannot go into a record (message says why)."""


def sniff(data):
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if data.startswith(PNG_MAGIC):
        return "png"
    return None


def _truncated(fmt, data):
    if fmt == "jpeg":
        # End-of-image marker: entropy-coded data byte-stuffs 0xFF, so FF D9 near the end only
        # appears when the file is complete (a few writers append padding after it).
        return data.rfind(b"\xff\xd9", max(0, len(data) - 4096)) < 0
    return data.rfind(b"IEND", max(0, len(data) - 64)) < 0


def inspect(path, data=None):
    """-> dict(data, format, width, height, orientation, ext_format); raises BadImage."""
    try:
        data = imagefile.read_nonempty(path, data)  # the one opener: regular files only, size cap
    except imagefile.ImageRefused as exc:
        raise BadImage(exc.message)
    fmt = sniff(data)
    if fmt is None:
        # (never echo the bytes: an annotation may point at any file, e.g. /etc/passwd)
        raise BadImage("not a JPEG or PNG (no JPEG/PNG signature at the start of the file); the OD API "
                       "decodes JPEG and PNG")
    try:
        im = imagefile.open_bytes(data, path)  # header only; the decode pixel cap
        width, height = im.size
        orientation = None
        if fmt == "jpeg":
            exif = im.getexif() if hasattr(im, "getexif") else (im._getexif() or {})
            orientation = exif.get(0x0112)
    except imagefile.ImageRefused as exc:
        raise BadImage(exc.message)
    except Exception as exc:  # Pillow raises many types on a damaged header
        raise BadImage("corrupt {}: {}".format(fmt.upper(), exc))
    if width <= 0 or height <= 0:
        raise BadImage("corrupt {}: header says {}x{}".format(fmt.upper(), width, height))
    if _truncated(fmt, data):
        raise BadImage("corrupt {}: truncated (no end-of-image marker)".format(fmt.upper()))
    return {"data": data, "format": fmt, "width": width, "height": height,
            "orientation": orientation if orientation not in (None, 1) else None,
            "ext_format": EXT_FORMAT.get(os.path.splitext(path)[1].lower())}
