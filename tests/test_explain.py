"""provision explain: every signature in odcore/data/errors.yaml is recognised, as the best
match, from >= 2 real phrasings posted in public threads (tests/fixtures/explain/phrasings.yaml
cites each); plus the CLI contract (--log, --json, exit codes) and knowledge-base validation."""
import json
import re

import pytest
import yaml

from conftest import FIXTURES, run_cli

from odcore import explain as core
from odcore.errors import UserError
from provision import explain

PHRASINGS = yaml.safe_load((FIXTURES / "explain" / "phrasings.yaml").read_text(encoding="utf-8"))
KB = explain.load()
CASES = [(sig_id, i, p) for sig_id, items in PHRASINGS.items() for i, p in enumerate(items)]


def test_knowledge_base_size_and_shape():
    assert len(KB) >= 30
    for sig in KB:
        assert sig.title and sig.cause and sig.fix and sig.sources and sig.patterns, sig.id
    # fixes point at provision commands where the host playbooks apply
    by_id = {s.id: s for s in KB}
    for sig_id, tag in [("nvidia-smi-no-driver", "driver"), ("nvml-version-mismatch", "kernel-hold"),
                        ("nouveau-in-use", "nouveau"), ("docker-gpu-driver-missing", "toolkit"),
                        ("docker-daemon-down", "docker"), ("nvidia-module-not-found", "driver")]:
        assert "provision host --tags " + tag in by_id[sig_id].fix, sig_id


def test_every_signature_has_two_public_phrasings():
    ids = {s.id for s in KB}
    assert set(PHRASINGS) == ids, set(PHRASINGS) ^ ids
    for sig_id, items in PHRASINGS.items():
        public = [p for p in items if re.match(r"https://", p["source"]) and p.get("expect") != "none"]
        assert len({p["source"] for p in public}) >= 2, sig_id


@pytest.mark.parametrize("sig_id,i,phrasing", CASES, ids=["{}-{}".format(c[0], c[1]) for c in CASES])
def test_phrasing_recognised_as_best_match(sig_id, i, phrasing):
    matches = explain.explain(phrasing["text"])
    if phrasing.get("expect") == "none":
        assert matches == [], [m["id"] for m in matches]
        return
    assert matches, "nothing matched"
    assert matches[0]["id"] == sig_id, [m["id"] for m in matches]


def test_log_noise_and_ranking():
    """A real error buried in an INFO-heavy log outranks the AVX2 notice that precedes it."""
    log = "\n".join([
        "2019-01-09 21:39:35.073563: I tensorflow/core/platform/cpu_feature_guard.cc:141] Your CPU supports "
        "instructions that this TensorFlow binary was not compiled to use: AVX2 AVX512F FMA",
        "I0330 12:15:57.470311 140123260897088 deprecation.py:339] ...",
        "W tensorflow/stream_executor/platform/default/dso_loader.cc:64] Could not load dynamic library "
        "'libcudnn.so.8'; dlerror: libcudnn.so.8: cannot open shared object file: No such file or directory",
        "W tensorflow/core/common_runtime/gpu/gpu_device.cc:1850] Cannot dlopen some GPU libraries.",
    ])
    ids = [m["id"] for m in explain.explain(log)]
    assert ids[0] == "libcudnn-missing"
    assert set(ids) == {"libcudnn-missing", "gpu-libraries-dlopen", "cpu-instructions-not-compiled"}
    assert ids[-1] == "cpu-instructions-not-compiled"


def test_cli_text_log_json_and_exit_codes(tmp_path):
    proc = run_cli("provision", "explain", "--json", "Failed to initialize NVML: Driver/library version mismatch",
                   check=0)
    data = json.loads(proc.stdout)
    import jsonschema
    from conftest import ROOT
    jsonschema.validate(data, json.loads((ROOT / "odcore" / "data" / "explain.schema.json").read_text()))
    assert list(data) == ["matches"]
    assert len(data["matches"]) == 1
    assert data["matches"][0]["id"] == "nvml-version-mismatch"

    log = tmp_path / "train.log"
    log.write_text(PHRASINGS["oom"][0]["text"] + "\n" + PHRASINGS["ckpt-not-found"][0]["text"])
    proc = run_cli("provision", "explain", "--log", log, "--json", check=0)
    assert {m["id"] for m in json.loads(proc.stdout)["matches"]} == {"oom", "ckpt-not-found"}

    proc = run_cli("provision", "explain", "--log", log, check=0)
    assert "fix:" in proc.stdout and "batch_size" in proc.stdout

    proc = run_cli("provision", "explain", "--json", "all good, training finished", check=1)
    assert json.loads(proc.stdout) == {"matches": []}
    proc = run_cli("provision", "explain", "--log", tmp_path / "missing.log", check=2)
    assert "missing.log" in proc.stderr and "Traceback" not in proc.stderr
    run_cli("provision", "explain", check=2)


def test_bad_knowledge_base_is_named(tmp_path):
    bad = tmp_path / "errors.yaml"
    bad.write_text("- id: x\n  family: f\n  title: t\n  patterns: ['(']\n  cause: c\n  fix: f\n  sources: [s]\n")
    with pytest.raises(UserError) as exc:
        explain.load(bad)
    assert "signatures 0 (x)" in exc.value.where and "regex" in exc.value.message
    bad.write_text("- id: x\n  title: t\n")
    with pytest.raises(UserError) as exc:
        explain.load(bad)
    assert "patterns" in exc.value.message
