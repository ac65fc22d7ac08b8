"""The demos' synthetic sets (odrun/data/demo.yaml, issue 25): TF-free checks that what the segment
and box demos train on is the easy set the README promises (large, high-contrast shapes, one colour
per class) and that their models exist. That these sets are learnable in the demo's steps (mask
mAP@.50 >= 0.3, box mAP@.50 >= 0.4) is measured by the full demos (README), minutes of CPU each."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import have_module, require
from odrun.tasks.detect import synth as box_synth
from odrun.tasks.detect.config import pipeline
from odrun.tasks.detect.masks import synth as mask_synth
from odrun.ui.stages import settings


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_demo_models_exist_for_tf2(task):
    model = settings(task)["model"]
    assert model is None or os.path.exists(pipeline.template_path("tf2", model))


def test_segment_demo_set_is_large_high_contrast_one_colour_per_class(tmp_path):
    require(have_module("pycocotools"), "pycocotools not installed (run scripts/setup.sh)")
    cfg = settings("segment")["synth"]
    path, truth = mask_synth.generate(str(tmp_path), count=12, seed=0, **cfg)
    doc = json.load(open(path))
    side = min(cfg["width"], cfg["height"])
    per_image = {}
    for a in doc["annotations"]:
        per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
    assert set(per_image.values()) <= set(range(1, cfg["max_objects"] + 1)) and len(per_image) == 12
    colours = {}
    for im in doc["images"]:
        pixels = np.asarray(Image.open(str(tmp_path / im["file_name"])).convert("RGB")).astype(int)
        for a, mask in zip([a for a in doc["annotations"] if a["image_id"] == im["id"]], truth[im["file_name"]]):
            inside = pixels[mask > 0].mean(axis=0)
            assert max(a["bbox"][2], a["bbox"][3]) >= side / cfg["sizes"][0] - 1
            colours.setdefault(a["category_id"], []).append(inside)
        background = pixels[np.sum(truth[im["file_name"]], axis=0) == 0]
        assert np.percentile(background, 95) < 110, "dark background (JPEG edges aside): every shape stands out"
    for cat, seen in colours.items():
        assert np.ptp(np.array(seen), axis=0).max() < 40, "one colour per class ({})".format(cat)


def test_box_demo_set_takes_the_same_knobs(tmp_path):
    cfg = settings("detect")["synth"]
    paths = box_synth.generate(str(tmp_path), count=4, seed=0, **cfg)
    assert len(paths) == 4
    im = Image.open(paths[0])
    assert im.size == (cfg["width"], cfg["height"])


def test_segment_demo_overrides_fit_its_template():
    """demo.yaml's --set lines for the segment demo name real fields of its template (a typo would
    fail only minutes into the demo) and give the cheaper, steadier model the README measured."""
    require(have_module("object_detection"), "the OD API is not installed (run scripts/setup.sh)")
    cfg = settings("segment")
    config = pipeline.fill(pipeline.load(pipeline.template_path("tf2", cfg["model"])), num_steps=700,
                           overrides=cfg["overrides"])
    frcnn = config.model.faster_rcnn
    assert frcnn.first_stage_max_proposals == frcnn.second_stage_batch_size == 8
    lr = config.train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate
    assert lr.total_steps == 700 and 0 < lr.warmup_learning_rate < lr.learning_rate_base <= 0.005
