"""`--task classify` end to end on real TensorFlow (2.15 CPU) and tf.keras: ONE module-scoped run
of the CLI: synthetic class folders -> convert -> train (MobileNetV2 x0.35 at 64 px with
"pretrained" base weights downloaded from 127.0.0.1, bottleneck head + 4 fine-tune steps) ->
train --resume (cache hit) -> eval -> export -> predict in a fresh process, and the tutorial's
label_image-style script (tf.compat.v1 GraphDef + Session on output_graph.pb) in another.

The "pretrained" weights are HAND-MADE: a randomly initialised MobileNetV2 whose BatchNorm
statistics were set from the synthetic images (model.Classifier.calibrate), not ImageNet weights.
The images are synthetic (odrun.tasks.classify.synth), not photos."""
import hashlib
import http.server
import json
import os
import subprocess
import sys
import tarfile
import threading

import pytest

from conftest import have_module, require, run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]  # ~1.7 min CPU (7 TF processes)
SIZE, ALPHA = 64, 0.35
HEAD, FINE = 30, 4

# tutorial 001's test script (9-1测试训练好的模型.py), verbatim but for the paths, tf.compat.v1
# (the script is TF1: tf.gfile, tf.GraphDef, tf.Session), printing JSON instead of plt.show().
TUTORIAL_SCRIPT = r'''
import json, os, sys
import numpy as np
import tensorflow.compat.v1 as tf
tf.disable_eager_execution()
model_dir, image_dir = sys.argv[1], sys.argv[2]
lines = tf.gfile.GFile(os.path.join(model_dir, 'output_labels.txt')).readlines()
uid_to_human = {}
for uid, line in enumerate(lines):
    line = line.strip('\n')
    uid_to_human[uid] = line
def id_to_string(node_id):
    if node_id not in uid_to_human:
        return ''
    return uid_to_human[node_id]
with tf.gfile.FastGFile(os.path.join(model_dir, 'output_graph.pb'), 'rb') as f:
    graph_def = tf.GraphDef()
    graph_def.ParseFromString(f.read())
    tf.import_graph_def(graph_def, name='')
out = {}
with tf.Session() as sess:
    softmax_tensor = sess.graph.get_tensor_by_name('final_result:0')
    for root, dirs, files in os.walk(image_dir):
        for file in files:
            image_data = tf.gfile.FastGFile(os.path.join(root, file), 'rb').read()
            predictions = sess.run(softmax_tensor, {'DecodeJpeg/contents:0': image_data})
            predictions = np.squeeze(predictions)
            top_k = predictions.argsort()[::-1]
            out[os.path.abspath(os.path.join(root, file))] = [id_to_string(int(top_k[0])), float(predictions[top_k[0]])]
print(json.dumps(out))
'''


def _weights_archive(images_dir, dest):
    """HAND-MADE base weights (see the module docstring) as a .tar.gz holding one .h5."""
    import numpy as np
    from PIL import Image
    from odrun.tasks.classify import defaults, model as M
    hyper = dict(defaults()["hyper"], alpha=ALPHA)
    clf = M.Classifier("mobilenet_v2", 4, SIZE, hyper)
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(images_dir) for f in fs)
    batch = np.stack([np.asarray(Image.open(f).convert("RGB").resize((SIZE, SIZE)), np.float32) for f in files])
    clf.calibrate(batch)
    h5 = os.path.join(dest, "mobilenet_v2_0.35_64_no_top.h5")
    clf.base.save_weights(h5)
    archive = os.path.join(dest, "weights.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(h5, arcname="mobilenet_v2_0.35_64/" + os.path.basename(h5))
    return archive


def _serve(directory):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def log_message(self, *a):
            pass
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require(have_module("tensorflow"), "TensorFlow not installed (run scripts/setup.sh)")
    from odrun.tasks.classify import synth
    root = tmp_path_factory.mktemp("classify")
    p = {k: root / k for k in ("images", "data", "run", "model", "preds", "serve", "cache")}
    env = dict(os.environ, ODSTACK_CACHE=str(p["cache"]))
    synth.generate(str(p["images"]), per_class=8, size=80, seed=3)
    os.makedirs(str(p["serve"]))
    archive = _weights_archive(str(p["images"]), str(p["serve"]))
    sha = hashlib.sha256(open(archive, "rb").read()).hexdigest()
    httpd = _serve(str(p["serve"]))
    url = "http://127.0.0.1:{}/weights.tar.gz#sha256={}".format(httpd.server_address[1], sha)
    out = {"p": p, "env": env, "url": url}
    try:
        out["convert"] = json.loads(run_cli("odrun", "convert", p["images"], "--task", "classify", "--out", p["data"],
                                            "--json", check=0, env=env).stdout)
        common = ["--workdir", p["run"], "--json", "--checkpoint-every", "10"]
        out["train"] = json.loads(run_cli(
            "odrun", "train", "--task", "classify", "--data", p["data"], "--model", "mobilenet_v2",
            "--image-size", SIZE, "--set", "alpha={}".format(ALPHA), "--batch", "8", "--steps", HEAD,
            "--pretrained", url, "--fine-tune-from", "block_15_expand", "--fine-tune-steps", FINE, *common,
            check=0, env=env).stdout)
        out["after_first"] = sorted(os.listdir(str(p["run"])))
        # --resume with 10 more head steps: the run continues, the bottleneck cache is reused
        out["resume"] = json.loads(run_cli("odrun", "train", "--task", "classify", "--resume", "--steps", HEAD + 10,
                                           *common, check=0, env=env).stdout)
    finally:
        httpd.shutdown()
    proc = run_cli("odrun", "eval", "--workdir", p["run"], "--json", check=0, env=env)
    out["eval"], out["eval_stderr"] = json.loads(proc.stdout), proc.stderr
    proc = run_cli("odrun", "export", "--workdir", p["run"], "--out", p["model"], "--json", check=0, env=env)
    out["export"], out["export_stderr"] = json.loads(proc.stdout), proc.stderr
    test_dir = root / "test_images"  # the test split's images, in one folder (what the tutorial's script walks)
    os.makedirs(str(test_dir))
    for d in sorted(os.listdir(str(p["images"]))):
        for f in sorted(os.listdir(str(p["images"] / d)))[:2]:
            (test_dir / f).write_bytes((p["images"] / d / f).read_bytes())
    out["test_dir"] = test_dir
    out["predict"] = json.loads(run_cli("odrun", "predict", "--model", p["model"], test_dir, "--out", p["preds"],
                                        "--top-k", "3", "--batch", "3", "--json", check=0, env=env).stdout)
    proc = subprocess.run([sys.executable, "-c", TUTORIAL_SCRIPT, str(p["model"]), str(test_dir)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out["tutorial"] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_convert_writes_the_slim_layout(run):
    from odrun.tasks.classify import data
    p, s = run["p"], run["convert"]
    names = sorted(os.listdir(str(p["data"])))
    assert "labels.txt" in names and "summary.json" in names
    assert [n for n in names if n.startswith("image_train_")] == [
        "image_train_{:05d}-of-00005.tfrecord".format(i) for i in range(5)]
    assert open(str(p["data"] / "labels.txt")).read().splitlines() == [
        "0:blue_stripes", "1:green_squares", "2:red_circles", "3:yellow_checks"]
    assert s["images"] == {"total": 32, "train": 24, "test": 8}
    assert all(c["train"] == 6 and c["test"] == 2 for c in s["classes"])  # stratified: 2 of 8 per class
    import tensorflow as tf
    _, train_files, test_files = data.find(str(p["data"]))
    records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(train_files + test_files)]
    assert len(records) == 32
    f = records[0].features.feature
    for key in ("image/encoded", "image/format", "image/class/label", "image/height", "image/width"):
        assert key in f
    assert f["image/format"].bytes_list.value[0] == b"jpeg" and f["image/height"].int64_list.value[0] == 80
    assert sorted({r.features.feature["image/class/label"].int64_list.value[0] for r in records}) == [0, 1, 2, 3]


def test_same_seed_same_split(run, tmp_path):
    from odrun.tasks.classify import convert
    again = convert.convert(str(run["p"]["images"]), str(tmp_path / "again"), progress=False)
    with open(str(run["p"]["data"] / "summary.json")) as f:
        first = json.load(f)
    assert again["classes"] == first["classes"]
    for name in first["files"]["train"] + first["files"]["test"]:
        assert (tmp_path / "again" / name).read_bytes() == (run["p"]["data"] / name).read_bytes()


def test_train_exact_steps_checkpoints_bottlenecks(run):
    t, r = run["train"], run["resume"]
    assert t["end_step"] == HEAD + FINE and t["head_steps"] == HEAD and t["fine_tune_steps"] == FINE
    assert t["bottleneck"]["hit"] is False and os.path.exists(t["bottleneck"]["path"])
    assert t["bottleneck"]["path"].startswith(str(run["p"]["cache"]))
    assert [os.path.basename(c) for c in t["checkpoints"]] == ["ckpt-10", "ckpt-20", "ckpt-30", "ckpt-34"]
    assert "checkpoint" in run["after_first"] and any(n.startswith("events") for n in
                                                      os.listdir(str(run["p"]["run"] / "train")))
    # resumed: from 34, 10 more head steps (step numbers are the run's) + the 4 fine-tune steps again
    assert r["start_step"] == HEAD + FINE and r["end_step"] == HEAD + 10 + FINE
    with open(str(run["p"]["run"] / "run.json")) as f:
        settings = json.load(f)
    assert settings["task"] == "classify" and settings["weights"]["sha256"]


def test_resume_reuses_bottlenecks_when_head_steps_remain(run, tmp_path):
    """A second run directory on the same data and base: features come from the cache."""
    from odrun.tasks.classify import train as T
    import argparse
    args = argparse.Namespace(task="classify", data=str(run["p"]["data"]), workdir=str(tmp_path / "r2"),
                              model="mobilenet_v2", image_size=SIZE, steps=3, epochs=None, batch=8,
                              overrides=["alpha={}".format(ALPHA)], pretrained=run["train"]["run_dir"] + "/../serve",
                              fine_tune_from=None, fine_tune_steps=None, flip_left_right=False, random_crop=None,
                              random_scale=None, random_brightness=None, bottleneck_dir=None, checkpoint_every=None,
                              resume=False, json=True)
    args.pretrained = str(run["p"]["serve"])  # the same .h5, from the folder: the same base
    s = T.settings(args)
    s.update(run_dir=args.workdir, bottleneck_dir=os.path.dirname(run["train"]["bottleneck"]["path"]))
    os.makedirs(args.workdir)
    summary = T.train(s, show=False)
    assert summary["bottleneck"]["hit"] is True and summary["bottleneck"]["path"] == run["train"]["bottleneck"]["path"]
    assert summary["end_step"] == 3


def test_bottleneck_key_changes_with_images_and_base(run, tmp_path):
    from odrun.tasks.classify import bottleneck, convert, data, defaults, model as M, synth
    _, tr, te = data.find(str(run["p"]["data"]))
    d1 = data.digest(tr + te)
    imgs = tmp_path / "imgs"
    synth.generate(str(imgs), per_class=8, size=80, seed=3)
    (imgs / "red_circles" / "red_circles_000.jpg").write_bytes(
        (imgs / "red_circles" / "red_circles_001.jpg").read_bytes()[:-2] + b"\xff\xd9")  # changed bytes
    convert.convert(str(imgs), str(tmp_path / "d2"), progress=False)
    _, tr2, te2 = data.find(str(tmp_path / "d2"))
    assert data.digest(tr2 + te2) != d1
    hyper = dict(defaults()["hyper"], alpha=ALPHA)
    a = M.Classifier("mobilenet_v2", 4, SIZE, hyper).base_digest()
    b = M.Classifier("mobilenet_v2", 4, SIZE, dict(hyper, alpha=0.5)).base_digest()
    assert a != b and bottleneck.key(a, d1) != bottleneck.key(b, d1) != bottleneck.key(a, "x")


def test_eval_metrics_and_picture(run):
    e = run["eval"]
    assert e["task"] == "classify" and e["images"] == 8 and e["step"] == HEAD + 10 + FINE
    assert 0.0 <= e["top1"] <= e["top4"] == 1.0  # 4 classes: top-4 always holds the truth
    assert sum(map(sum, e["confusion_matrix"])) == 8
    assert [c["support"] for c in e["per_class"]] == [2, 2, 2, 2]
    cm = e["confusion_matrix"]
    assert abs(e["top1"] - sum(cm[i][i] for i in range(4)) / 8.0) < 1e-6
    png = run["p"]["run"] / "confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a classifier run has results.csv/results.png too (issue 25); eval's top-1 lands in its step's row
    import csv
    with open(str(run["p"]["run"] / "results.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(set(steps)) and steps[0] == 10 and steps[-1] == e["step"]
    assert float(rows[-1]["top1"]) == e["top1"] and rows[-1]["loss"] and rows[-1]["lr"]
    assert e["results_png"] == str(run["p"]["run"] / "results.png")
    assert (run["p"]["run"] / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_layout(run):
    m, p = run["export"], run["p"]["model"]
    assert m["task"] == "classify" and m["frozen_graph"]["input"] == "DecodeJpeg/contents:0"
    assert m["frozen_graph"]["output"] == "final_result:0"
    for name in ("saved_model", "output_graph.pb", "output_labels.txt", "labels.txt", "metadata.json"):
        assert (p / name).exists(), name
    assert (p / "output_labels.txt").read_text().splitlines() == [c["name"] for c in m["classes"]]
    assert not [n for n in os.listdir(str(p.parent)) if n.startswith(".model.")]  # no temp left


def test_frozen_graph_matches_saved_model_on_every_image(run):
    """The tutorial's script on output_graph.pb vs `odrun predict` (SavedModel), both fresh processes."""
    pred = {r["file"]: r["top_k"][0] for r in run["predict"]["predictions"]}
    assert len(pred) == 8 and set(pred) == set(run["tutorial"])
    for f, (name, score) in run["tutorial"].items():
        assert pred[f]["class"] == name, f
        assert abs(pred[f]["score"] - score) < 1e-4, f


def test_predict_outputs(run):
    d = run["p"]["preds"]
    pr = run["predict"]
    assert pr["top_k"] == 3 and all(len(r["top_k"]) == 3 for r in pr["predictions"])
    assert all(r["top_k"][0]["score"] >= r["top_k"][1]["score"] for r in pr["predictions"])
    rows = (d / "predictions.csv").read_text().splitlines()
    assert rows[0] == "file,rank,class,class_id,score" and len(rows) == 1 + 8 * 3
    assert (d / "contact_sheet.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((d / "predictions.json").read_text()) == pr["predictions"]


def test_detect_on_a_classifier_export_dispatches(run, tmp_path):
    proc = run_cli("odrun", "detect", "--model", run["p"]["model"], run["test_dir"], "--out", tmp_path / "o",
                   "--json", check=0, env=run["env"])
    assert json.loads(proc.stdout)["top_k"] == 4  # detect gives the top 5, capped at 4 classes


# -- bad input: clear errors, nothing written ---------------------------------------------------

def _convert_error(src, out):
    from odcore.errors import UserError
    from odrun.tasks.classify import convert
    with pytest.raises(UserError) as e:
        convert.convert(str(src), str(out), progress=False)
    assert not os.path.exists(str(out)), "nothing may be written"
    assert not [n for n in os.listdir(str(out.parent)) if n.startswith("." + out.name)]
    return e.value.render()


def _folders(tmp_path, **classes):
    from PIL import Image
    for k, (name, count) in enumerate(sorted(classes.items())):
        os.makedirs(str(tmp_path / "src" / name))
        for i in range(count):
            Image.new("RGB", (20, 20), (i * 30 % 255, k * 60, 200)).save(str(tmp_path / "src" / name / "{}.PNG".format(i)))
    return tmp_path / "src"


def test_bad_inputs_convert(tmp_path):
    require(have_module("tensorflow"), "TensorFlow not installed")
    src = _folders(tmp_path, cat=3, dog=3, empty=0)
    msg = _convert_error(src, tmp_path / "out")
    assert "class folders without images" in msg and "empty" in msg
    os.rmdir(str(src / "empty"))
    (src / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (src / "cat" / "empty.jpg").write_bytes(b"")
    msg = _convert_error(src, tmp_path / "out")
    assert "broken.jpg" in msg and "empty.jpg" in msg and "nothing was written" in msg
    os.unlink(str(src / "dog" / "broken.jpg"))
    os.unlink(str(src / "cat" / "empty.jpg"))
    (src / "dog" / "same.png").write_bytes((src / "cat" / "0.PNG").read_bytes())
    msg = _convert_error(src, tmp_path / "out")
    assert "filed under 2 classes (cat, dog)" in msg and "same.png" in msg
    os.unlink(str(src / "dog" / "same.png"))
    msg = _convert_error(src, src / "cat" / "records")
    assert "inside" in msg
    import shutil
    shutil.rmtree(str(src / "dog"))
    assert "needs two or more" in _convert_error(src, tmp_path / "out")


def test_other_formats_are_reencoded_and_extensions_any_case(tmp_path):
    require(have_module("tensorflow"), "TensorFlow not installed")
    from PIL import Image
    from odrun.tasks.classify import convert
    src = _folders(tmp_path, a=2, b=2)
    Image.new("RGB", (16, 12), "red").save(str(src / "a" / "x.TIFF"), format="TIFF")
    Image.new("RGB", (16, 12), "blue").save(str(src / "b" / "y.Bmp"), format="BMP")
    (src / "b" / "notes.txt").write_text("not an image")
    s = convert.convert(str(src), str(tmp_path / "out"), progress=False, shards=1)
    assert s["images"]["total"] == 6 and s["reencoded_png"] == 2
    assert [x["file"].endswith("notes.txt") for x in s["skipped"]] == [True]


def test_bad_inputs_train_predict(run, tmp_path):
    r = run_cli("odrun", "train", "--task", "classify", "--data", run["p"]["data"], "--workdir", tmp_path / "r",
                "--fine-tune-from", "default", env=run["env"])
    assert r.returncode == 2 and "without --pretrained" in r.stderr and not (tmp_path / "r").exists()
    r = run_cli("odrun", "train", "--task", "classify", "--data", run["p"]["data"], "--workdir", tmp_path / "r",
                "--set", "alpah=0.5", env=run["env"])
    assert r.returncode == 2 and "unknown setting 'alpah'" in r.stderr and "alpha" in r.stderr
    r = run_cli("odrun", "train", "--task", "classify", "--data", run["p"]["data"], "--workdir", tmp_path / "r",
                "--model", "mobilenet_v3", env=run["env"])
    assert r.returncode == 2 and "did you mean 'mobilenet_v2'" in r.stderr
    r = run_cli("odrun", "predict", "--model", run["p"]["model"], run["test_dir"], "--out", run["test_dir"] / "o",
                env=run["env"])
    assert r.returncode == 2 and "inside" in r.stderr and not (run["test_dir"] / "o").exists()
    r = run_cli("odrun", "predict", "--model", tmp_path, run["test_dir"], "--out", tmp_path / "o", env=run["env"])
    assert r.returncode == 2 and "metadata.json" in r.stderr


def test_pretrained_sha_mismatch_caches_nothing(run, tmp_path, monkeypatch):
    from odcore.errors import UserError
    from odrun.tasks.classify import model as M
    monkeypatch.setenv("ODSTACK_CACHE", str(tmp_path / "c"))
    httpd = _serve(str(run["p"]["serve"]))
    try:
        url = "http://127.0.0.1:{}/mobilenet_v2_0.35_64_no_top.h5#sha256={}".format(httpd.server_address[1], "0" * 64)
        with pytest.raises(UserError) as e:
            M.resolve_weights(url, progress=False)
        assert "sha256 mismatch" in e.value.render()
        good = url.split("#")[0]
        path = M.resolve_weights(good, progress=False)  # unpinned: the first download's digest is recorded
        assert path.endswith("no_top.h5") and os.path.exists(path + ".sha256")
    finally:
        httpd.shutdown()
    cached = [n for r, _, fs in os.walk(str(tmp_path / "c")) for n in fs]
    assert sorted(cached) == sorted([os.path.basename(path), os.path.basename(path) + ".sha256"])


def test_tf1_is_refused_clearly(monkeypatch):
    """The classify verbs are TF2-only (docs/classify.md): on TF 1.x they stop before doing anything."""
    require(have_module("tensorflow"), "TensorFlow not installed")
    import tensorflow as tf
    from odcore.errors import UserError
    from odrun.tasks.classify import require_tf2
    monkeypatch.setattr(tf, "__version__", "1.15.5")  # the version string TF 1.15.5 reports
    with pytest.raises(UserError) as e:
        require_tf2()
    assert "needs TensorFlow 2 (this is TensorFlow 1.15.5)" in e.value.render()
    assert "output_graph.pb" in e.value.render()


def _through_pty(argv, env, timeout=300):
    """(exit code, everything the terminal showed) of a command whose stdout and stderr are a pty,
    as when a user runs it (TF's C++ logging writes to fd 2 whatever sys.stderr is)."""
    import pty
    import select
    import time
    from conftest import bin_path
    master, slave = pty.openpty()
    proc = subprocess.Popen([bin_path("odrun")] + [str(a) for a in argv], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_tf_log_lines_stay_off_the_terminal_in_convert_and_predict(run, tmp_path):
    """#22: classify convert and predict printed TensorFlow's C++ banner lines on the terminal;
    now they go to OUT/logs/VERB.log like train's. With -v the raw lines are still shown."""
    from test_train_results import noisy
    p, env = run["p"], dict(run["env"])
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    code, shown = _through_pty(["convert", p["images"], "--task", "classify", "--out", tmp_path / "data"], env)
    assert code == 0, shown
    assert noisy(shown) == [], shown
    assert (tmp_path / "data" / "logs" / "convert.log").exists()
    code, shown = _through_pty(["predict", "--model", p["model"], run["test_dir"], "--out", tmp_path / "preds"], env)
    assert code == 0, shown
    assert noisy(shown) == [], shown
    log = (tmp_path / "preds" / "logs" / "predict.log").read_text(errors="replace")
    assert noisy(log), "the library lines should be in the log"
    code, shown = _through_pty(["convert", p["images"], "--task", "classify", "--out", tmp_path / "data-v", "-v"], env)
    assert code == 0 and noisy(shown), shown  # the control: without the quiet session they do reach it


def test_eval_and_export_say_what_they_do(run):
    """Issue #25: the classify demo showed nothing for 28 s across eval and export: each is a stage
    line with its time (here piped: the start line and the done line, on stderr; --json stays JSON)."""
    import re
    assert "evaluating run on the test records ..." in run["eval_stderr"], run["eval_stderr"]
    assert re.search(r"evaluating run on the test records: done in \d+\.\ds", run["eval_stderr"])
    assert re.search(r"writing the export \(SavedModel, .*\): done in \d+\.\ds", run["export_stderr"]), \
        run["export_stderr"]
