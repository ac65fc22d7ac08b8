"""`odrun cache list|clear`: one cache root ($ODSTACK_CACHE), every cache user agrees on it."""
import json
import os

from conftest import run_cli


def _env(tmp_path):
    env = dict(os.environ, ODSTACK_CACHE=str(tmp_path / "cache"))
    (tmp_path / "cache" / "zoo" / "ssd").mkdir(parents=True)
    (tmp_path / "cache" / "zoo" / "ssd" / "model.tar.gz").write_bytes(b"x" * 1000)
    (tmp_path / "cache" / "wheelhouse" / "cpu").mkdir(parents=True)
    (tmp_path / "cache" / "wheelhouse" / "cpu" / "a.whl").write_bytes(b"y" * 500)
    return env


def test_list_then_clear_one_then_all(tmp_path):
    env = _env(tmp_path)
    listed = json.loads(run_cli("odrun", "cache", "list", "--json", env=env, check=0).stdout)
    assert listed["root"] == str(tmp_path / "cache")
    assert {c["name"]: c["bytes"] for c in listed["caches"]} == {"wheelhouse": 500, "zoo": 1000}
    out = json.loads(run_cli("odrun", "cache", "clear", "zoo", "--json", env=env, check=0).stdout)
    assert out["removed"] == [{"name": "zoo", "bytes": 1000}]
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
