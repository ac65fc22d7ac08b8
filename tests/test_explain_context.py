"""Issue #24 "Context": `provision explain --here` ranks candidate causes by this machine's TensorFlow
(package metadata, no TensorFlow import) and says which ones its version rules out."""
import json

from conftest import run_cli

from provision import explain as cli

# two real errors in one log: cuDNN 7 (a TF 1.13-2.3 library, tensorflow/tensorflow#20271) and the NumPy 2
# ABI refusal (TF < 2.18, jupyter/notebook#7522); which one is the cause depends on the TensorFlow here
LOG = ("ImportError: libcudnn.so.7: cannot open shared object file: No such file or directory\n"
       "A module that was compiled using NumPy 1.x cannot be run in\n"
       "NumPy 2.0.0 as it may crash. To support both 1.x and 2.x\n")


def ids(matches):
    return [m["id"] for m in matches]


def test_installed_tensorflow_moves_ruled_out_causes_last():
    plain = cli.explain(LOG)
    assert ids(plain).index("libcudnn7-missing") < ids(plain).index("numpy2-abi")
    tf2 = cli.apply_context(plain, {"tensorflow": "2.15.1"})
    assert ids(tf2)[-1] == "libcudnn7-missing" and tf2[-1]["ruled_out"]
    assert "outside >=1.13,<2.4" in tf2[-1]["context"]
    numpy = next(m for m in tf2 if m["id"] == "numpy2-abi")
    assert numpy["context"] == "fits this machine: TensorFlow 2.15.1 here is within <2.18"
    tf1 = cli.apply_context(plain, {"tensorflow": "1.15.5"})
    assert ids(tf1) == ids(plain)  # both fit TF 1.15: order unchanged
    assert cli.apply_context(plain, {}) == plain


def test_union_ranges_and_unparsable_versions():
    assert cli.in_spec("2.15.1", "<2.6 || >=2.12,<2.20") and not cli.in_spec("2.8.0", "<2.6 || >=2.12,<2.20")
    assert cli.in_spec("not-a-version", "<2.0")


def test_cli_here_says_what_it_used():
    facts = cli.machine_context()
    r = run_cli("provision", "explain", "--here", "--json", LOG)
    doc = json.loads(r.stdout)
    assert doc["context"] == facts
    r = run_cli("provision", "explain", "--here", LOG)
    assert r.stdout.startswith("context: ")
    if facts:
        assert facts["tensorflow"] in r.stdout.splitlines()[0] and "here: " in r.stdout
