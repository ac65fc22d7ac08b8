"""explain's python-env resolver (odcore/pyenv.py, texts in odcore/data/pyenv.yaml): pip resolver conflicts,
wheels for another Python/platform and venvs without ensurepip are answered with the packages, versions and
interpreter the message names. Texts are real, copied from the public threads in tests/fixtures/explain/dev8b.yaml
(issue #24 round 5), through both the pasted-text and the log path."""
import pathlib

import pytest
import yaml

from odcore import explain as core
from odcore import pyenv

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "explain"
DEV = dict((e["source"], e["text"]) for name in ("dev8b", "dev8b3") for e in yaml.safe_load(
    (FIXTURES / (name + ".yaml")).read_text(encoding="utf-8"))["entries"])
GH = "https://github.com/"

CASES = [  # (thread, words the title+fix must name)
    ("moojink/openvla-oft/issues/90", ["tensorboard", "tensorflow 2.15.0", "<2.16,>=2.15", "tensorboard==2.16.2"]),
    ("jianchang512/vocal-separate/issues/10", ["numpy", "spleeter 2.1.0", "<1.19.0,>=1.16.0", "python_version"]),
    ("tensorflow/data-validation/issues/269", ["tfx-bsl 1.16.1", "tensorflow<2.17,>=2.16"]),
    ("ossamaAhmed/blackbox_mpc/issues/4", ["tensorflow==2.0.0", "blackbox-mpc 0.3", "Python"]),
    ("tensorflow/tensorflow/issues/10061", ["CPython 3.5 (cp35)", "Windows x86-64", "tensorflow-gpu==1.1.0"]),
    ("pyenv/pyenv-installer/issues/125", ["python3.8-venv"]),
    ("chatmail/relay/issues/101", ["python3.11-venv"]),
    ("pypa/virtualenv/issues/1059", ["python3.6-venv"]),  # python3-venv installed, but for 3.5
    ("tensorflow/tensorflow/issues/43531", ["Python 3.5, 3.6, 3.7", "Python 3.8", "python=3.7"]),  # conda's solver
    ("conda/conda/issues/5355", ["python 3.6", "tensorflow 0.12.0rc0", "conda search tensorflow=0.12.0rc0"]),
]


@pytest.mark.parametrize("thread,words", CASES, ids=[c[0].split("/")[1] for c in CASES])
def test_real_texts_name_the_packages(thread, words):
    text = DEV[GH + thread]
    for path, matches in (("text", core.explain(text)), ("log", core.explain_lines(text))):
        if path == "log" and "UnsatisfiableError" in text:
            continue  # conda's report spreads the package and the Python over lines no log window joins
        top = matches[0]
        shown = top["title"] + " " + top["fix"]
        assert top["kind"] == "signature" and top["resolved_from"].startswith("pyenv.yaml"), top["id"]
        if path == "log" and words[0].endswith("-venv"):
            words = ["-venv"]  # a log line's window need not hold the line naming the version
        assert all(w in shown for w in words), (path, words, shown)

def test_the_generic_wheel_signature_is_replaced_and_unrelated_text_is_not_parsed():
    top = core.explain("tensorflow-1.4.0-cp27-cp27m-macosx_10_12_intel.whl is not a supported wheel on this platform.")[0]
    assert top["id"] == "unsupported-wheel" and "CPython 2.7 (cp27)" in top["title"] and "macOS" in top["title"]
    assert pyenv.resolve("ERROR: No matching distribution found for tensorflow") is None
    assert pyenv.resolve("The conflict is caused by: nothing parsable") is None


def test_answers_cite_sources():
    data = pyenv.load()
    for part in ("conflict", "wheel", "venv", "conda"):
        assert data[part]["sources"] and all(s.startswith("https://") for s in data[part]["sources"])
