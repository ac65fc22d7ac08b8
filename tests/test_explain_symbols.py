"""Issue #24: explain reads the name in `module 'X' has no attribute 'Y'`, `cannot import name`,
`Unrecognized keyword arguments passed to`, `Could not interpret optimizer identifier` and answers
the replacement from odcore/data/symbols.yaml (TensorFlow's own tf_upgrade_v2 table included)."""
import json

import jsonschema
import pytest
import yaml

from conftest import FIXTURES, run_cli

from odcore import explain as core
from odcore import symbols

DATA = FIXTURES.parent.parent / "odcore" / "data"
CASES = yaml.safe_load((FIXTURES / "explain" / "symbols.yaml").read_text(encoding="utf-8"))["entries"]


def test_symbols_file_matches_its_schema_and_cites_sources():
    schema = json.loads((DATA / "symbols.schema.json").read_text())
    data = yaml.safe_load((DATA / "symbols.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    table = yaml.safe_load((DATA / "tf_renames_v2.yaml").read_text())
    assert len(table["renames"]) > 1000 and all(k.startswith("tf.") for k in table["renames"])
    assert table["renames"]["tf.Session"] == "tf.compat.v1.Session"
    assert "tf.contrib" in table["removed_modules"]


def test_schema_rejects_an_entry_without_source():
    schema = json.loads((DATA / "symbols.schema.json").read_text())
    data = yaml.safe_load((DATA / "symbols.yaml").read_text())
    del data["groups"][1]["source"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(data)


@pytest.mark.parametrize("case", CASES, ids=[c["source"].rsplit("/", 3)[-3] for c in CASES])
def test_real_texts_get_the_replacement(case):
    for matches in (core.explain(case["text"]), core.explain_lines(case["text"])):
        top = matches[0]
        assert case["replacement"] in top["fix"].replace(" ", "").replace("'", "") or \
            case["replacement"] in top["fix"], (top["id"], top["fix"])
        assert top["kind"] == "signature" and top.get("resolved_from", "").startswith("symbols.yaml")


def test_module_aliases_fold_to_the_public_name():
    r = symbols.resolve("AttributeError: module 'tensorflow._api.v2.train' has no attribute 'GradientDescentOptimizer'")
    assert r["replacement"] == "tf.compat.v1.train.GradientDescentOptimizer"
    r = symbols.resolve("AttributeError: module 'numpy' has no attribute 'NaN'")
    assert r["replacement"] == "numpy.nan" and "numpy 2.0" in r["title"]
    assert symbols.resolve("AttributeError: module 'tensorflow' has no attribute 'no_such_name'") is None
    assert symbols.resolve("a line without any of the messages") is None


def test_cli_names_the_replacement():
    r = run_cli("provision", "explain", "--json", "AttributeError: module 'numpy' has no attribute 'float'")
    top = json.loads(r.stdout)["matches"][0]
    assert top["confidence"] == "high" and "float64" in top["fix"]
    r = run_cli("provision", "explain", "AttributeError: module 'collections' has no attribute 'Mapping'")
    assert "collections.abc.Mapping" in r.stdout and r.returncode == 0
