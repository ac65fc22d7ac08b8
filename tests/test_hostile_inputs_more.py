"""Issue 22, input side: every image read goes through the one opener (odcore/imagefile.py):
regular files only (no FIFO, no device, no symlink to one; refused before open), size and
pixel caps; classification folders: no symlink out of SOURCE, no control characters in a
class name, no non-UTF-8 file name. Attacked through every verb that reads an image:
convert (VOC boxes, classify), detect and predict. Exit 2, the file named, nothing written.

Fixtures are HAND-MADE: synthetic images (odrun.tasks.detect.synth / Pillow) and export folders holding only
the metadata.json `odrun export` writes (no model: every case is refused before a model loads).
"""
import json
import os
import struct
import zlib

import pytest

from conftest import have_module, require
from odrun.tasks.detect import synth
from test_hostile_input import cli, refused


def snapshot(path):
    """{relative path: sha256, 'dir' or the kind of a non-regular entry}; never opens a FIFO,
    device or symlink (test_hostile_input.snapshot would read /dev/zero forever)."""
    import hashlib
    import stat
    out = {}
    for root, dirs, files in os.walk(str(path)):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, str(path))] = hashlib.sha256(fh.read()).hexdigest()
            else:
                out[os.path.relpath(p, str(path))] = stat.S_IFMT(st.st_mode)
    return out


@pytest.fixture(autouse=True)
def _needs_odapi():
    require(have_module("tensorflow") and have_module("object_detection"),
            "TensorFlow + OD API not installed (run scripts/setup.sh)")


def _png_header_only(path, width, height):
    """A PNG whose IHDR claims width x height (no pixel data): Pillow reads the size from it."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def _plant(folder, name, kind):
    """Put a hostile 'image' called NAME into FOLDER; -> its path."""
    path = os.path.join(str(folder), name)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "devzero":
        os.symlink("/dev/zero", path)
    elif kind == "bomb":
        _png_header_only(path, 20000, 20000)  # 4e8 pixels > the 178956970 cap
    return path


KINDS = {"fifo": "FIFO", "devzero": "character device", "bomb": "the decode cap of"}


def _classify_src(tmp_path):
    from PIL import Image
    src = tmp_path / "src"
    for c, color in (("cat", (200, 10, 10)), ("dog", (10, 200, 10))):
        (src / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40, 30), tuple(v // (i + 1) for v in color)).save(str(src / c / "{}.png".format(i)))
    return src


def _export(tmp_path, classifier):
    exp = tmp_path / "export"
    exp.mkdir()
    meta = {"api": "tf2", "arch": "ssd", "step": 2, "classes": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}
    if classifier:
        meta = {"task": "classify", "classes": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]}
    (exp / "metadata.json").write_text(json.dumps(meta))
    return exp


def _verb(verb, tmp_path):
    """-> (folder to plant into, argv builder(out), planted name)."""
    if verb == "convert-classify":
        src = _classify_src(tmp_path)
        return src / "cat", lambda out: ["convert", src, "--task", "classify", "--out", out,
                                            "--allow-outside-images"], "bad.png"  # the opener, not the path rule
    if verb == "convert-voc":
        src = tmp_path / "voc"
        synth.make_voc(str(src), 2, fmt="PNG", seed=7)
        os.unlink(str(src / "img_00001.png"))  # the annotation's image is now the planted file
        return src, lambda out: ["convert", src, "--out", out, "--allow-outside-images"], "img_00001.png"
    photos = tmp_path / "photos"
    synth.make_voc(str(photos), 1, fmt="PNG", seed=5)
    exp = _export(tmp_path, classifier=(verb == "predict"))
    return photos, lambda out: [verb, "--model", exp, photos, "--out", out], "bad.png"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("verb", ["convert-classify", "convert-voc", "detect", "predict"])
def test_every_image_reader_refuses_fifo_device_and_pixel_bombs(verb, kind, capsys, tmp_path):
    folder, argv, name = _verb(verb, tmp_path)
    path = _plant(folder, name, kind)
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    code, err = cli(capsys, "odrun", *argv(out))
    refused(code, err, os.path.basename(path), KINDS[kind])
    assert not out.exists()
    assert snapshot(tmp_path) == before


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["symlinked-file", "symlinked-class", "newline-class", "non-utf8-name"])
def test_classify_folders_refuse_outside_links_control_characters_and_bad_names(case, capsys, tmp_path):
    src = _classify_src(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.png").write_bytes((src / "cat" / "0.png").read_bytes())
    if case == "symlinked-file":
        os.symlink(str(outside / "x.png"), str(src / "cat" / "link.png"))
        expect = ["link.png", "leads outside"]
    elif case == "symlinked-class":
        os.symlink(str(outside), str(src / "bird"))
        expect = ["bird", "leads outside"]
    elif case == "newline-class":
        evil = src / "dog\n1:evil"
        evil.mkdir()
        (evil / "0.png").write_bytes((src / "cat" / "0.png").read_bytes())
        expect = ["dog\\n1:evil", "control character"]
    else:
        with open(os.path.join(os.fsencode(str(src / "cat")), b"\xff.png"), "wb") as f:
            f.write((src / "cat" / "1.png").read_bytes())
        expect = ["\\udcff.png", "not valid UTF-8"]
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    code, err = cli(capsys, "odrun", "convert", src, "--task", "classify", "--out", out)
    refused(code, err, *expect)
    assert not out.exists()
    assert snapshot(tmp_path) == before


def test_a_newline_in_a_voc_class_name_is_refused(capsys, tmp_path):
    src = tmp_path / "voc"
    synth.make_voc(str(src), 2, classes=("cat", "dog"), fmt="PNG", seed=7)
    xml = src / "img_00000.xml"
    text = xml.read_text()
    first = text.index("<name>") + len("<name>")
    xml.write_text(text[:first] + "dog&#10;1:evil" + text[text.index("</name>", first):])
    out = tmp_path / "out"
    code, err = cli(capsys, "odrun", "convert", src, "--out", out)
    refused(code, err, "img_00000.xml", "control character")
    assert not (out / "label_map.pbtxt").exists()


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_labelme_image_paths_outside_the_dataset_are_refused(how, capsys, tmp_path):
    from PIL import Image
    src, outside = tmp_path / "labelme", tmp_path / "elsewhere"
    src.mkdir()
    outside.mkdir()
    Image.new("RGB", (100, 60), (90, 90, 90)).save(str(outside / "a.png"))
    ref = {"dotdot": "../elsewhere/a.png", "absolute": str(outside / "a.png"), "symlink": "a.png"}[how]
    if how == "symlink":
        os.symlink(str(outside / "a.png"), str(src / "a.png"))
    shape = {"label": "leaf", "points": [[10, 10], [50, 10], [50, 40]], "group_id": None, "shape_type": "polygon",
             "flags": {}}
    (src / "a.json").write_text(json.dumps({"version": "5.3.1", "flags": {}, "shapes": [shape], "imagePath": ref,
                                            "imageData": None, "imageHeight": 60, "imageWidth": 100}))
    out = tmp_path / "out"
    code, err = cli(capsys, "odrun", "convert", src, "--out", out)
    refused(code, err, "a.json", "leads outside the dataset")
    assert not (out / "label_map.pbtxt").exists()
