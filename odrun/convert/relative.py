"""Coordinates given as fractions of the image size (YOLO, Label Studio's percentages / 100):
scaled by the real size, read from the image bytes in the worker."""


def to_pixels(item, width, height):
    """-> the item with every `normalized` object's box and polygons in pixels."""
    objects = []
    for o in item["objects"]:
        if o.get("normalized"):
            o = dict(o, xmin=o["xmin"] * width, xmax=o["xmax"] * width, ymin=o["ymin"] * height,
                     ymax=o["ymax"] * height)
            if isinstance(o.get("segmentation"), list):
                o["segmentation"] = [[v * (width if i % 2 == 0 else height) for i, v in enumerate(part)]
                                     for part in o["segmentation"]]
            o.pop("normalized")
        objects.append(o)
    return dict(item, objects=objects)
