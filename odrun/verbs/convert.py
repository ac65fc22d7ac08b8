"""`odrun convert`: annotations (Pascal VOC from labelImg/CVAT, COCO JSON, xml_to_csv.py's CSV) to
the OD API's TFRecords + label_map.pbtxt + train/test CSVs + summary.json (odrun.convert), or
class folders to the slim TFRecords (`--task classify`). Imports no TensorFlow."""

from odrun import tasks, verbs
from odrun.tasks.detect.masks import add_mask_flags


def add_parser(subparsers):
    p = subparsers.add_parser(
        "convert", help="annotations (VOC/COCO/CSV) -> train/test TFRecords + label map",
        description="Convert Pascal VOC XML (labelImg, CVAT), COCO instances JSON or the CSV of xml_to_csv.py "
                    "(filename,width,height,class,xmin,ymin,xmax,ymax) into the TF Object Detection "
                    "API's train/test TFRecords, label_map.pbtxt, train_labels.csv/test_labels.csv "
                    "and summary.json. Nothing is written unless the whole input is valid.")
    p.add_argument("source", nargs="?", help="VOC folder (*.xml), COCO .json or .csv")
    p.add_argument("--out", required=True, metavar="DATA_DIR", help="output folder")
    p.add_argument("--format", dest="fmt", choices=["voc", "coco", "csv", "labelme", "yolo", "labelstudio"],
                   help="input format (default: from SOURCE: folder=voc, .json=coco, .csv=csv; labelme JSON "
                        "files or a folder of them=labelme; images/+labels/ or data.yaml=yolo; a Label Studio JSON export=labelstudio)")
    p.add_argument("--split", type=float, default=None,
                   help="train fraction (default 0.8; if SOURCE has train/ and test/ folders, the "
                        "layout xml_to_csv.py reads, those are used unless --split is given)")
    p.add_argument("--train", dest="train_dir", metavar="DIR", help="use this folder as the train split")
    p.add_argument("--test", dest="test_dir", metavar="DIR", help="use this folder as the test split")
    p.add_argument("--label-map", metavar="FILE", help="use these class ids; a class not in it is an error")
    p.add_argument("--images", dest="image_dir", metavar="DIR",
                   help="image folder (default: beside each XML / the JSON / the CSV, or a sibling "
                        "images/ or JPEGImages/ folder)")
    p.add_argument("--shards", type=int, help="files per split, train.record-00000-of-0000N")
    p.add_argument("--seed", type=int, help="split seed: same seed, same split")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--strict", action="store_true", help="treat every warning as an error")
    p.add_argument("--allow-outside-images", action="store_true",
                   help="accept image paths that lead outside the dataset folders ('../', absolute paths, "
                        "symlinks); refused by default")
    p.add_argument("--skip-empty", action="store_true", help="drop images without objects")
    p.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p.add_argument("--check", action="store_true",
                   help="validate everything and write DATA_DIR/report.png, but no records (the conversion "
                        "runs into a temporary folder that is removed)")
    p.add_argument("--max-size", type=int, default=None, metavar="PX",
                   help="resize images whose longer side exceeds PX (aspect ratio kept, boxes rescaled, EXIF "
                        "orientation applied to pixels and boxes), as the tutorials do with ImageMagick before "
                        "labelling (default: keep the images as they are)")
    p.add_argument("--input-size", type=int, default=None, metavar="PX",
                   help="model input size for the report's size warnings: images smaller than it, boxes "
                        "too small at it (default 300, the default template's)")
    add_mask_flags(p)
    tasks.add_task_flag(p, "; classify: SOURCE holds one sub-folder per class")
    verbs.finish(p, "convert", run)


def run(args):
    return tasks.run_verb("convert", args, ensure_ascii=False)
