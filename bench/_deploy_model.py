"""The export bench/serve.py and bench/detect_runtimes.py use when no --model is given: an SSD
MobileNet V2 (synthetic shapes, 40 steps) exported with all four forms, at 96 px (tiny, as
tests/test_export_serve.py) or at another input size (300 px: the template's default, a model
whose call costs what a real one does). Built once per size into
~/.cache/odstack/bench/deploy_model[_SIZE] (reused while it exists; `odrun cache clear bench`
removes it). Takes ~10 min on 2 busy CPU cores, mostly the TFLite and ONNX conversions."""
import os
import subprocess
import sys


TINY = 96


def export_dir(image_size=TINY):
    from odcore.cache import make_dir
    root = os.path.join(make_dir("bench"), "deploy_model" + ("" if image_size == TINY else "_{}".format(image_size)))
    export = os.path.join(root, "export")
    if os.path.isfile(os.path.join(export, "metadata.json")):
        return export
    from odrun.tasks.detect import synth
    odrun = os.path.join(os.path.dirname(sys.executable), "odrun")
    synth.generate(os.path.join(root, "images"), count=24, seed=3)
    for args in (["convert", os.path.join(root, "images"), "--out", os.path.join(root, "data")],
                 ["train", "--data", os.path.join(root, "data"), "--workdir", os.path.join(root, "run"),
                  "--steps", "40", "--checkpoint-every", "40", "--batch", "4", "--image-size", str(image_size)],
                 ["export", "--workdir", os.path.join(root, "run"), "--out", export,
                  "--format", "saved_model,frozen,onnx,tflite"]):
        subprocess.check_call([odrun] + args, stdout=subprocess.DEVNULL)
    return export
