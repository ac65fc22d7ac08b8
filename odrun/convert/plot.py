"""The few chart types report.png needs (bars, histograms, scatter, reference lines, legends),
drawn with Pillow: importing and drawing with matplotlib was ~0.8 s of CPU, most of a 300-image
`odrun convert` and a large part of `odrun inspect` (bench/README.md). Same look: tab10 colours,
DejaVu Sans (matplotlib's font, read from its package or the system without importing it)."""
import bisect
import importlib.util
import math
import os

from PIL import Image, ImageDraw, ImageFont

TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
         "#bcbd22", "#17becf")
AXIS, TEXT, GRID = "#000000", "#000000", "#b0b0b0"
FONT_FILE = "DejaVuSans.ttf"
_FONTS = {}


def _font_path():
    spec = importlib.util.find_spec("matplotlib")
    places = [os.path.join(p, "mpl-data", "fonts", "ttf") for p in (spec.submodule_search_locations or [])] \
        if spec else []
    places += ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/usr/share/fonts/dejavu"]
    return next((os.path.join(d, FONT_FILE) for d in places if os.path.isfile(os.path.join(d, FONT_FILE))), None)


def font(size):
    """DejaVu Sans at `size` px (Pillow's built-in bitmap font where it is not found)."""
    if size not in _FONTS:
        path = _font_path()
        try:
            _FONTS[size] = ImageFont.truetype(path, size) if path else ImageFont.load_default()
        except OSError:
            _FONTS[size] = ImageFont.load_default()
    return _FONTS[size]


def text_size(draw, text, f):
    try:
        box = draw.textbbox((0, 0), text, font=f)
        return box[2] - box[0], box[3] - box[1]
    except (ValueError, TypeError, AttributeError):  # a bitmap font on an older Pillow
        return 6 * len(text), 11


def put(draw, xy, text, f, anchor="la"):
    """Text at xy by its anchor (Pillow's two letters: l/m/r, t/m/b/a)."""
    if isinstance(f, ImageFont.FreeTypeFont):
        draw.text(xy, text, fill=TEXT, font=f, anchor=anchor)
    else:  # the bitmap fallback font: Pillow ignores (or refuses) anchors, place it by its size
        w, h = text_size(draw, text, f)
        dx = {"l": 0, "m": w / 2, "r": w}[anchor[0]]
        dy = {"t": 0, "a": 0, "m": h / 2, "b": h, "d": h}[anchor[1]]
        draw.text((xy[0] - dx, xy[1] - dy), text, fill=TEXT, font=f)


def centered(draw, xy, text, size, anchor="mt"):
    put(draw, xy, text, font(size), anchor)


def nice_ticks(lo, hi, count=6):
    """Round tick values covering [lo, hi] (1, 2, 5 x 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1 if math.isfinite(lo) else 1
        lo = lo if math.isfinite(lo) else 0
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return ticks


def _label(v):
    return "{:g}".format(round(v, 6))


class Panel(object):
    """One chart in box (x0, y0, x1, y1) of the image (the plotting area, axes labels outside it)."""

    def __init__(self, image, box, xlim, ylim, title=None, xlabel=None, ylabel=None):
        self.im, self.draw, self.box = image, ImageDraw.Draw(image), box
        self.xlim, self.ylim = _pad(xlim), _pad(ylim)
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel

    def px(self, x, y):
        (x0, y0, x1, y1), (a, b), (c, d) = self.box, self.xlim, self.ylim
        return x0 + (x - a) / (b - a) * (x1 - x0), y1 - (y - c) / (d - c) * (y1 - y0)

    def frame(self, xticks=None, xticklabels=None, rotate=False):
        """Axes box, ticks and their labels, title, axis labels."""
        x0, y0, x1, y1 = self.box
        d, f = self.draw, font(11)
        ticks = xticks if xticks is not None else [t for t in nice_ticks(*self.xlim) if self.xlim[0] <= t <= self.xlim[1]]
        labels = xticklabels if xticklabels is not None else [_label(t) for t in ticks]
        for t, text in zip(ticks, labels):
            x = self.px(t, self.ylim[0])[0]
            d.line([(x, y1), (x, y1 + 4)], fill=AXIS)
            if rotate:
                self._rotated(text, x, y1 + 6)
            else:
                put(d, (x, y1 + 6), text, f, "mt")
        for t in (t for t in nice_ticks(*self.ylim) if self.ylim[0] <= t <= self.ylim[1]):
            y = self.px(self.xlim[0], t)[1]
            d.line([(x0 - 4, y), (x0, y)], fill=AXIS)
            put(d, (x0 - 6, y), _label(t), f, "rm")
        d.rectangle(self.box, outline=AXIS)
        if self.title:
            centered(d, ((x0 + x1) / 2, y0 - 8), self.title, 14, anchor="mb")
        if self.xlabel:
            centered(d, ((x0 + x1) / 2, y1 + (48 if rotate else 22)), self.xlabel, 12)
        if self.ylabel:
            self._ylabel(self.ylabel)

    def _rotated(self, text, x, y):
        f = font(11)
        w, h = text_size(self.draw, text, f)
        tile = Image.new("L", (w + 4, h + 6), 0)
        ImageDraw.Draw(tile).text((2, 0), text, fill=255, font=f)
        tile = tile.rotate(30, expand=True)
        self.im.paste(Image.new("RGB", tile.size, TEXT), (int(x - tile.size[0]), int(y)), tile)

    def _ylabel(self, text):
        f = font(12)
        w, h = text_size(self.draw, text, f)
        tile = Image.new("L", (w + 4, h + 6), 0)
        ImageDraw.Draw(tile).text((2, 0), text, fill=255, font=f)
        tile = tile.rotate(90, expand=True)
        x0, y0, x1, y1 = self.box
        self.im.paste(Image.new("RGB", tile.size, TEXT), (int(x0 - 48 - tile.size[0]), int((y0 + y1 - tile.size[1]) / 2)),
                      tile)

    def bars(self, lefts, rights, heights, color, bottoms=None):
        for i, (a, b, h) in enumerate(zip(lefts, rights, heights)):
            base = bottoms[i] if bottoms is not None else 0
            if h > 0:
                p, q = self.px(a, base + h), self.px(b, base)
                self.draw.rectangle([p[0], p[1], q[0], q[1]], fill=color)

    def hist(self, values, edges, color=TAB10[0]):
        counts = histogram(values, edges)
        self.bars(edges[:-1], edges[1:], counts, color)
        return counts

    def scatter(self, xs, ys, color, r=2):
        for x, y in zip(xs, ys):
            if math.isfinite(x) and math.isfinite(y):
                px, py = self.px(x, y)
                self.draw.ellipse([px - r, py - r, px + r, py + r], fill=color)

    def vline(self, x, color="#ff0000"):
        px = self.px(x, self.ylim[0])[0]
        if self.box[0] <= px <= self.box[2]:
            _dashed(self.draw, (px, self.box[1]), (px, self.box[3]), color)

    def hline(self, y, color="#ff0000"):
        py = self.px(self.xlim[0], y)[1]
        if self.box[1] <= py <= self.box[3]:
            _dashed(self.draw, (self.box[0], py), (self.box[2], py), color)

    def legend(self, entries, corner="tr", size=10):
        """entries: [(colour, label, "box"|"dot"|"dash")], in a framed box in a corner."""
        f = font(size)
        width = max([text_size(self.draw, t, f)[0] for _c, t, _k in entries] + [0]) + 34
        height = 6 + (size + 6) * len(entries)
        x0, y0, x1, y1 = self.box
        left = x1 - width - 6 if corner[1] == "r" else x0 + 6
        top = {"t": y0 + 6, "m": (y0 + y1 - height) / 2}.get(corner[0], y1 - height - 6)
        self.draw.rectangle([left, top, left + width, top + height], fill="#ffffff", outline="#cccccc")
        for i, (color, text, kind) in enumerate(entries):
            y = top + 4 + i * (size + 6) + (size + 2) / 2
            if kind == "dash":
                _dashed(self.draw, (left + 5, y), (left + 25, y), color)
            elif kind == "dot":
                self.draw.ellipse([left + 12, y - 3, left + 18, y + 3], fill=color)
            else:
                self.draw.rectangle([left + 6, y - 4, left + 24, y + 4], fill=color)
            put(self.draw, (left + 30, y), text, f, "lm")


def _pad(lim):
    lo, hi = (float(v) for v in lim)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi <= lo:
        return lo - 0.5, hi + 0.5
    return lo, hi


def _dashed(draw, a, b, color, dash=6, gap=4):
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    if length == 0:
        return
    ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
    t = 0.0
    while t < length:
        e = min(t + dash, length)
        draw.line([(a[0] + ux * t, a[1] + uy * t), (a[0] + ux * e, a[1] + uy * e)], fill=color, width=1)
        t = e + gap


def histogram(values, edges):
    """Counts per [edge_i, edge_i+1) (the last bin closed), as numpy.histogram; NaN and values outside: none."""
    counts = [0] * (len(edges) - 1)
    for v in values:
        if edges[0] <= v <= edges[-1]:  # (NaN compares False)
            counts[min(bisect.bisect_right(edges, v) - 1, len(counts) - 1)] += 1
    return counts


def spread(lo, hi, bins):
    """bins + 1 equal edges over [lo, hi] (a unit range around a single value)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return [lo + (hi - lo) * i / bins for i in range(bins + 1)]
