"""Instance masks on an annotated image: a translucent fill in the class colour and a solid
outline (cv2.findContours), painted before the boxes and labels are drawn over them."""

from odrun.tasks.detect.draw import color_of

FILL_ALPHA = 0.45
OUTLINE_FRACTION = 1.0 / 250  # outline width as a fraction of the shorter side (at least 1 px)


def _color(class_id):
    return color_of(class_id)


def _rgb(color):
    color = color.lstrip("#")
    return tuple(int(color[i:i + 2], 16) for i in (0, 2, 4))


def overlay(image, masks, classes):
    """HxWx3 uint8 image with each [H, W] 0/1 mask filled (alpha FILL_ALPHA) and outlined."""
    import cv2
    import numpy as np
    out = np.array(image, dtype=np.uint8, copy=True)
    thickness = max(1, int(round(min(out.shape[:2]) * OUTLINE_FRACTION)))
    for mask, cls in zip(masks, classes):
        rgb = np.array(_rgb(_color(cls)), dtype=np.float32)
        on = mask.astype(bool)
        out[on] = (out[on] * (1.0 - FILL_ALPHA) + rgb * FILL_ALPHA).astype(np.uint8)
        found = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contours = found[0] if len(found) == 2 else found[1]  # OpenCV 4 / 3 return shapes
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in rgb), thickness)
    return out
