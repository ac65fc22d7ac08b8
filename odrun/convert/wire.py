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


_SMALL = [bytes([i]) for i in range(128)]  # most varints here (lengths, labels) are one byte


def _varint(n):
    if 0 <= n < 128:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64  # int64 two's complement, 10 bytes
    out = bytearray()
    while n > 127:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Each encoded piece is (list of byte strings, total length), so nesting only prepends small
# headers and the image bytes are copied once, in the final join.
_TAG = {1: b"\x0a", 2: b"\x12", 3: b"\x1a"}  # field number -> tag byte for wire type 2


def _ld(field, piece):
    """Length-delimited field (wire type 2) around an encoded piece."""
    parts, n = piece
    head = _TAG[field] + _varint(n)
    return [head] + parts, n + len(head)


def bytes_feature(values):
    parts, n = [], 0
    for v in values:
        head = b"\x0a" + _varint(len(v))
        parts += (head, v)
        n += len(head) + len(v)
    return _ld(1, (parts, n))


def float_feature(values):
    if not values:
        return [b"\x12\x00"], 2
    packed = struct.pack("<{}f".format(len(values)), *values)
    return _ld(2, _ld(1, ([packed], len(packed))))


def int64_feature(values):
    if not values:
        return [b"\x1a\x00"], 2
    packed = b"".join([_varint(int(v)) for v in values])
    return _ld(3, _ld(1, ([packed], len(packed))))


_KEYS = {}  # feature key -> its encoded map-entry key field


def example(features):
    """features: list of (key, encoded Feature piece) -> serialized tf.train.Example bytes."""
    parts, n = [], 0
    for key, (f_parts, f_n) in features:
        k = _KEYS.get(key)
        if k is None:
            raw = key.encode("utf-8")
            k = _KEYS[key] = b"\x0a" + _varint(len(raw)) + raw
        v_head = b"\x12" + _varint(f_n)
        entry_n = len(k) + len(v_head) + f_n
        e_head = b"\x0a" + _varint(entry_n)
        parts += [e_head, k, v_head]
        parts += f_parts
        n += len(e_head) + entry_n
    return b"".join([b"\x0a" + _varint(n)] + parts)
