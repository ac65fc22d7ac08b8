"""The one image opener (issue 22): every verb that reads an image file (convert for boxes,
masks and classify, predict, detect, demo) goes through `read_bytes` / `open_file`, and
serve's decoder through `open_bytes`:

- regular files only: a FIFO, a device (`/dev/zero`), a socket or a symlink to one is refused
  after `os.stat` and before `open` (and the open itself is O_NONBLOCK, checked again with
  fstat, so a file swapped for a FIFO in between cannot hang us);
- size-capped before reading (`max_bytes`), and no more than the cap + 1 byte is ever read;
- a decoded-pixel cap (`max_pixels`, Pillow's MAX_IMAGE_PIXELS idea) checked from the header,
  before the pixels are decoded.

Refusals are `ImageRefused` (a UserError: exit 2, naming the file and the fix). Limits are data:
odcore/data/image_limits.yaml (ODSTACK_MAX_IMAGE_BYTES / ODSTACK_MAX_IMAGE_PIXELS override them).
Python 3.6-safe (odcore is copied into the TF 1.15 images).
"""
import io
import os
import stat

from odcore.errors import UserError

LIMITS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "image_limits.yaml")
ENV = {"max_bytes": "ODSTACK_MAX_IMAGE_BYTES", "max_pixels": "ODSTACK_MAX_IMAGE_PIXELS"}
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
FIX = "replace it with a regular JPEG/PNG file (or remove it)"
_CACHE = {}


class ImageRefused(UserError):
    """An image file that must not be read (not a regular file, too big, too many pixels)."""

    def __init__(self, message, where, fix=FIX):
        UserError.__init__(self, message, fix=fix, where=where)


def limits():
    """{'max_bytes': int, 'max_pixels': int}: the data file, then the environment."""
    if "limits" not in _CACHE:
        import yaml
        with open(LIMITS_FILE, encoding="utf-8") as f:
            _CACHE["limits"] = {k: int(v) for k, v in yaml.safe_load(f).items()}
    out = dict(_CACHE["limits"])
    for key, var in ENV.items():
        if os.environ.get(var, "").strip():
            try:
                out[key] = int(os.environ[var])
            except ValueError:
                raise UserError("{} must be a whole number, got {!r}".format(var, os.environ[var]), where=var,
                                fix="unset it or give e.g. {}".format(out[key]))
    return out


def _kind(mode):
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def check_file(path, max_bytes=None):
    """Refuse a path that is not a regular file (after symlinks) or is over the size cap; -> its size."""
    max_bytes = limits()["max_bytes"] if max_bytes is None else max_bytes
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ImageRefused("cannot read the image: {}".format(exc.strerror or exc), where=path)
    kind = _kind(st.st_mode)
    if kind:
        link = " (a symlink to {})".format(os.path.realpath(path)) if os.path.islink(path) else ""
        raise ImageRefused("is {}{}, not an image file: refused before opening it".format(kind, link), where=path)
    if st.st_size > max_bytes:
        raise ImageRefused("the file is {} bytes, over the image size cap of {} bytes".format(st.st_size, max_bytes),
                           where=path, fix=FIX + "; or raise the cap with {}=BYTES".format(ENV["max_bytes"]))
    return st.st_size


def read_bytes(path, max_bytes=None):
    """The bytes of one image file, through the checks above (never more than the cap)."""
    max_bytes = limits()["max_bytes"] if max_bytes is None else max_bytes
    check_file(path, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ImageRefused("cannot read the image: {}".format(exc.strerror or exc), where=path)
    with io.FileIO(fd, "r") as f:
        kind = _kind(os.fstat(fd).st_mode)  # swapped between stat and open?
        if kind:
            raise ImageRefused("is {}, not an image file: refused".format(kind), where=path)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageRefused("the file grew over the image size cap of {} bytes while read".format(max_bytes),
                           where=path)
    return data


def read_nonempty(path, data=None):
    """The image's bytes (DATA, else read_bytes(PATH)), an empty file refused too: what the converters
    check before they decode (each wraps the ImageRefused message in its own error type)."""
    if data is None:
        data = read_bytes(path)
    if not data:
        raise ImageRefused("the image file is empty (0 bytes)", where=path)
    return data


def check_pixels(width, height, where, max_pixels=None):
    max_pixels = limits()["max_pixels"] if max_pixels is None else max_pixels
    if width * height > max_pixels:
        raise ImageRefused("the image is {}x{} = {} pixels, over the decode cap of {} pixels".format(
            width, height, width * height, max_pixels), where=where,
            fix="downscale it (e.g. odrun convert --max-size), or raise the cap with {}=PIXELS".format(
                ENV["max_pixels"]))


def open_bytes(data, where, max_pixels=None):
    """A Pillow image (header read, pixels not yet decoded) whose size passed the pixel cap.
    Pillow's own errors propagate (callers word them); ImageRefused for the cap."""
    from PIL import Image
    max_pixels = limits()["max_pixels"] if max_pixels is None else max_pixels
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow's own bomb check: an error at 2x its limit (PIL/Image.py)
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageRefused("the image has over twice the decode cap of {} pixels".format(max_pixels), where=where,
                           fix="downscale it, or raise the cap with {}=PIXELS".format(ENV["max_pixels"]))
    check_pixels(im.size[0], im.size[1], where, max_pixels)
    return im


def open_file(path, max_bytes=None, max_pixels=None):
    """-> (bytes, Pillow image) of one image file through every check above."""
    data = read_bytes(path, max_bytes)
    return data, open_bytes(data, path, max_pixels)


def present(path):
    """True for anything at `path` but a folder: a reader that looks an image up by name uses this
    (not os.path.isfile), so a FIFO or a device is found and then refused by name by the opener."""
    return os.path.exists(path) and not os.path.isdir(path)
