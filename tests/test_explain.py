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
    assert len(KB) >= 150
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


# ---------------------------------------------------------------- issue #12: KB shape, logs, speed
SCHEMA = json.loads((FIXTURES.parent.parent / "odcore" / "data" / "errors.schema.json").read_text())


def test_what_users_read_names_tutorials_not_internal_numbers():
    """title, cause, fix and sources reach users (sources through --json): no "seed 000"-style
    internal names; a tutorial is named with what it is ("tutorial 000 (TF + OD API install ...)")."""
    for sig in KB:
        for text in [sig.title, sig.cause, sig.fix] + list(sig.sources):
            assert not re.search(r"\bseeds?\b(?! ?\()", text.replace("random_seed", "")), (sig.id, text)
            assert not re.search(r"\bseed 00\d", text), (sig.id, text)
            for m in re.finditer(r"\btutorial (00\d)\b", text):
                assert text[m.end():m.end() + 2] == " (", (sig.id, text)  # followed by what it is


def test_knowledge_base_matches_its_schema_and_families():
    import jsonschema

    data = yaml.safe_load(open(core.KB_PATH, encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    kb = core.load()
    assert {f.id for f in kb.families} >= {"nvidia-driver", "cuda-runtime", "cudnn", "cublas", "gpu-memory",
                                          "compute-capability", "tf-install", "python-deps", "od-api", "data",
                                          "docker", "apt-ansible"}
    # every pattern is reachable through the prefilter, and the prefilter stays small (speed)
    assert kb.uncovered == [] and len(kb.anchors) <= 115  # 101 with issue #24 round 4 ("save_path": exporter_main_v2), 103 with round 5 8c ("initialized", "status"), 104 with 8e ("killed": a bare `Killed` line), 109 with 8d ("json", "flex", "category", "collective", "fetch": TF Serving json_tensor.cc, the TFLite converter, retrain.py, base_collective_executor.cc, ansible apt.py source texts), 115 with 8f ("larger", "model_config_file", "flag", "toco", "belonging", "unreachable": grpc message size, TF Serving server.cc, absl flags, the TF1 toco tools, Keras flow_from_directory, Ansible ssh.py); 50 MB log time in bench/README
    assert all(sig_id == "apt-ansible" for sig_id, _ in kb.unkeyed), kb.unkeyed


@pytest.mark.parametrize("sig_id,i,phrasing", CASES, ids=["stream-{}-{}".format(c[0], c[1]) for c in CASES])
def test_phrasing_recognised_line_by_line(sig_id, i, phrasing):
    """The same phrasings through the log path (prefilter + line windows) a big log takes."""
    if phrasing.get("expect") == "none":
        return
    matches = core.explain_lines(phrasing["text"])
    assert matches and matches[0]["id"] == sig_id, [m["id"] for m in matches]


def test_fix_agrees_with_cause_versions():
    """An entry naming a TensorFlow range must not send the user to an image outside it (#18)."""
    from packaging.specifiers import SpecifierSet

    from provision import image

    tf_of = {f: image.label_args(f).get("TF_VERSION") for f in image.flavors()}
    checked = 0
    for sig in KB:
        spec = (sig.versions or {}).get("tensorflow")
        for flavor in re.findall(r"provision image build (\S+)", sig.fix):
            flavor = flavor.rstrip(".,;)")
            assert flavor in tf_of, (sig.id, flavor)
            if spec:  # 'A || B' is a union of ranges
                assert any(tf_of[flavor] in SpecifierSet(part) for part in spec.split("||")), (
                    sig.id, flavor, tf_of[flavor], spec)
                checked += 1
    assert checked >= 2
    assert "tf1.15-gpu" in explain.explain("ImportError: libcudnn.so.7: cannot open shared object file")[0]["fix"]


NOISE = [  # real TF 2.15 start-up and training lines, as this machine prints them
    "2026-12-01 10:00:00.000000: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on. You may see "
    "slightly different numerical results due to floating-point round-off errors from different computation orders.",
    "2026-12-01 10:00:00.000000: I tensorflow/core/platform/cpu_feature_guard.cc:182] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "W1201 10:00:01.000000 140000000000000 deprecation.py:50] From /usr/lib/python3/dist-packages/tensorflow/python/"
    "util/deprecation.py:660: calling map_fn_v2 (from tensorflow.python.ops.map_fn) with dtype is deprecated",
    "I1201 10:00:02.000000 140000000000000 model_lib_v2.py:705] Step 100 per-step time 0.512s",
    "INFO:tensorflow:{'Loss/classification_loss': 0.41, 'Loss/localization_loss': 0.12, 'Loss/total_loss': 0.83}",
    "W tensorflow/core/common_runtime/bfc_allocator.cc:237] Allocator (GPU_0_bfc) ran out of memory trying to "
    "allocate 2.14GiB with freed_by_count=0. The caller indicates that this is not a failure",
]


def test_real_error_at_the_end_of_a_5000_line_log_ranks_first(tmp_path):
    lines = [NOISE[i % len(NOISE)].replace("Step 100", "Step {}".format(i)) for i in range(5000)]
    lines.insert(4990, "tensorflow.python.framework.errors_impl.NotFoundError: Unsuccessful TensorSliceReader "
                       "constructor: Failed to find any matching files for /data/ckpt/ckpt-0")
    log = tmp_path / "train.log"
    log.write_text("\n".join(lines) + "\n")
    matches = core.explain_file(str(log))
    assert matches[0]["id"] == "ckpt-not-found", [m["id"] for m in matches]
    harmless = [m["id"] for m in matches if m["harmless"]]
    assert "cpu-instructions-not-compiled" in harmless
    assert matches[-1]["harmless"]


def test_family_answer_when_no_signature_matches():
    text = ("2021-03-01 10:00:00.000000: E tensorflow/stream_executor/cuda/cuda_event.cc:29] Error polling for "
            "event status: failed to query event: CUDA_ERROR_LAUNCH_TIMEOUT: the launch timed out and was terminated")
    best = core.explain(text)[0]
    assert best["kind"] == "family" and best["id"] == "cuda-runtime" and "provision doctor" in best["fix"]
    assert core.explain("E: Package 'foo' has no installation candidate")[0]["family"] == "apt-ansible"


def test_only_harmless_notices_exit_1_and_say_so():
    proc = run_cli("provision", "explain", NOISE[1], check=1)
    assert "none of these is an error" in proc.stdout and "harmless" in proc.stdout


def test_binary_and_empty_input_exit_2(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 64)
    proc = run_cli("provision", "explain", "--log", junk, check=2)
    assert "binary" in proc.stderr and "Traceback" not in proc.stderr
    empty = tmp_path / "empty.log"
    empty.write_text("")
    proc = run_cli("provision", "explain", "--log", empty, check=2)
    assert "empty" in proc.stderr
    blank = tmp_path / "blank.log"
    blank.write_text("\n\n   \n")
    run_cli("provision", "explain", "--log", blank, check=2)
    run_cli("provision", "explain", "   ", check=2)


def test_stream_memory_is_bounded(tmp_path):
    """A 12 MB log is scanned in chunks: the result is the same as for a small one."""
    big = tmp_path / "big.log"
    with open(str(big), "w") as fh:
        for i in range(120000):
            fh.write(NOISE[i % 5].replace("Step 100", "Step {}".format(i)) + "\n")
        fh.write("ImportError: libcudnn.so.7: cannot open shared object file: No such file or directory\n")
    with open(str(big), "rb") as fh:
        matches = core.scan_stream(fh, chunk_bytes=1 << 20)
    assert matches[0]["id"] == "libcudnn7-missing"
