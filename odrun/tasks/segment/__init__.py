"""Instance segmentation (issue 16): masks from COCO polygons/RLE and labelme JSON into the
records as `create_coco_tf_record.py --include_masks=True` writes them, Mask R-CNN templates,
mask-aware detect output (reframed masks, COCO RLE, overlays) and the segment demo.

masks.py   rasterise + validate one annotation's segmentation (pycocotools, shapely), PNG bytes
labelme.py labelme JSON reader (polygon, rectangle, circle, mask shapes; group_id merges parts)
output.py  reframe detection_masks to the image, COCO RLE, per-instance PNGs
draw.py    translucent fills with outlines
demo.py    synthetic shapes with exact masks -> convert -> train -> eval -> export -> detect
"""
