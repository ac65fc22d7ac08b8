"""TF Serving's warmup file, `VERSION/assets.extra/tf_serving_warmup_requests`: a TFRecord of
PredictionLog protos (tensorflow.org/tfx/serving/saved_model_warmup), each a PredictRequest that
the server runs once before the version is AVAILABLE.

`odrun export` writes it and `odrun serve` replays it. Both use the protobuf wire format directly
(the few fields below) so that neither needs tensorflow-serving-api, and a server on a TF-free
runtime (onnx, tflite) never imports TensorFlow to read it; tests/test_serve_versions.py checks the
file with the official `prediction_log_pb2.PredictionLog`. Field numbers: tensorflow_serving/apis/
prediction_log.proto (predict_log = 6), predict.proto (model_spec = 1, inputs = 2), model.proto
(name = 1, signature_name = 3), tensorflow/core/framework/tensor.proto (dtype = 1, tensor_shape = 2,
tensor_content = 4, string_val = 8) and tensor_shape.proto (dim = 2, size = 1).
"""
import os
import struct

import numpy as np

PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000  # TF Serving's kMaxNumRecords (servables/tensorflow/saved_model_warmup_util.cc)
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 9: np.int64, 19: np.float16}  # types.proto
DT_STRING = 7
ENUM_OF = {np.dtype(v).name: k for k, v in DTYPES.items()}


class BadWarmup(ValueError):
    """The warmup file is not a TFRecord of PredictionLog predict requests."""


# ---------------------------------------------------------------- TFRecord framing (crc32c masked)
def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


try:
    from crc32c import crc32c as _crc  # C speed where installed
except ImportError:  # pragma: no cover - the pure-Python fallback
    _TABLE = _crc32c_table()

    def _crc(data):
        c = 0xFFFFFFFF
        for b in bytearray(data):
            c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
        return c ^ 0xFFFFFFFF


def _masked(data):
    c = _crc(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_records(path, records):
    """records (bytes) -> a TFRecord file (temp then rename: never half a file)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for data in records:
            length = struct.pack("<Q", len(data))
            f.write(length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data)))
    os.replace(tmp, path)


def read_records(path):
    with open(path, "rb") as f:
        blob = f.read()
    at, out = 0, []
    while at < len(blob):
        if len(blob) - at < 12:
            raise BadWarmup("record {}: truncated header".format(len(out) + 1))
        length_bytes = blob[at:at + 8]
        (length,), (crc,) = struct.unpack("<Q", length_bytes), struct.unpack("<I", blob[at + 8:at + 12])
        data = blob[at + 12:at + 12 + length]
        if crc != _masked(length_bytes) or len(data) != length or len(blob) < at + 16 + length:
            raise BadWarmup("record {}: truncated or corrupt (length/crc)".format(len(out) + 1))
        (crc,) = struct.unpack("<I", blob[at + 12 + length:at + 16 + length])
        if crc != _masked(data):
            raise BadWarmup("record {}: data crc mismatch".format(len(out) + 1))
        out.append(data)
        at += 16 + length
    return out


# ---------------------------------------------------------------- protobuf wire format (the fields used)
def _varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, value):
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _read_varint(blob, at):
    shift = n = 0
    while True:
        if at >= len(blob):
            raise BadWarmup("truncated protobuf")
        b = blob[at]
        at += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, at


def _fields(blob):
    """-> [(number, value)]: varints as int, length-delimited as bytes (other wire types skipped)."""
    at, out = 0, []
    while at < len(blob):
        key, at = _read_varint(blob, at)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, at = _read_varint(blob, at)
        elif kind == 2:
            size, at = _read_varint(blob, at)
            if at + size > len(blob):
                raise BadWarmup("truncated protobuf")
            value, at = blob[at:at + size], at + size
        elif kind in (1, 5):
            value, at = None, at + (8 if kind == 1 else 4)
        else:
            raise BadWarmup("unsupported protobuf wire type {}".format(kind))
        out.append((number, value))
    return out


def tensor_proto(value):
    """numpy array or list of bytes (DT_STRING, 1-D) -> TensorProto bytes."""
    if isinstance(value, (list, tuple)):
        shape, body = [len(value)], b"".join(_field(8, v) for v in value)
        dtype = DT_STRING
    else:
        value = np.ascontiguousarray(value)
        shape, body, dtype = value.shape, _field(4, value.tobytes()), ENUM_OF[value.dtype.name]
    dims = b"".join(_field(2, _field(1, int(d))) for d in shape)
    return _field(1, dtype) + _field(2, dims) + body


def prediction_log(name, signature, inputs):
    """PredictionLog{predict_log{request{model_spec{name, signature_name}, inputs}}} bytes."""
    spec = _field(1, name.encode()) + _field(3, signature.encode())
    request = _field(1, spec) + b"".join(_field(2, _field(1, k.encode()) + _field(2, tensor_proto(v)))
                                         for k, v in sorted(inputs.items()))
    return _field(6, _field(1, request))


def _tensor(blob):
    dtype, dims, content, strings = None, [], None, []
    for number, value in _fields(blob):
        if number == 1:
            dtype = value
        elif number == 2:
            dims = [dict(_fields(d)).get(1, 0) for n, d in _fields(value) if n == 2]
        elif number == 4:
            content = value
        elif number == 8:
            strings.append(bytes(value))
    if dtype == DT_STRING:
        return strings
    if dtype not in DTYPES or content is None:
        raise BadWarmup("input tensor of dtype {} without tensor_content (odrun serve replays DT_STRING "
                        "or tensor_content tensors)".format(dtype))
    return np.frombuffer(content, dtype=DTYPES[dtype]).reshape(dims)


def parse_log(blob):
    """PredictionLog bytes -> (signature_name, {input: ndarray or [bytes]}); BadWarmup for other logs."""
    logs = dict(_fields(blob))
    if 6 not in logs:
        raise BadWarmup("not a predict_log (odrun serve replays PredictRequests; fields {})".format(sorted(logs)))
    request = dict(_fields(logs[6])).get(1, b"")
    signature, inputs = "serving_default", {}
    for number, value in _fields(request):
        if number == 1:
            signature = dict(_fields(value)).get(3, b"").decode() or signature
        elif number == 2:
            entry = dict(_fields(value))
            inputs[entry.get(1, b"").decode()] = _tensor(entry.get(2, b""))
    return signature, inputs


def read(folder):
    """-> [(signature, inputs)] of FOLDER/assets.extra/tf_serving_warmup_requests ([] without one)."""
    path = os.path.join(folder, PATH)
    if not os.path.isfile(path):
        return []
    try:
        records = read_records(path)
        if len(records) > MAX_RECORDS:
            raise BadWarmup("{} records: TF Serving replays at most {}".format(len(records), MAX_RECORDS))
        return [parse_log(r) for r in records]
    except (ValueError, TypeError, IndexError, KeyError) as exc:  # BadWarmup, or a damaged proto's field types
        raise BadWarmup("{}: {} (a TFRecord of PredictionLog predict requests; re-export to write it again, "
                        "or remove it)".format(path, exc))
