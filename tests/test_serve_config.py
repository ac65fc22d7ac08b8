"""#26's models.config cases that need no trained model: TF Serving's ModelServerConfig text format
parsed with its own proto (tensorflow_serving.config.model_server_config_pb2), and every bad
config is exit 2 naming the file and the line, before a port is bound or a model loads (a
metadata.json alone marks a version folder here; nothing is loaded).
The config texts follow TF Serving's documented form (tensorflow.org/tfx/serving/serving_config);
the good one is tests/_shared.py's TWO_MODELS_CONFIG, which test_serve_versions serves."""
import json

import pytest

from _shared import TWO_MODELS_CONFIG
from conftest import have_module, require, run_cli

GOOD = TWO_MODELS_CONFIG  # det (BASE/det: versions 1 and 2, labels) and shapes (the path given)


@pytest.fixture
def base(tmp_path):
    require(have_module("aiohttp") and have_module("tensorflow_serving"),
            "aiohttp / tensorflow-serving-api not installed")
    for v in ("1", "2", "3"):
        (tmp_path / "det" / v).mkdir(parents=True)
        (tmp_path / "det" / v / "metadata.json").write_text(json.dumps({"classes": [{"id": 1, "name": "circle"}]}))
    (tmp_path / "det" / "notes").mkdir()  # not a number: never a version
    return tmp_path


def test_a_good_config_reads_policy_labels_and_versions(base):
    from odrun.serve import models
    (base / "models.config").write_text(GOOD % (base / "det" / "3"))
    det, shapes = models.read_config(str(base / "models.config"))
    assert (det.name, det.base_path, det.policy) == ("det", str(base / "det"), ("specific", {1, 2}))
    assert det.labels == {"stable": 1, "canary": 2}
    assert det.wanted(models.discover(det.base_path)) == [1, 2]
    assert shapes.policy == ("latest", 1) and shapes.wanted(models.discover(shapes.base_path)) == [1]
    assert models.discover(str(base / "det")) == {n: str(base / "det" / str(n)) for n in (1, 2, 3)}


@pytest.mark.parametrize("text,line,words", [
    ('model_config_list {\n  config {\n    name: "det"\n    base_path: "det"\n    bogus: 3\n  }\n}\n', 5,
     'no field named "bogus"'),
    ('model_config_list {\n  config {\n    name: "det"\n    base_path: "det"\n', 4, "Expected \"}\""),
    ('model_config_list {\n  config {\n    name: "det"\n    base_path: "nowhere"\n  }\n}\n', 4,
     "is not a folder"),
    ('model_config_list {\n  config {\n    name: "det"\n    base_path: "det"\n'
     '    version_labels { key: "canary" value: 7 }\n  }\n}\n', 5, "names version 7, which is not served"),
    ('model_config_list {\n  config {\n    name: "det"\n    base_path: "det"\n    model_platform: "onnx"\n'
     '  }\n}\n', 5, "model_platform 'onnx'"),
    ('model_config_list {\n  config {\n    name: "det"\n    base_path: "det"\n  }\n  config {\n'
     '    name: "det"\n    base_path: "det"\n  }\n}\n', 3, "listed twice"),
    ('model_config_list {\n  config {\n    base_path: "det"\n  }\n}\n', 1, "without name"),
])
def test_a_bad_config_is_exit_2_naming_file_and_line(base, text, line, words):
    path = base / "models.config"
    path.write_text(text)
    proc = run_cli("odrun", "serve", "--model-config-file", path, "--port", "0", check=2, timeout=120)
    assert "{}:{}".format(path, line) in proc.stderr and words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("flags,words", [
    (["--model", "{base}/det", "--model-config-file", "{base}/models.config"], "one of them"),
    ([], "give --model or --model-config-file"),
    (["--model-config-file", "{base}/models.config", "--name", "x"], "--name"),
    (["--model-config-file", "{base}/missing.config"], "no such file"),
    (["--model", "{base}/det", "--file-system-poll-wait-seconds", "-1"], "--file-system-poll-wait-seconds"),
])
def test_model_source_flags_are_checked(base, flags, words):
    (base / "models.config").write_text(GOOD % (base / "det" / "3"))
    proc = run_cli("odrun", "serve", *[f.format(base=base) for f in flags], check=2, timeout=120)
    assert words in proc.stderr, proc.stderr
