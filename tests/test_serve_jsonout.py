"""odrun/serve/jsonout.py: the JSON writer of `odrun serve`'s predict answers (float32 arrays by one
format string). Asserted on the bytes it writes: valid JSON, every float32 read back bit-exact,
whole numbers as floats (TF Serving's ".0"), and what it hands to json.dumps unchanged."""
import json

import numpy as np

from odrun.serve import jsonout


def _values():
    rng = np.random.RandomState(0)
    spread = rng.randn(20000) * 10.0 ** rng.randint(-44, 38, 20000)
    edges = [0.0, -0.0, 1.0, 10.0, 175.0, -3.25, 0.5, 0.1, 1e-5, 9.999999e-6, 1e8, 999999999.0, 1e9, 123456789.0,
             1.4e-45, 3.4e38, -3.4e38, 0.00845915079]
    values = np.concatenate([spread, edges]).astype(np.float32)
    return values[np.isfinite(values)]


def test_float32_values_read_back_exactly_and_stay_floats():
    values = _values()
    back = json.loads(jsonout.dumps(values))
    assert all(type(v) is float for v in back)
    assert np.array_equal(np.asarray(back, dtype=np.float32), values)


def test_numbers_are_tf_servings_nine_digits():
    text = jsonout.dumps(np.array([175.0, 0.5, 0.1, 1e9, 0.00845915079, -3.25, 0.0], dtype=np.float32))
    assert text == b"[175.0,0.5,0.100000001,1e+09,0.00845915079,-3.25,0.0]"


def test_nesting_shapes_and_other_values():
    rng = np.random.RandomState(1)
    boxes = rng.rand(3, 2, 4).astype(np.float32)
    boxes[0, 0, 0] = 1.0  # a whole number among fractions
    answer = {"predictions": [{"boxes": boxes, "num": np.float32(3), "ids": np.arange(3), "name": "c\u00e9"}],
              "empty": np.zeros((0, 4), np.float32), "nan": np.array([np.nan], np.float32), "n": None}
    back = json.loads(jsonout.dumps(answer))
    row = back["predictions"][0]
    assert np.array_equal(np.asarray(row["boxes"], dtype=np.float32), boxes)
    assert row["num"] == 3.0 and type(row["num"]) is float
    assert row["ids"] == [0, 1, 2] and row["name"] == "c\u00e9"
    assert back["empty"] == [] and back["n"] is None
    assert json.dumps(back["nan"]) == "[NaN]"  # as json.dumps wrote it before (TF Serving writes NaN too)


def test_columnar_lists_of_arrays():
    rows = [np.full((2,), 0.25, np.float32), np.full((2,), 2.0, np.float32)]
    assert jsonout.dumps({"outputs": {"s": rows}}) == b'{"outputs": {"s": [[0.25,0.25], [2.0,2.0]]}}'
