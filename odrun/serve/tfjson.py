"""TF Serving's JSON <-> tensors for a SavedModel signature (no aiohttp, no TensorFlow here):
tensorflow_serving/util/json_tensor.cc, the rules of the REST API document. Used for the exports
odrun serves through their own signatures (classifiers): predict in row and columnar format,
classify/regress examples -> tf.Example features.

    values = request_tensors(body, specs)      # specs: {input name: (numpy dtype, rank or None)}
    answer = response_json(outputs, columnar)  # outputs: {output name: numpy array}
"""
import base64
import json

from odrun.serve.codecs import BadRequest


def debug(value):
    """rapidjson's compact writing of a JSON value (JsonValueToDebugString), for error texts."""
    return json.dumps(value, separators=(",", ":"))


def format_error(value, *parts):
    return BadRequest("JSON Value: {} {}".format(debug(value), "".join(parts)))


def signature_name(body, default):
    """FillSignature: `signature_name` absent -> default; not a string -> TF Serving's 400."""
    if not isinstance(body, dict):
        raise format_error(body, "Is not object")
    name = body.get("signature_name", default)
    if not isinstance(name, str):
        raise BadRequest("JSON Value: {} not formatted correctly. 'signature_name' key must be a string "
                         "value.".format(debug(name)))
    return name or default


def instances_or_inputs(body):
    """-> (value, columnar) with FillPredictRequestFromJson's checks and texts."""
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows and has_cols:
        raise format_error(body, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ")
    if has_rows:
        if not isinstance(body["instances"], list):
            raise format_error(body, "Expecting 'instances' to be an list/array")
        if not body["instances"]:
            raise format_error(body, "No values in 'instances' array")
        return body["instances"], False
    if has_cols:
        return body["inputs"], True
    raise BadRequest("Missing 'inputs' or 'instances' key")


def is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def b64(value):
    if not isinstance(value["b64"], str):
        raise BadRequest("JSON Value: {} not formatted correctly for base64 data".format(debug(value)))
    try:
        return base64.b64decode(value["b64"], validate=True)
    except ValueError:
        raise BadRequest("Unable to base64 decode")


def _strings(value):
    """Nested lists of strings / {"b64"} objects -> the same nesting of bytes."""
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if is_b64(value):
        return b64(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise BadRequest("JSON Value: {} Type: {} is not of expected type: string".format(debug(value), _kind(value)))


def _kind(value):
    return {dict: "Object", list: "Array", str: "String", bool: "Bool", type(None): "Null"}.get(type(value), "Number")


def to_array(value, name, spec):
    """One input's JSON value -> a numpy array of the signature's dtype (a rectangular tensor)."""
    import numpy as np
    dtype, _ = spec
    try:
        if dtype == np.object_:
            array = np.array(_strings(value), dtype=object)
        else:
            if any(isinstance(v, (bool, str, dict)) for v in _leaves(value)) and dtype != np.bool_:
                bad = next(v for v in _leaves(value) if isinstance(v, (bool, str, dict)))
                raise BadRequest("JSON Value: {} Type: {} is not of expected type: {}".format(
                    debug(bad), _kind(bad), np.dtype(dtype).name))
            array = np.array(value, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest("Failed to process element: 0 key: {} of 'instances' list. Error: Invalid argument: "
                         "the value is not a rectangular tensor of {}".format(name, np.dtype(dtype).name))
    return array


def _leaves(value):
    if isinstance(value, list):
        for v in value:
            for leaf in _leaves(v):
                yield leaf
    else:
        yield value


def _row_inputs(rows, specs):
    names = sorted(specs)
    columns = {n: [] for n in names}
    for i, row in enumerate(rows):
        named = isinstance(row, dict) and not is_b64(row)
        if len(names) == 1 and not named:
            columns[names[0]].append(row)
            continue
        if not named:
            raise BadRequest("Expecting object but got list at item {} of input list".format(i))
        # TF Serving's two texts (json_tensor.cc FillTensorMapFromInstancesList): a key the signature lacks fails
        # first, in key order; then a row whose keys differ from the signature's inputs.
        extra = [k for k in row if k not in names]
        if extra:
            raise BadRequest("Failed to process element: {} key: {} of 'instances' list. Error: Invalid argument: "
                             "JSON object: does not have named input: {}".format(i, extra[0], extra[0]))
        if set(row) != set(names):
            raise BadRequest("Failed to process element: {} of 'instances' list. JSON object: {} keys must be "
                             "equal to: {}".format(i, debug(row), ",".join(sorted(names))))
        for n in names:
            columns[n].append(row[n])
    return columns


def request_tensors(body, specs):
    """A predict body -> ({input name: numpy array}, columnar)."""
    value, columnar = instances_or_inputs(body)
    names = sorted(specs)
    if columnar:
        if isinstance(value, dict) and not is_b64(value) and (len(names) > 1 or names[0] in value):
            missing = [n for n in names if n not in value]
            if missing:
                raise BadRequest("Missing named input: {} in 'inputs' object.".format(missing[0]))
            columns = {n: value[n] for n in names}
        elif len(names) == 1:
            columns = {names[0]: value}
        else:
            raise format_error(value, "Expecting object with named inputs")
    else:
        columns = _row_inputs(value, specs)
    return {n: to_array(v, n, specs[n]) for n, v in columns.items()}, columnar


def _json_value(array, name):
    """A numpy value -> JSON: bytes as UTF-8 text, or {"b64"} when the output's name ends in
    `_bytes` or the bytes are not UTF-8 (IsNamedTensorBytes, AddSingleValueAndAdvance)."""
    import numpy as np
    array = np.asarray(array)
    if array.dtype.kind in "OS":
        as_b64 = name.endswith("_bytes")

        def text(v):
            if not as_b64:
                try:
                    return v.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(v).decode("ascii")}
        return _map(array.tolist(), text)
    return array.tolist()


def _map(value, fn):
    return [_map(v, fn) for v in value] if isinstance(value, list) else fn(value)


def response_json(outputs, columnar):
    """MakeRowFormatJsonFromTensors / MakeColumnarFormatJsonFromTensors: one output -> its values
    bare, several -> objects by name (row format: one per instance)."""
    names = sorted(outputs)
    if columnar:
        if len(names) == 1:
            return {"outputs": _json_value(outputs[names[0]], names[0])}
        return {"outputs": {n: _json_value(outputs[n], n) for n in names}}
    sizes = {n: (outputs[n].shape[0] if outputs[n].ndim else None) for n in names}
    for n in names:
        if sizes[n] is None:
            raise BadRequest("Tensor name: {} has no shape information ".format(n))
        if sizes[n] != sizes[names[0]]:
            raise BadRequest("Tensor name: {} has inconsistent batch size: {} expecting: {}".format(
                n, sizes[n], sizes[names[0]]))
    rows = {n: _json_value(outputs[n], n) for n in names}
    if len(names) == 1:
        return {"predictions": rows[names[0]]}
    return {"predictions": [{n: rows[n][i] for n in names} for i in range(sizes[names[0]])]}


def examples(body):
    """FillClassifyRegressRequestFromJson: -> (context features or None, [example features])."""
    context = body.get("context")
    if context is not None:
        context = features_of(context)
    if "examples" not in body:
        raise format_error(body, "When method is classify, key 'examples' is expected and was not found")
    rows = body["examples"]
    if not isinstance(rows, list):
        raise format_error(body, "Expecting 'examples' value to be an list/array")
    if not rows:
        raise format_error(body, "'examples' value is an empty array")
    return context, [features_of(r) for r in rows]


def features_of(value):
    """MakeExampleFromJsonObject: {name: value or [values]} -> {name: (kind, [values])}, kind
    bytes/float/int64 from the JSON types (a b64 object or a string: bytes)."""
    if not isinstance(value, dict):
        raise BadRequest("Example must be JSON object but got JSON {}".format(_kind(value)))
    out = {}
    for name, content in value.items():
        kind, values = None, []
        for v in (content if isinstance(content, list) else [content]):
            this, v = _feature_value(name, v)
            if kind is not None and this != kind:
                raise BadRequest("Unexpected element type in feature: {} expecting type: {}".format(name, kind))
            kind = this
            values.append(v)
        out[name] = (kind, values)
    return out


def _feature_value(name, v):
    if isinstance(v, bool):
        return "int64", int(v)
    if isinstance(v, str):
        return "bytes", v.encode("utf-8")
    if is_b64(v):
        return "bytes", b64(v)
    if isinstance(v, float):
        return "float", v
    if isinstance(v, int):
        if v >= 2 ** 63:
            raise BadRequest("Feature: {} has uint64_t element. Only int64_t is supported.".format(name))
        return "int64", v
    raise BadRequest("Feature: {} has element with unexpected JSON type: {}".format(name, _kind(v)))
