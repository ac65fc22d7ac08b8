"""TFRecord files and tf.train.Example messages read without TensorFlow (so `odrun train` can
check records before TF starts, and `odrun inspect` gets boxes and labels in pure Python).

The framing is odrun/convert/tfrecord.py's (tensorflow/core/lib/io/record_writer.cc), the message
schema odrun/convert/wire.py's (tensorflow/core/example/{example,feature}.proto). Files are mapped
(mmap), and the image bytes are returned as (offset, length) so the cheap checks never copy or
even page in the JPEGs. tests/test_inspect.py reads the files that TensorFlow's own writer made.
"""
import mmap
import struct

from odrun.convert import tfrecord

HEADER = 12  # uint64 length + uint32 masked crc32c(length)
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


class Damaged(Exception):
    """A record file that stops being a TFRecord at example `index` (truncated, bad CRC)."""

    def __init__(self, index, reason):
        Exception.__init__(self, reason)
        self.index = index
        self.reason = reason


def open_map(path):
    """The file's bytes as a read-only mmap (b"" for an empty file)."""
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def frames(buf, verify=True):
    """Yield (index, start, end) of each record's data in buf; Damaged where the framing breaks.
    verify: check both CRCs (crc32c is hardware: GB/s); without it only the lengths are checked."""
    size, pos, index = len(buf), 0, 0
    crc = verify and tfrecord.available()
    while pos < size:
        if pos + HEADER > size:
            raise Damaged(index, "truncated: {} bytes after the last whole record".format(size - pos))
        length, = _U64.unpack_from(buf, pos)
        if crc and tfrecord.masked_crc(buf[pos:pos + 8]) != _U32.unpack_from(buf, pos + 8)[0]:
            raise Damaged(index, "not a TFRecord here (the length checksum at byte {} does not match)".format(pos))
        start = pos + HEADER
        end = start + length
        if end + 4 > size:
            raise Damaged(index, "truncated: the record at byte {} says {} bytes, {} are left".format(
                pos, length, size - start))
        if crc and tfrecord.masked_crc(buf[start:end]) != _U32.unpack_from(buf, end)[0]:
            raise Damaged(index, "damaged: the data checksum of the record at byte {} does not match".format(pos))
        yield index, start, end
        pos = end + 4
        index += 1


def _varint(buf, pos):
    b = buf[pos]
    if b < 128:
        return b, pos + 1
    result, shift = b & 0x7F, 7
    while True:
        pos += 1
        b = buf[pos]
        result |= (b & 0x7F) << shift
        if b < 128:
            return result, pos + 1
        shift += 7


def _fields(buf, pos, end):
    """Yield (field number, wire type, value) of one message; wire type 2 values are (start, end)."""
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == 2:
            n, pos = _varint(buf, pos)
            value, pos = (pos, pos + n), pos + n
        elif wt == 0:
            value, pos = _varint(buf, pos)
        elif wt == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wt == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        else:
            raise ValueError("wire type {} at byte {}".format(wt, pos))
        if pos > end:
            raise ValueError("a field runs past the end of its message")
        yield field, wt, value


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _feature(buf, start, end):
    """One Feature -> ("bytes", [(start, end)]) | ("float", [x]) | ("int64", [n]) | (None, [])."""
    for kind, _wt, (ls, le) in _fields(buf, start, end):
        values = []
        for field, wt, v in _fields(buf, ls, le):
            if field != 1:
                continue
            if kind == 1 and wt == 2:
                values.append(v)
            elif kind == 2 and wt == 2:
                values.extend(struct.unpack_from("<{}f".format((v[1] - v[0]) // 4), buf, v[0]))
            elif kind == 2 and wt == 5:
                values.append(struct.unpack("<f", v)[0])
            elif kind == 3 and wt == 2:
                p = v[0]
                while p < v[1]:
                    n, p = _varint(buf, p)
                    values.append(_signed(n))
            elif kind == 3 and wt == 0:
                values.append(_signed(v))
            else:
                raise ValueError("feature kind {} with wire type {}".format(kind, wt))
        return {1: "bytes", 2: "float", 3: "int64"}.get(kind), values
    return None, []


def parse_example(buf, start, end, keys=None):
    """Serialized tf.train.Example in buf[start:end] -> {key: (kind, values)}; bytes values are
    (start, end) offsets into buf; keys: parse only these features. ValueError when the bytes are
    not an Example."""
    try:
        return _parse(buf, start, end, keys)
    except (IndexError, struct.error) as exc:
        raise ValueError("not a tf.train.Example ({})".format(exc))


def _parse(buf, start, end, keys):
    out = {}
    for field, wt, v in _fields(buf, start, end):
        if field != 1 or wt != 2:
            continue
        for efield, ewt, entry in _fields(buf, v[0], v[1]):
            if efield != 1 or ewt != 2:
                continue
            key, span = None, None
            for kfield, kwt, kv in _fields(buf, entry[0], entry[1]):
                if kfield == 1 and kwt == 2:
                    key = bytes(buf[kv[0]:kv[1]]).decode("utf-8", "replace")
                elif kfield == 2 and kwt == 2:
                    span = kv
            if key is not None and (keys is None or key in keys):
                # a map: the last entry of a key wins, as in protobuf
                out[key] = _feature(buf, span[0], span[1]) if span else (None, [])
    return out
