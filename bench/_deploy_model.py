"""The export bench/serve.py and bench/detect_runtimes.py use when no --model is given: a tiny SSD
(synthetic shapes, 40 steps at 96 px, as tests/test_export_serve.py) exported with all four forms.
Built once into ~/.cache/odstack/bench/deploy_model (reused while it exists; `odrun cache clear
bench` removes it). Takes ~10 min on 2 busy CPU cores, mostly the TFLite and ONNX conversions."""
import os
import subprocess
import sys


def export_dir():
    from odcore.cache import cache_dir
    root = os.path.join(cache_dir("bench"), "deploy_model")
    export = os.path.join(root, "export")
    if os.path.isfile(os.path.join(export, "metadata.json")):
        return export
    from odrun import synth
    odrun = os.path.join(os.path.dirname(sys.executable), "odrun")
    synth.generate(os.path.join(root, "images"), count=24, seed=3)
    for args in (["convert", os.path.join(root, "images"), "--out", os.path.join(root, "data")],
                 ["train", "--data", os.path.join(root, "data"), "--workdir", os.path.join(root, "run"),
                  "--steps", "40", "--checkpoint-every", "40", "--batch", "4", "--image-size", "96"],
                 ["export", "--workdir", os.path.join(root, "run"), "--out", export,
                  "--format", "saved_model,frozen,onnx,tflite"]):
        subprocess.check_call([odrun] + args, stdout=subprocess.DEVNULL)
    return export
