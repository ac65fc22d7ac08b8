"""Annotated images that tell the truth: which label a reader sees is decided by a drawing plan.

`plan()` is pure logic (testable without pixels):
  1. keep detections at or above the threshold, best score first;
  2. optionally suppress overlapping boxes of any class (class-agnostic NMS, `agnostic_iou`);
  3. merge detections of different classes on the same box (IoU >= `same_box_iou`) into one label:
     the best class, and the runner-up in brackets when `runner_up` is set;
  4. size the font and the line width from the image (a 160 px image gets small labels);
  5. place each label, best first, at the first free spot of: above the box, inside its top edge,
     below the box, inside its bottom edge — clamped into the frame; a label that would cover a
     better label's text is dropped (its box is still drawn).
`render()` draws the plan worst-first, so the best label is painted last and never covered.
`annotate()` draws an image under MIN_SIDE px on an upscaled copy (the boxes are normalised).
Colours are per class id (the same class has the same colour in every image of a run).
"""
import collections

FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
         "/usr/share/fonts/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf"]
COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
          "#469990", "#9a6324", "#800000", "#000075"]
SAME_BOX_IOU = 0.9  # detections this close are one object the model was unsure about
FONT_FRACTION = 0.05  # font height as a fraction of the shorter image side
FONT_MIN, FONT_MAX = 8, 28
LINE_FRACTION = 1.0 / 200
MIN_SIDE = 400  # px: a smaller image is drawn on an upscaled copy, so its labels do not cover it

Label = collections.namedtuple("Label", "box color text text_box score class_id")


def color_of(class_id):
    return COLORS[int(class_id) % len(COLORS)]


def iou(a, b):
    """IoU of two (xmin, ymin, xmax, ymax) boxes; the OD API's (ymin, xmin, ymax, xmax) gives the same
    value (the two axes are treated alike), so the export checks use this one too."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def to_pixels(box, width, height):
    """OD API normalised [ymin, xmin, ymax, xmax] -> pixel (xmin, ymin, xmax, ymax)."""
    ymin, xmin, ymax, xmax = [float(v) for v in box]
    return (xmin * width, ymin * height, xmax * width, ymax * height)


def agnostic_nms(dets, iou_threshold):
    """Keep the best of every group of boxes overlapping by more than `iou_threshold`, any class.

    `dets`: (pixel_box, class_id, score) sorted best first. Returns the kept ones, same order.
    """
    kept = []
    for det in dets:
        if all(iou(det[0], k[0]) <= iou_threshold for k in kept):
            kept.append(det)
    return kept


def agnostic_filter(det, threshold, iou_threshold):
    """`det` (boxes/classes/scores and any per-box arrays, e.g. masks) without the boxes that
    class-agnostic NMS suppresses among those scoring >= threshold."""
    order = sorted((i for i, s in enumerate(det["scores"]) if float(s) >= threshold),
                   key=lambda i: -float(det["scores"][i]))
    kept = []
    for i in order:
        box = to_pixels(det["boxes"][i], 1.0, 1.0)
        if all(iou(box, to_pixels(det["boxes"][k], 1.0, 1.0)) <= iou_threshold for k in kept):
            kept.append(i)
    n = len(det["scores"])
    return {key: ([value[i] for i in kept] if hasattr(value, "__len__") and len(value) == n else value)
            for key, value in det.items()}


def merge_same_box(dets, same_box_iou=SAME_BOX_IOU):
    """Group detections of different classes on one box: [(best, [others…]), …], best first."""
    groups = []
    for det in dets:
        for group in groups:
            if iou(det[0], group[0][0]) >= same_box_iou:
                group[1].append(det)
                break
        else:
            groups.append((det, []))
    return groups


def sizes(width, height):
    """(font size, line width) scaled to the image."""
    short = min(width, height)
    font_size = int(round(min(FONT_MAX, max(FONT_MIN, short * FONT_FRACTION))))
    return font_size, max(1, int(round(short * LINE_FRACTION)))


def label_text(best, others, names, runner_up):
    text = "{} {:.0%}".format(names.get(int(best[1]), str(int(best[1]))), best[2])
    if runner_up and others:
        second = others[0]
        text += " ({} {:.0%})".format(names.get(int(second[1]), str(int(second[1]))), second[2])
    return text


def plan(boxes, classes, scores, names, threshold, width, height, measure,
         agnostic_iou=None, same_box_iou=SAME_BOX_IOU, runner_up=False):
    """The labels to draw, best first. `measure(text) -> (w, h)` of the text at the plan's font size."""
    dets = sorted(((to_pixels(b, width, height), int(c), float(s))
                   for b, c, s in zip(boxes, classes, scores) if float(s) >= threshold),
                  key=lambda d: -d[2])
    groups = merge_same_box(dets, same_box_iou)  # before NMS, which would drop the runner-up class
    if agnostic_iou is not None:
        kept = agnostic_nms([best for best, _ in groups], agnostic_iou)
        groups = [g for g in groups if any(g[0] is k for k in kept)]
    labels, placed = [], []
    for best, others in groups:
        text = label_text(best, others, names, runner_up)
        tw, th = measure(text)
        spot = _place(best[0], tw, th, width, height, placed)
        if spot is not None:
            placed.append(spot)
        labels.append(Label(best[0], color_of(best[1]), text if spot else None, spot, best[2], best[1]))
    return labels


def _place(box, tw, th, width, height, taken):
    """The first candidate text box inside the frame that overlaps no taken one, else None."""
    x0 = min(max(0.0, box[0]), max(0.0, width - tw))
    candidates = [box[1] - th, box[1], box[3], box[3] - th]
    for y in candidates:
        y = min(max(0.0, y), max(0.0, height - th))
        spot = (x0, y, x0 + tw, y + th)
        if not any(_overlap(spot, t) for t in taken):
            return spot
    return None


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def font(size):
    from PIL import ImageFont
    for candidate in FONTS:
        try:
            return ImageFont.truetype(candidate, size)
        except (OSError, IOError):
            continue
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 scales its built-in font
    except TypeError:
        return ImageFont.load_default()


def render(image, labels, font_size, line_width):
    """Draw `labels` (from plan()) on a copy of the RGB array; returns a PIL image."""
    from PIL import Image, ImageDraw
    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    fnt = font(font_size)
    pad = max(1, font_size // 8)
    for label in labels:  # boxes first, all of them, so no box line crosses a label
        draw.rectangle(label.box, outline=label.color, width=line_width)
    for label in reversed(labels):  # worst first: the best label is painted last, on top
        if label.text:
            draw.rectangle(label.text_box, fill=label.color)
            draw.text((label.text_box[0] + pad, label.text_box[1]), label.text, fill="white", font=fnt)
    return im


def upscaled(image, min_side=MIN_SIDE):
    """The RGB array enlarged by the smallest whole factor that makes its shorter side >= min_side
    (bicubic), or the array itself when it is large enough."""
    import numpy as np
    from PIL import Image
    height, width = image.shape[:2]
    short = min(height, width)
    if short <= 0 or short >= min_side:
        return image
    factor = -(-min_side // short)  # ceil
    return np.asarray(Image.fromarray(image).resize((width * factor, height * factor), Image.BICUBIC))


def annotate(image, det, names, threshold, agnostic_iou=None, runner_up=False):
    """Plan + render one image's detections (det: boxes/classes/scores as the detector returns,
    boxes normalised) on upscaled(image): labels of a 128 px image no longer cover it."""
    from PIL import Image, ImageDraw
    image = upscaled(image)
    height, width = image.shape[:2]
    font_size, line_width = sizes(width, height)
    fnt = font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad = max(1, font_size // 8)

    def measure(text):
        left, top, right, bottom = probe.textbbox((0, 0), text, font=fnt)
        return right + 2 * pad, max(bottom, font_size) + pad

    labels = plan(det["boxes"], det["classes"], det["scores"], names, threshold, width, height, measure,
                  agnostic_iou=agnostic_iou, runner_up=runner_up)
    return render(image, labels, font_size, line_width), labels
