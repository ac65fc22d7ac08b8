"""`odrun cache list|clear`: one cache root ($ODSTACK_CACHE), every cache user agrees on it."""
import json
import os
import subprocess
import sys

from conftest import run_cli, tree


from odcore.cache import MARKER


def _env(tmp_path):
    env = dict(os.environ, ODSTACK_CACHE=str(tmp_path / "cache"))
    (tmp_path / "cache" / "zoo" / "ssd").mkdir(parents=True)
    (tmp_path / "cache" / "zoo" / "ssd" / "model.tar.gz").write_bytes(b"x" * 1000)
    (tmp_path / "cache" / "wheelhouse" / "cpu").mkdir(parents=True)
    (tmp_path / "cache" / "wheelhouse" / "cpu" / "a.whl").write_bytes(b"y" * 500)
    for name in ("zoo", "wheelhouse"):  # what odcore.cache.make_dir / mark write
        (tmp_path / "cache" / name / MARKER).write_text("")
    return env


def test_list_then_clear_one_then_all(tmp_path):
    env = _env(tmp_path)
    listed = json.loads(run_cli("odrun", "cache", "list", "--json", env=env, check=0).stdout)
    assert listed["root"] == str(tmp_path / "cache")
    assert {c["name"]: c["bytes"] for c in listed["caches"]} == {"wheelhouse": 500, "zoo": 1000}
    out = json.loads(run_cli("odrun", "cache", "clear", "zoo", "--json", env=env, check=0).stdout)
    assert out["removed"] == [{"name": "zoo", "bytes": 1000}]  # the marker is empty here
    assert not (tmp_path / "cache" / "zoo").exists() and (tmp_path / "cache" / "wheelhouse").exists()
    run_cli("odrun", "cache", "clear", env=env, check=0)
    assert os.listdir(str(tmp_path / "cache")) == []


def test_clear_unknown_name_is_exit_2_and_removes_nothing(tmp_path):
    env = _env(tmp_path)
    proc = run_cli("odrun", "cache", "clear", "zoo", "nope", env=env, check=2)
    assert "no such cache: nope" in proc.stderr and "wheelhouse" in proc.stderr
    assert (tmp_path / "cache" / "zoo").exists()


def test_every_cache_user_reads_the_same_root(tmp_path, monkeypatch):
    monkeypatch.setenv("ODSTACK_CACHE", str(tmp_path))
    from odcore.cache import cache_dir
    from odrun.tasks.detect import pretrained

    assert pretrained.cache_root() == cache_dir("zoo") == str(tmp_path / "zoo")


def _project(tmp_path):
    """A project folder a user pointed ODSTACK_CACHE at: their files, and one entry of ours."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "notes.txt").write_text("precious")
    (project / "src" / "main.py").write_text("print('mine')\n")
    (project / "zoo").mkdir()  # a user's folder that happens to have a cache's name
    (project / "zoo" / "mine.txt").write_text("mine")
    return project


def test_clear_on_a_project_folder_removes_only_what_odstack_made(tmp_path):
    project = _project(tmp_path)
    env = dict(os.environ, ODSTACK_CACHE=str(project))
    subprocess.run([sys.executable, "-c", "from odcore.cache import make_dir; make_dir('bench')"],
                   env=env, check=True)
    (project / "bench" / "x.bin").write_bytes(b"z" * 300)
    before = tree(project)
    listed = json.loads(run_cli("odrun", "cache", "list", "--json", env=env, check=0).stdout)
    assert [c["name"] for c in listed["caches"]] == ["bench"]
    assert sorted(c["name"] for c in listed["not_ours"]) == ["notes.txt", "src", "zoo"]
    text = run_cli("odrun", "cache", "list", env=env, check=0).stdout
    assert "not ours" in text and "notes.txt" in text
    proc = run_cli("odrun", "cache", "clear", "zoo", env=env, check=2)
    assert "not made by odstack" in proc.stderr and tree(project) == before
    out = json.loads(run_cli("odrun", "cache", "clear", "--json", env=env, check=0).stdout)
    assert [r["name"] for r in out["removed"]] == ["bench"]
    assert sorted(out["kept_not_ours"]) == ["notes.txt", "src", "zoo"]
    assert tree(project) == {k: v for k, v in before.items() if not k.startswith("bench" + os.sep)}


def test_a_symlinked_cache_root_is_refused_and_named(tmp_path):
    shared = _project(tmp_path)
    (shared / "zoo" / MARKER).write_text("")  # even an entry that looks like ours
    home_cache = tmp_path / "home-cache"
    home_cache.symlink_to(shared, target_is_directory=True)
    env = dict(os.environ, ODSTACK_CACHE=str(home_cache))
    before = tree(shared)
    proc = run_cli("odrun", "cache", "clear", env=env, check=2)
    assert "is a symlink to {}".format(shared) in proc.stderr and "nothing was removed" in proc.stderr
    assert "ODSTACK_CACHE={}".format(shared) in proc.stderr
    assert tree(shared) == before
    listed = run_cli("odrun", "cache", "list", env=env, check=0).stdout
    assert "a symlink to {}".format(shared) in listed
    # named explicitly, the real folder: only the marked entry goes
    run_cli("odrun", "cache", "clear", env=dict(os.environ, ODSTACK_CACHE=str(shared)), check=0)
    assert tree(shared) == {k: v for k, v in before.items() if not k.startswith("zoo" + os.sep)}


def test_an_entry_that_is_a_symlink_is_never_ours(tmp_path):
    elsewhere = tmp_path / "thesis"
    elsewhere.mkdir()
    (elsewhere / "chapter1.tex").write_text("words")
    (elsewhere / MARKER).write_text("")
    root = tmp_path / "cache"
    root.mkdir()
    (root / "zoo").symlink_to(elsewhere, target_is_directory=True)
    env = dict(os.environ, ODSTACK_CACHE=str(root))
    run_cli("odrun", "cache", "clear", env=env, check=0)
    assert (elsewhere / "chapter1.tex").read_text() == "words" and (root / "zoo").is_symlink()


def test_cache_writers_mark_their_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("ODSTACK_CACHE", str(tmp_path))
    from odcore import cache
    cache.mark(tmp_path.parent / "elsewhere")  # outside the root: nothing happens
    (tmp_path / "wheelhouse" / "cpu").mkdir(parents=True)
    cache.mark(tmp_path / "wheelhouse" / "cpu")
    assert (tmp_path / "wheelhouse" / MARKER).is_file()
    assert [n for n, _p, _s in cache.entries()] == ["wheelhouse"]
