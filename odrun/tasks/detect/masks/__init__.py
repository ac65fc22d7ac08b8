"""Instance segmentation (issue 16; the rasteriser is odrun/convert/masks.py, the labelme reader
odrun/convert/labelme.py): masks from COCO polygons/RLE and labelme JSON into the
records as `create_coco_tf_record.py --include_masks=True` writes them, Mask R-CNN templates,
mask-aware detect output (reframed masks, COCO RLE, overlays) and the segment demo.

config.py  Mask R-CNN templates, the records' masks vs the model
synth.py   synthetic shapes with exact masks (the segment demo's data)
output.py  reframe detection_masks to the image, COCO RLE, per-instance PNGs
draw.py    translucent fills with outlines
demo.py    synthetic shapes with exact masks -> convert -> train -> eval -> export -> detect
"""


def add_mask_flags(parser):
    """`odrun convert --masks / --no-masks` (default: masks when the annotations have them)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--masks", dest="masks", action="store_true", default=None,
                       help="write instance masks (image/object/mask, PNG per object, as create_coco_tf_record.py "
                            "--include_masks): COCO/CVAT polygons, RLE and crowd regions, labelme shapes; every "
                            "object then needs a segmentation (default: on when the annotations have any)")
    group.add_argument("--no-masks", dest="masks", action="store_false",
                       help="boxes only, even when the annotations have segmentations")
