"""Artefacts built once per test session and shared by every module (and every pytest-xdist
worker) that only needs *a* trained run or export (issue 23: the suite's time went to modules
training the same tiny model again).

    info = shared(tmp_path_factory, "ssd_tf2", build)   # build(folder) -> JSON-able dict, run once
    def test_x(ssd_tf2): ...                              # the fixtures below (conftest's pytest_plugins)

The first caller builds under a file lock in the session's shared temp folder (the parent of the
xdist workers' own folders); the others wait for it and read the same result. A build that fails
is recorded, so the next caller fails at once with the same message instead of building again.
Tests that must train themselves (kill -9, resume, exact steps, multi-worker losses) keep their own
fixtures.
"""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from filelock import FileLock

from conftest import bin_path, have_module, require, run_cli


def session_root(tmp_path_factory):
    """The folder every worker of this session sees (xdist: the parent of gw0/, gw1/, ...)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared(tmp_path_factory, name, build):
    root = session_root(tmp_path_factory)
    done, failed = root / (name + ".json"), root / (name + ".failed")
    with FileLock(str(root / (name + ".lock"))):
        if not done.exists() and not failed.exists():
            try:
                result = build(root / name)
            except BaseException as exc:
                failed.write_text("{}: {}".format(type(exc).__name__, exc))
                raise
            tmp = root / (name + ".json.tmp")
            tmp.write_text(json.dumps(result, indent=1))
            os.replace(str(tmp), str(done))  # readers never see half a file
    if failed.exists():
        pytest.fail("the shared {} artefact failed to build (in another test): {}".format(
            name, failed.read_text()[-3000:]), pytrace=False)
    return json.loads(done.read_text())


# ------------------------------------------------------------------ SSD MobileNet V2, TF2 path
SSD_STEPS, SSD_EVERY, SSD_IMAGES = 12, 4, 24
SSD_FORMATS = ["--format", "saved_model,frozen", "--format", "onnx,tflite"]


def _ckpt_listed(run_dir):
    path = os.path.join(str(run_dir), "checkpoint")
    return os.path.exists(path) and "ckpt-" in open(path).read()


def build_ssd_tf2(root):
    """synth -> convert -> train (SIGKILLed after its first checkpoint) -> train --resume to
    SSD_STEPS -> eval -> export to every format (parity-checked by the export) -> detect (SavedModel).
    Used by test_train_tf2 (the kill/resume/eval/export/detect outputs) and test_export_serve
    (the formats, detect without TF, serve)."""
    from odrun.tasks.detect import synth
    p = {k: str(root / k) for k in ("images", "data", "run", "export", "det")}
    p["root"] = str(root)
    synth.generate(p["images"], count=SSD_IMAGES, seed=1)
    run_cli("odrun", "convert", p["images"], "--out", p["data"], "--json", check=0)
    cmd = [bin_path("odrun"), "train", "--data", p["data"], "--workdir", p["run"], "--steps", str(SSD_STEPS),
           "--checkpoint-every", str(SSD_EVERY), "--batch", "4", "--image-size", "96", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while not _ckpt_listed(p["run"]) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    p["killed_rc"], p["killed_err"] = proc.returncode, err.decode(errors="replace")[-5000:]
    p["after_kill"] = sorted(os.listdir(p["run"]))
    p["ckpt_file_after_kill"] = open(os.path.join(p["run"], "checkpoint")).read()
    p["train"] = json.loads(run_cli("odrun", "train", "--workdir", p["run"], "--resume", "--json", check=0).stdout)
    p["eval_stdout"] = run_cli("odrun", "eval", "--workdir", p["run"], "--json", check=0).stdout
    proc = run_cli("odrun", "export", "--workdir", p["run"], "--out", p["export"], *SSD_FORMATS, "--json",
                   check=0, timeout=1800)
    p["export_meta"], p["export_stderr"] = json.loads(proc.stdout), proc.stderr
    # --runtime saved_model: the TF2 detect path (auto would pick the ONNX form this export also has)
    p["detect"] = json.loads(run_cli("odrun", "detect", "--model", p["export"],
                                     str(Path(p["images"]) / "synth_000*.jpg"), Path(p["images"]) / "synth_0011.jpg",
                                     "--out", p["det"], "--threshold", "0.0", "--batch", "4",
                                     "--runtime", "saved_model", "--json", check=0).stdout)
    return p


@pytest.fixture(scope="session")
def ssd_tf2(tmp_path_factory):
    """The shared SSD TF2 run + exports (paths as Path), for test_train_tf2 and test_export_serve."""
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")
    require(have_module("onnxruntime") and have_module("tf2onnx") and have_module("tflite_runtime"),
            "onnxruntime / tf2onnx / tflite-runtime not installed (pip install 'odstack[deploy]')")
    info = shared(tmp_path_factory, "ssd_tf2", build_ssd_tf2)
    for k in ("root", "images", "data", "run", "export", "det"):
        info[k] = Path(info[k])
    return info


# ------------------------------------------------------------------ tiny classifier and Mask R-CNN exports
def build_classifier(root):
    """The shortest classifier run that exports (issue 26's conformance test): 4 synthetic classes x
    4 images, MobileNetV2 x0.35 at 32 px FROM SCRATCH (no --pretrained: nothing downloaded), 2 steps,
    then `odrun export` (serving_default, classify_pixels and the `classification` signature)."""
    from odrun.tasks.classify import synth
    p = {k: str(root / k) for k in ("images", "data", "run", "export")}
    synth.generate(p["images"], per_class=4, size=40, seed=5)
    run_cli("odrun", "convert", p["images"], "--task", "classify", "--out", p["data"], "--json", check=0)
    run_cli("odrun", "train", "--task", "classify", "--data", p["data"], "--workdir", p["run"], "--model",
            "mobilenet_v2", "--image-size", 32, "--set", "alpha=0.35", "--batch", 4, "--steps", 2,
            "--fine-tune-steps", 0, "--json", check=0)
    p["export_meta"] = json.loads(run_cli("odrun", "export", "--workdir", p["run"], "--out", p["export"], "--json",
                                          check=0).stdout)
    return p


@pytest.fixture(scope="session")
def classifier_export(tmp_path_factory):
    """The shared tiny classifier export (paths as Path)."""
    require(have_module("tensorflow"), "TensorFlow not installed (run scripts/setup.sh)")
    info = shared(tmp_path_factory, "classifier", build_classifier)
    for k in ("images", "data", "run", "export"):
        info[k] = Path(info[k])
    return info


MASK_SIZE = 128


def build_mask_rcnn(root):
    """test_segment_model's recipe, shortest: 6 HAND-MADE synthetic shape images with exact masks
    (odrun/tasks/detect/masks/synth.py), the small TF2 Mask R-CNN template, 1 step, export."""
    from odrun.convert import convert
    from odrun.tasks.detect.masks import synth
    p = {k: str(root / k) for k in ("src", "data", "run", "export")}
    path, _ = synth.generate(p["src"], count=6, width=MASK_SIZE, height=MASK_SIZE, seed=2)
    convert(path, p["data"], split=0.67, progress=False, workers=1)
    run_cli("odrun", "train", "--task", "segment", "--data", p["data"], "--workdir", p["run"], "--steps", 1,
            "--json", check=0)
    p["export_meta"] = json.loads(run_cli("odrun", "export", "--workdir", p["run"], "--out", p["export"], "--json",
                                          check=0, timeout=1800).stdout)
    return p


@pytest.fixture(scope="session")
def mask_rcnn_export(tmp_path_factory):
    """The shared tiny Mask R-CNN export (paths as Path)."""
    require(have_module("tensorflow") and have_module("object_detection") and have_module("pycocotools"),
            "TensorFlow + OD API + pycocotools not installed (run scripts/setup.sh)")
    info = shared(tmp_path_factory, "mask_rcnn", build_mask_rcnn)
    for k in ("src", "data", "run", "export"):
        info[k] = Path(info[k])
    return info


# ------------------------------------------------------------------ `odrun serve` as a real subprocess
# A models.config in TF Serving's documented form (tensorflow.org/tfx/serving/serving_config): model det
# in the config's folder/det (versions 1 and 2, two labels), model shapes at the path put in for %s.
TWO_MODELS_CONFIG = """model_config_list {
  config {
    name: "det"
    base_path: "det"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config {
    name: "shapes"
    base_path: "%s"
  }
}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server(object):
    """`odrun serve FLAGS --port P [--grpc-port G]` as a real subprocess on free 127.0.0.1 ports, its
    output in `log_path`, returned once /readyz answers 200 (test_export_serve, test_serve_conformance,
    test_serve_versions). `name`: the {name} of the paths given to get/post (--name when set)."""

    def __init__(self, log_path, *flags, name=None, grpc=False, ready_s=180):
        import requests
        self.name, self.port = name, free_port()
        self.grpc_port = free_port() if grpc else None
        self.url = "http://127.0.0.1:{}".format(self.port)
        self.grpc = "127.0.0.1:{}".format(self.grpc_port) if grpc else None
        self.log = open(str(log_path), "w+")
        cmd = [bin_path("odrun"), "serve", "--port", str(self.port)] + [str(f) for f in flags]
        cmd += ["--name", name] if name and "--model-config-file" not in cmd else []
        cmd += ["--grpc-port", str(self.grpc_port)] if grpc else []
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + ready_s
        while time.time() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError("not ready in {} s\n{}".format(ready_s, self.output()))

    def output(self):
        if self.log.closed:
            return open(self.log.name, errors="replace").read()
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def get(self, path):
        import requests
        return requests.get(self.url + path.format(name=self.name), timeout=120)

    def post(self, path, body=None, **kwargs):
        import requests
        if body is not None:
            kwargs["json"] = body
        return requests.post(self.url + path.format(name=self.name), timeout=300, **kwargs)

    def stop(self):
        """SIGTERM (in-flight requests finish), SIGKILL after 60 s -> the exit code (143 after a clean stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode
