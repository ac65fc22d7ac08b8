"""`odrun serve` answers a bad request body in TF Serving's words (tensorflow/serving 9d981c5,
tensorflow_serving/util/json_tensor.cc; odrun/serve/rest.json cites each), so `provision explain`
names the same cause and fix for both servers. No TensorFlow needed."""
import pytest

from odcore import explain as core
from odrun.serve import codecs, tfjson


def _text(call, *args):
    with pytest.raises(codecs.BadRequest) as info:
        call(*args)
    return str(info.value)


def test_a_body_that_is_not_json_gets_tf_servings_parse_error():
    assert _text(codecs.parse_json, b"{not json") == \
        "JSON Parse error: Expecting property name enclosed in double quotes. at offset: 1"
    assert _text(codecs.parse_json, b"") == "JSON Parse error: The document is empty"
    assert _text(codecs.parse_json, b'{"a": NaN}').startswith("JSON Parse error: Invalid value. at offset: ")
    assert _text(codecs.parse_json, b"\xff") == "JSON Parse error: Invalid encoding in string. at offset: 0"


def test_row_keys_get_tf_servings_two_texts():
    specs = {"images": None, "scale": None}
    assert _text(tfjson._row_inputs, [{"images": [1], "scale": 1, "age": 3}], specs) == (
        "Failed to process element: 0 key: age of 'instances' list. Error: Invalid argument: "
        "JSON object: does not have named input: age")
    assert _text(tfjson._row_inputs, [{"images": [1]}], specs) == (
        "Failed to process element: 0 of 'instances' list. JSON object: {\"images\":[1]} keys must be "
        "equal to: images,scale")


def test_explain_names_the_cause_of_odrun_serves_body_errors():
    kb = core.load()
    for text in (_text(codecs.parse_json, b"{not json"),
                 _text(tfjson._row_inputs, [{"images": [1]}], {"images": None, "scale": None})):
        top = core.explain(text, kb)[0]
        assert top["kind"] == "signature" and top["family"] == "serve", (text, top["id"])
