"""tf.train.Example bytes written directly in the protobuf wire format.

Why: with protobuf 3.20.x (the version the OD API's generated *_pb2 modules need) there is
no C++ extension for recent Pythons, and the pure-Python message classes take ~1.5 ms to
build and serialize one 640x480 JPEG example, the largest cost of a conversion. The schema
is tensorflow/core/example/{example,feature}.proto:

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }      // map entry: key = 1, value = 2
    Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                            Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }  FloatList { repeated float value = 1 [packed]; }
    Int64List { repeated int64 value = 1 [packed]; }

tests/test_convert.py checks the bytes parse back, field for field, to the same message that
`example_pb2` builds.
"""
import struct


def _varint(n):
    if n < 0:
        n += 1 << 64  # int64 two's complement, 10 bytes
    out = bytearray()
    while True:
        bits = n & 0x7F
        n >>= 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


# Each encoded piece is (list of byte strings, total length), so nesting only prepends small
# headers and the image bytes are copied once, in the final join.

def _ld(field, piece):
    """Length-delimited field (wire type 2) around an encoded piece."""
    parts, n = piece
    head = _varint(field << 3 | 2) + _varint(n)
    return [head] + parts, n + len(head)


def _raw(data):
    return [data], len(data)


def bytes_feature(values):
    parts, n = [], 0
    for v in values:
        p, k = _ld(1, _raw(v))
        parts += p
        n += k
    return _ld(1, (parts, n))


def float_feature(values):
    packed = struct.pack("<{}f".format(len(values)), *values)
    return _ld(2, _ld(1, _raw(packed)) if values else _raw(b""))


def int64_feature(values):
    packed = b"".join(_varint(int(v)) for v in values)
    return _ld(3, _ld(1, _raw(packed)) if values else _raw(b""))


def example(features):
    """features: list of (key, encoded Feature piece) -> serialized tf.train.Example bytes."""
    parts, n = [], 0
    for key, feat in features:
        k_parts, k_n = _ld(1, _raw(key.encode("utf-8")))
        v_parts, v_n = _ld(2, feat)
        p, m = _ld(1, (k_parts + v_parts, k_n + v_n))
        parts += p
        n += m
    return b"".join(_ld(1, (parts, n))[0])
