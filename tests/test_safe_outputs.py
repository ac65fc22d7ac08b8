"""Issue 22, data loss: every verb that writes a folder goes through ONE output guard
(odcore.paths.check_output_dir) and folders that are replaced are replaced as one
(odcore.fileio.staged_dir). Attacked through the real CLI; nothing may be lost, exit 2."""
import hashlib
import os

import pytest

from conftest import run_cli, tree
from odcore import fileio, paths
from odcore.errors import UserError
from odrun.tasks.detect import synth


def user_folder(path):
    (path / "sub").mkdir(parents=True)
    (path / "precious.txt").write_text("mine")
    (path / "sub" / "notes.md").write_text("also mine")
    return path


@pytest.fixture
def voc(tmp_path):
    src = tmp_path / "src"
    synth.make_voc(str(src), 6, size=(64, 48), seed=2, max_objects=1)
    return src


def _verbs(tmp_path, voc, out):
    """argv of each verb that can reach --out without a trained model (the guard runs first)."""
    return {
        "convert": ["convert", voc, "--out", out],
        "convert-classify": ["convert", "--task", "classify", voc, "--out", out],
        "export": ["export", "--workdir", tmp_path / "run", "--out", out],
    }


@pytest.mark.parametrize("verb", ["convert", "convert-classify", "export"])
def test_out_with_user_files_is_refused(verb, tmp_path, voc):
    out = user_folder(tmp_path / "userdir")
    (tmp_path / "userdir.old").mkdir()
    (tmp_path / "userdir.old" / "keep.txt").write_text("old")
    (tmp_path / "userdir.partial").mkdir()
    (tmp_path / "userdir.partial" / "keep.txt").write_text("partial")
    before = {p: tree(tmp_path / p) for p in ("userdir", "userdir.old", "userdir.partial")}
    proc = run_cli("odrun", *_verbs(tmp_path, voc, out)[verb])
    assert proc.returncode == 2, proc.stderr
    assert "precious.txt" in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert {p: tree(tmp_path / p) for p in before} == before
    assert sorted(n for n in os.listdir(str(tmp_path)) if n.startswith(".userdir")) == []


@pytest.mark.parametrize("verb", ["convert", "export"])
def test_out_inside_an_input_is_refused(verb, tmp_path, voc):
    inside = {"convert": voc / "out", "export": tmp_path / "run" / "export"}[verb]
    (tmp_path / "run").mkdir()
    before = tree(tmp_path)
    proc = run_cli("odrun", *_verbs(tmp_path, voc, inside)[verb])
    assert proc.returncode == 2, proc.stderr
    assert "lies inside" in proc.stderr and "fix:" in proc.stderr
    assert tree(tmp_path) == before and not inside.exists()


def test_earlier_convert_output_with_a_foreign_file_is_refused(tmp_path, voc):
    out = tmp_path / "data"
    run_cli("odrun", "convert", voc, "--out", out, check=0)
    (out / "notes.txt").write_text("mine")
    before = tree(out)
    proc = run_cli("odrun", "convert", voc, "--out", out, check=2)
    assert "notes.txt" in proc.stderr and "did not write" in proc.stderr
    assert tree(out) == before
    os.unlink(str(out / "notes.txt"))
    run_cli("odrun", "convert", voc, "--out", out, check=0)  # an earlier output alone: replaced
    assert sorted(os.listdir(str(out))) == sorted({n.split(os.sep)[0] for n in before if n != "notes.txt"})
    assert (out / "logs" / "convert.log").is_file()  # the library log, moved in after the swap


def test_convert_set_is_all_new(tmp_path, voc):
    """report.png is part of the set: it is replaced together with the records, never left old."""
    out = tmp_path / "data"
    run_cli("odrun", "convert", voc, "--out", out, check=0)
    (out / "report.png").write_bytes(b"old report")
    os.utime(str(out / "summary.json"))
    run_cli("odrun", "convert", voc, "--out", out, "--shards", "2", check=0)
    names = sorted(os.listdir(str(out)))
    assert "train.record" not in names and "train.record-00000-of-00002" in names  # all new shards
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the new report


def test_staged_dir_all_old_on_error_all_new_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("old")
    with pytest.raises(RuntimeError):
        with fileio.staged_dir(str(out)) as stage:
            with open(os.path.join(stage, "a"), "w") as f:
                f.write("new")
            raise RuntimeError("killed halfway")
    assert tree(out) == {"a": hashlib.sha256(b"old").hexdigest()}
    assert os.listdir(str(tmp_path)) == ["out"]
    with fileio.staged_dir(str(out)) as stage:
        with open(os.path.join(stage, "b"), "w") as f:
            f.write("new")
    assert sorted(os.listdir(str(out))) == ["b"] and os.listdir(str(tmp_path)) == ["out"]


def test_recover_puts_back_a_swap_cut_between_two_renames(tmp_path):
    out = tmp_path / "out"
    old = tmp_path / ".out.replaced-abc"
    old.mkdir()
    (old / "a").write_text("old")
    (tmp_path / ".out.staged-xyz").mkdir()
    (tmp_path / "out.old").mkdir()  # the user's: never touched
    fileio.recover_dir(str(out))
    assert (out / "a").read_text() == "old"
    assert sorted(os.listdir(str(tmp_path))) == ["out", "out.old"]


def test_output_file_guard_for_logs(tmp_path):
    """check_output_file: what `serve --access-log` is to call (EXPORT/metadata.json is an input)."""
    export = tmp_path / "export"
    export.mkdir()
    (export / "metadata.json").write_text("{}")
    with pytest.raises(UserError) as e:
        paths.check_output_file(str(export / "metadata.json"), [("model folder (--model)", str(export))],
                                flag="--access-log")
    assert e.value.where == "--access-log" and "lies inside" in e.value.message
    os.symlink(str(export / "metadata.json"), str(tmp_path / "link.log"))
    with pytest.raises(UserError):
        paths.check_output_file(str(tmp_path / "link.log"), [], flag="--access-log")
    paths.check_output_file(str(tmp_path / "access.log"), [("model", str(export))], flag="--access-log")


def _every_output_flag(tmp_path, voc):
    """{case: (argv, the input the output is pointed inside)} for every verb's every output flag.
    Inputs are HAND-MADE: a synthetic VOC folder, a run folder and export folders holding only
    the metadata.json `odrun export` writes (each case is refused before a model would load)."""
    import json
    run, exp, clf = tmp_path / "run", tmp_path / "export", tmp_path / "classifier"
    run.mkdir()
    for folder, meta in ((exp, {"api": "tf2", "arch": "ssd", "step": 2, "classes": [{"id": 1, "name": "cat"}]}),
                         (clf, {"task": "classify", "classes": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]})):
        folder.mkdir()
        (folder / "metadata.json").write_text(json.dumps(meta))
    return {
        "convert --out": (["convert", voc, "--out", voc / "out"], voc),
        "convert --task classify --out": (["convert", "--task", "classify", voc, "--out", voc / "out"], voc),
        "convert --check --out (the report)": (["convert", voc, "--check", "--out", voc / "out"], voc),
        "train --workdir": (["train", "--data", voc, "--workdir", voc / "run", "--steps", "1"], voc),
        "train --pretrained (a folder)": (["train", "--data", voc, "--pretrained", run, "--workdir", run / "r",
                                           "--steps", "1"], run),
        "train --task classify --workdir": (["train", "--task", "classify", "--data", voc, "--workdir", voc / "run",
                                             "--steps", "1"], voc),
        "train --task classify --bottleneck-dir": (["train", "--task", "classify", "--data", voc, "--workdir",
                                                    tmp_path / "crun", "--bottleneck-dir", voc / "bn", "--steps", "1"],
                                                   voc),
        "export --out": (["export", "--workdir", run, "--out", run / "export"], run),
        "detect --out (in the model)": (["detect", "--model", exp, voc, "--out", exp / "out"], exp),
        "detect --out (in the photos)": (["detect", "--model", exp, voc, "--out", voc / "out"], voc),
        "predict --out (in the model)": (["predict", "--model", clf, voc, "--out", clf / "out"], clf),
        "predict --out (in the photos)": (["predict", "--model", clf, voc, "--out", voc / "out"], voc),
        "serve --access-log": (["serve", "--model", exp, "--access-log", exp / "access.log"], exp),
        "serve --access-log (the metadata)": (["serve", "--model", exp, "--access-log", exp / "metadata.json"], exp),
        "serve --log": (["serve", "--model", exp, "--log", exp / "serve.log"], exp),
        "serve --log (the metadata)": (["serve", "--model", exp, "--log", exp / "metadata.json"], exp),
    }


CASES = ["convert --out", "convert --task classify --out", "convert --check --out (the report)", "train --workdir", "train --pretrained (a folder)",
         "train --task classify --workdir", "train --task classify --bottleneck-dir", "export --out",
         "detect --out (in the model)", "detect --out (in the photos)", "predict --out (in the model)",
         "predict --out (in the photos)", "serve --access-log", "serve --access-log (the metadata)",
         "serve --log", "serve --log (the metadata)"]


@pytest.mark.parametrize("case", CASES)
def test_every_output_flag_of_every_verb_inside_an_input_is_refused(case, tmp_path, voc):
    """#22: every output path of every verb goes through the guard: exit 2, the input byte-identical."""
    cases = _every_output_flag(tmp_path, voc)
    assert sorted(cases) == sorted(CASES)  # every case built is tested
    argv, victim = cases[case]
    before = tree(tmp_path)
    folders = sorted(root for root, _d, _f in os.walk(str(tmp_path)))
    proc = run_cli("odrun", *argv)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "lies inside" in proc.stderr and str(victim) in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(tmp_path) == before
    assert sorted(root for root, _d, _f in os.walk(str(tmp_path))) == folders  # not even an empty folder
