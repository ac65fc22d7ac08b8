"""--pretrained: the real download code against archives served by http.server on 127.0.0.1.

The archives are HAND-MADE here (a zoo-like layout <name>/checkpoint/ckpt-0.{index,data-...}
with placeholder bytes): this tests fetching, sha256 verification, caching and extraction,
not the checkpoint's content (training from a checkpoint is covered by the OD API itself).
"""
import hashlib
import http.server
import io
import os
import tarfile
import threading

import pytest

from conftest import have_module, require
from odcore.cache import MARKER


def make_tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ZOO_TAR = make_tar({"tiny_zoo_model/checkpoint/ckpt-0.index": b"index",
                    "tiny_zoo_model/checkpoint/ckpt-0.data-00000-of-00001": b"weights" * 1000,
                    "tiny_zoo_model/pipeline.config": b"model {}\n"})
EVIL_TAR = make_tar({"../escape.txt": b"x"})


@pytest.fixture(scope="module")
def server():
    files = {"/tiny_zoo_model.tar.gz": ZOO_TAR, "/evil.tar.gz": EVIL_TAR, "/junk.tar.gz": b"not a tar"}
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:{}".format(httpd.server_address[1]), hits
    httpd.shutdown()


@pytest.fixture
def pretrained(tmp_path, monkeypatch):
    require(have_module("object_detection"), "OD API not installed (run scripts/setup.sh)")
    monkeypatch.setenv("ODSTACK_CACHE", str(tmp_path / "cache"))
    from odrun.tasks.detect import pretrained
    return pretrained


def test_download_verify_cache(pretrained, server, tmp_path):
    base, hits = server
    url = base + "/tiny_zoo_model.tar.gz"
    prefix, kind = pretrained.resolve(url, progress=False)
    assert kind == "detection"
    assert prefix == str(tmp_path / "cache" / "zoo" / "tiny_zoo_model" / "tiny_zoo_model" / "checkpoint" / "ckpt-0")
    assert open(prefix + ".data-00000-of-00001", "rb").read() == b"weights" * 1000
    digest = (tmp_path / "cache" / "zoo" / "tiny_zoo_model.sha256").read_text().split()[0]
    assert digest == hashlib.sha256(ZOO_TAR).hexdigest()
    n = len(hits)
    assert pretrained.resolve(url, progress=False)[0] == prefix  # cached: no second download
    assert len(hits) == n


def test_zoo_name_with_pinned_sha(pretrained, server, monkeypatch):
    base, _ = server
    good = {"tiny": {"url": base + "/tiny_zoo_model.tar.gz", "sha256": hashlib.sha256(ZOO_TAR).hexdigest(),
                     "checkpoint": "checkpoint/ckpt-0", "type": "classification"}}
    monkeypatch.setattr(pretrained, "zoo", lambda api: good)
    prefix, kind = pretrained.resolve("tiny", progress=False)
    assert kind == "classification" and prefix.endswith(os.path.join("checkpoint", "ckpt-0"))
    with pytest.raises(pretrained.UserError) as e:
        pretrained.resolve("tinny", progress=False)
    assert "did you mean 'tiny'" in e.value.message


def test_sha_mismatch_fails_and_caches_nothing(pretrained, server, monkeypatch, tmp_path):
    base, _ = server
    bad = {"tiny": {"url": base + "/tiny_zoo_model.tar.gz", "sha256": "0" * 64}}
    monkeypatch.setattr(pretrained, "zoo", lambda api: bad)
    with pytest.raises(pretrained.UserError) as e:
        pretrained.resolve("tiny", progress=False)
    assert "sha256 mismatch" in e.value.message and hashlib.sha256(ZOO_TAR).hexdigest() in e.value.message
    assert e.value.code == 2  # bad input: exit 2
    zoo_dir = tmp_path / "cache" / "zoo"
    assert sorted(os.listdir(zoo_dir)) == [MARKER]  # no archive, no folder, no temp file left (the marker: ours)


def test_bad_archives_and_urls(pretrained, server, tmp_path):
    base, _ = server
    with pytest.raises(pretrained.UserError) as e:
        pretrained.resolve(base + "/evil.tar.gz", progress=False)
    assert "unsafe path" in e.value.message
    assert not (tmp_path / "cache" / "escape.txt").exists()
    with pytest.raises(pretrained.UserError) as e:
        pretrained.resolve(base + "/junk.tar.gz", progress=False)
    assert "not a valid tar archive" in e.value.message
    with pytest.raises(pretrained.UserError) as e:
        pretrained.resolve(base + "/missing.tar.gz", progress=False)
    assert "download failed" in e.value.message
    assert [f for f in os.listdir(tmp_path / "cache" / "zoo") if not f.startswith("tiny")] == [MARKER]


def test_local_dir_and_zoo_file(pretrained, tmp_path):
    ck = tmp_path / "mine" / "checkpoint"
    ck.mkdir(parents=True)
    (ck / "ckpt-0.index").write_bytes(b"i")
    assert pretrained.resolve(str(tmp_path / "mine"))[0] == str(ck / "ckpt-0")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(pretrained.UserError) as e:
        pretrained.resolve(str(empty))
    assert "no checkpoint" in e.value.message
    for api in ("tf1", "tf2"):  # every zoo entry names an archive URL
        entries = pretrained.zoo(api)
        assert entries and all(e["url"].startswith("https://") and e["url"].endswith(".tar.gz")
                               for e in entries.values())


def test_zoo_urls_are_https():
    """Issue #25: the zoo archives are fetched over https (download.tensorflow.org serves it), never
    plain http; needs no OD API, only the data file."""
    import yaml

    from conftest import ROOT

    zoo = yaml.safe_load((ROOT / "odrun" / "data" / "zoo.yaml").read_text())
    urls = [e["url"] for api in zoo.values() for e in api.values()]
    assert len(urls) >= 8 and all(u.startswith("https://download.tensorflow.org/") for u in urls), urls


def test_pinned_digest_refuses_a_differing_cached_copy(pretrained, server, monkeypatch, tmp_path):
    """A copy cached on trust (no digest yet), then the zoo pins another digest: exit 2, not used."""
    base, hits = server
    url = base + "/tiny_zoo_model.tar.gz"
    monkeypatch.setattr(pretrained, "zoo", lambda api: {"tiny": {"url": url, "sha256": None}})
    pretrained.resolve("tiny", progress=False)  # trust on first use: the digest is recorded
    n = len(hits)
    monkeypatch.setattr(pretrained, "zoo", lambda api: {"tiny": {"url": url, "sha256": "f" * 64}})
    with pytest.raises(pretrained.UserError) as e:
        pretrained.resolve("tiny", progress=False)
    assert e.value.code == 2 and "the zoo pins " + "f" * 64 in e.value.message
    assert "rm -r" in e.value.fix and len(hits) == n  # refused from the cache, nothing fetched


def test_first_download_without_a_digest_says_it_is_trusted(pretrained, server, monkeypatch, capsys):
    """Issue #25: with no published digest the first download is trusted: the terminal says so,
    with the digest recorded and where; a pinned archive says nothing of the kind."""
    base, _ = server
    url = base + "/tiny_zoo_model.tar.gz"
    monkeypatch.setattr(pretrained, "zoo", lambda api: {"tiny": {"url": url, "sha256": None}})
    pretrained.resolve("tiny", progress=False)
    err = capsys.readouterr().err
    assert "trust on first use" in err and hashlib.sha256(ZOO_TAR).hexdigest() in err
    assert "tiny_zoo_model.sha256" in err
    pretrained.resolve("tiny", progress=False)  # cached: nothing more to say
    assert "trust" not in capsys.readouterr().err


def test_pinned_download_says_nothing_of_trust(pretrained, server, monkeypatch, capsys):
    base, _ = server
    pin = {"tiny": {"url": base + "/tiny_zoo_model.tar.gz", "sha256": hashlib.sha256(ZOO_TAR).hexdigest()}}
    monkeypatch.setattr(pretrained, "zoo", lambda api: pin)
    pretrained.resolve("tiny", progress=False)
    assert "trust" not in capsys.readouterr().err


def test_tf1_zoo_archives_pin_a_cited_sha256():
    """Issue #25: every archive with a public digest pins it, citing where it was read; a pin is
    64 hex digits; an entry without one is null (trust on first use), never a guess."""
    import re

    import yaml

    from conftest import ROOT

    zoo = yaml.safe_load((ROOT / "odrun" / "data" / "zoo.yaml").read_text())
    for name, entry in zoo["tf1"].items():
        assert re.fullmatch(r"[0-9a-f]{64}", entry.get("sha256") or ""), name
        assert entry["sha256_source"].startswith("https://github.com/"), name
    for api in zoo.values():
        for name, entry in api.items():
            assert entry["sha256"] is None or re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), name
            assert (entry["sha256"] is None) == ("sha256_source" not in entry), name
