"""Every hand-made broken input (tests/fixtures/convert/broken/, see its README) gives a clear
message naming the file (and object), exit 2 from the CLI, and writes nothing: a new output
folder is not created and a previous good output is left byte-for-byte as it was."""
import hashlib
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import FIXTURES, bin_path, have_module, require, run_cli, sigint_default
from odrun.tasks.detect import synth
from odcore.errors import UserError

BROKEN = FIXTURES / "convert" / "broken"

# case -> (extra convert() arguments, source inside the case folder, message fragments)
ERRORS = {
    "malformed_xml": ({}, ".", ["a.xml: malformed XML: "]),
    "missing_image": ({}, ".", ["a.xml: image 'gone.jpg' not found"]),
    "empty_image_file": ({}, ".", ["a.jpg: the image file is empty (0 bytes)"]),
    "truncated_jpeg": ({}, ".", ["a.jpg: corrupt JPEG: truncated (no end-of-image marker)"]),
    "garbage_jpeg": ({}, ".", ["a.jpg: corrupt JPEG: "]),
    "not_an_image": ({}, ".", ["a.jpg: not a JPEG or PNG (no JPEG/PNG signature"]),
    "inverted_box": ({}, ".", ["a.xml: object #2 'cat': inverted box: xmin=25 ymin=3 xmax=10 ymax=20"]),
    "bad_bndbox": ({}, ".", ["a.xml: object #1 'cat': <bndbox> needs numeric xmin, ymin, xmax, ymax"]),
    "no_name": ({}, ".", ["a.xml: object #1 '': has no <name> (class)"]),
    "not_voc": ({}, ".", ["a.xml: not a Pascal VOC file: the root element is <annotations>"]),
    "unknown_class": ({"label_map": "label_map.pbtxt"}, ".",
                      ["a.xml: object #2 'dgo': class 'dgo' is not in the label map", "(did you mean 'dog'?)"]),
    "bad_label_map": ({"label_map": "label_map.pbtxt"}, ".", ["label_map.pbtxt: not a valid label map"]),
    "duplicate_names": ({}, ".", ["x.xml: duplicate file name 'x.jpg': also used by"]),
    "coco_unknown_category": ({}, "instances.json", ["instances.json: annotation id 7: unknown category_id 99"]),
    "csv_missing_column": ({}, "labels.csv", ["labels.csv: missing column(s) class"]),
}
# Warnings: converted (with the warning) normally, an error under --strict.
WARNINGS = {
    "box_outside": ["a.xml: object #1 'cat': box (-3, 2, 40, 20) is outside the 32x24 image: clipped to (0, 2, 32, 20)"],
    "degenerate_box": ["a.xml: object #2 'cat': degenerate box (5, 5, 5, 9) has no area inside the 32x24 image: dropped"],
    "no_objects": ["a.xml: no objects: kept as a negative example"],
}


def digest(path):
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as f:
                h.update(os.path.relpath(os.path.join(root, name), path).encode() + f.read())
    return h.hexdigest()


@pytest.fixture(autouse=True)
def _needs_tf():
    require(have_module("tensorflow"), "TensorFlow not installed (run scripts/setup.sh)")


@pytest.fixture(scope="module")
def good_output(tmp_path_factory):
    """A previous good output that a failed run must not touch."""
    from odrun.convert import convert

    base = tmp_path_factory.mktemp("good")
    synth.make_voc(str(base / "src"), 6, classes=("cat", "dog"), seed=3)
    convert(str(base / "src"), str(base / "out"), progress=False)
    return base / "out"


def _run(case, kwargs, source, out):
    from odrun.convert import convert

    folder = BROKEN / case
    kwargs = dict(kwargs)
    if "label_map" in kwargs:
        kwargs["label_map"] = str(folder / kwargs["label_map"])
    return convert(str(folder / source), str(out), progress=False, **kwargs)


def _assert_fails(case, kwargs, source, fragments, good_output, tmp_path):
    before = digest(good_output)
    for out in (tmp_path / "fresh", good_output):
        with pytest.raises(UserError) as info:
            _run(case, kwargs, source, out)
        text = info.value.render()
        for frag in fragments:
            assert frag in text, "{!r} not in:\n{}".format(frag, text)
        assert "nothing was written" in text or "label map" in text
    assert not (tmp_path / "fresh").exists()
    assert digest(good_output) == before
    assert not [f for f in os.listdir(good_output) if f.startswith(".")]  # no temp files left


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error_case(case, good_output, tmp_path):
    kwargs, source, fragments = ERRORS[case]
    _assert_fails(case, kwargs, source, fragments, good_output, tmp_path)


@pytest.mark.parametrize("case", sorted(WARNINGS))
def test_warning_case(case, good_output, tmp_path):
    summary = _run(case, {}, ".", tmp_path / "out")
    msgs = ["{}: {}: {}".format(os.path.basename(w["file"]), w["object"], w["message"]) if w["object"]
            else "{}: {}".format(os.path.basename(w["file"]), w["message"]) for w in summary["warnings"]]
    for frag in WARNINGS[case]:
        assert any(m.startswith(frag) for m in msgs), (frag, msgs)
    assert summary["images"]["total"] == 2
    _assert_fails(case, {"strict": True}, ".", ["--strict" if False else WARNINGS[case][0]],
                  good_output, tmp_path)


def test_box_outside_is_clipped_in_the_record(tmp_path):
    s = _run("box_outside", {"split": 1.0}, ".", tmp_path / "out")
    import pandas as pd
    df = pd.read_csv(tmp_path / "out" / "train_labels.csv")
    row = df[df["filename"] == "a.jpg"].iloc[0]
    assert (row["xmin"], row["xmax"]) == (0, 32) and s["boxes"]["train"] == {"cat": 1, "dog": 1}


def test_empty_test_split_is_a_warning(tmp_path):
    s = _run("box_outside", {}, ".", tmp_path / "out")
    assert any(w["message"].startswith("the test split is empty: 2 image(s) x 0.2 rounds to 0") for w in s["warnings"])


def test_skip_empty(tmp_path):
    s = _run("no_objects", {"skip_empty": True, "strict": True, "split": 1.0}, ".", tmp_path / "out")
    assert s["images"]["total"] == 1 and s["skipped"][0]["reason"] == "no objects (--skip-empty)"
    assert s["skipped"][0]["file"].endswith("a.xml")


def test_cli_reports_without_traceback(good_output):
    before = digest(good_output)
    proc = run_cli("odrun", "convert", BROKEN / "inverted_box", "--out", good_output, check=2)
    assert "inverted box" in proc.stderr and "Traceback" not in proc.stderr and "fix:" in proc.stderr
    assert digest(good_output) == before


def test_ctrl_c_leaves_nothing_partial(good_output, tmp_path):
    """SIGINT while records are being written: exit 130, no temp files, previous output intact."""
    src = tmp_path / "src"
    synth.make_voc(str(src), 1500, classes=("cat", "dog"), size=(64, 48), seed=4, max_objects=1)
    out = tmp_path / "out"
    shutil.copytree(good_output, out)
    before = digest(out)
    proc = subprocess.Popen([bin_path("odrun"), "convert", str(src), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)

    def writing():  # the staged train record (hidden sibling .out.staged-*/) has bytes: the pool is running
        try:
            return [f for f in tmp_path.glob(".out.staged-*/train.record") if os.path.getsize(f) > 0]
        except OSError:  # swapped between glob and getsize
            return []

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not writing():
        time.sleep(0.002)
    assert writing(), "never saw the temp records being written"
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert sorted(os.listdir(out)) == sorted(os.listdir(good_output))
    assert digest(out) == before
    assert not list(tmp_path.glob(".out.*")), "a staged folder was left beside --out"


def test_warnings_count_includes_the_reports(tmp_path):
    """#25: `convert` printed `warnings: 0` and then a report warning (images smaller than the input)."""
    synth.make_voc(str(tmp_path / "voc"), 6, classes=("cat", "dog"), size=(160, 120), seed=1)
    res = run_cli("odrun", "convert", tmp_path / "voc", "--out", tmp_path / "data", "--workers", "1", check=0)
    shown = [ln for ln in res.stderr.splitlines() if ln.startswith("warning")]
    assert any("smaller than the model input 300x300" in ln for ln in shown), res.stderr
    assert "warnings: {} ".format(len(shown)) in res.stdout, (res.stdout, shown)
