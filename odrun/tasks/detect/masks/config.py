"""Mask R-CNN configs in `odrun train`: which template `--task segment` starts from, whether a
config predicts masks, and the mismatches caught before TensorFlow starts (a mask model on records
without masks fails deep inside the input pipeline; box records for a mask model likewise)."""
import json
import os

from odcore.errors import UserError

DEFAULT_MODEL = {"tf2": "mask_rcnn_resnet50_small", "tf1": "mask_rcnn_inception_v2_coco"}


def default_model(task, api):
    """The template for `--task segment` without --model (None for other tasks)."""
    return DEFAULT_MODEL.get(api) if task == "segment" else None


def predicts_masks(config):
    """True for a Faster R-CNN config whose mask_rcnn_box_predictor predicts instance masks."""
    if config.model.WhichOneof("model") != "faster_rcnn":
        return False
    predictor = config.model.faster_rcnn.second_stage_box_predictor
    return (predictor.WhichOneof("box_predictor_oneof") == "mask_rcnn_box_predictor"
            and predictor.mask_rcnn_box_predictor.predict_instance_masks)


def data_has_masks(data_dir):
    """summary.json's instance_masks (None when the convert output predates it / is not ours)."""
    path = os.path.join(data_dir, "summary.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("instance_masks")
    except (OSError, ValueError):
        return None


def check_data(config, data_dir, model_name):
    """Mask model + records without masks (or the reverse): a clear error, before TensorFlow."""
    has = data_has_masks(data_dir) if data_dir else None
    if has is None:
        return
    wants = predicts_masks(config)
    if wants and not has:
        raise UserError("{} predicts instance masks but the records in {} have none".format(model_name, data_dir),
                        where="--data", fix="convert annotations that have polygons/RLE (odrun convert --masks), "
                                            "or train a box model (--model ssd_mobilenet_v2)")
    if has and not wants:
        for reader in [config.train_input_reader] + list(config.eval_input_reader):
            reader.load_instance_masks = False  # boxes-only model: the mask PNGs are simply not read
