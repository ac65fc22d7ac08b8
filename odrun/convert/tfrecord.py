"""The TFRecord framing without TensorFlow (so `odrun convert` never starts TF).

A TFRecord file is a sequence of records, each (tensorflow/core/lib/io/record_writer.cc):

    uint64 length            (little endian)
    uint32 masked_crc32c(length bytes)
    byte   data[length]
    uint32 masked_crc32c(data)

with masked_crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32). CRC32C comes from the
`crc32c` package (hardware CRC32C; wheels for Python 3.6 onwards), else `google-crc32c`, else
TensorFlow's own writer (the old way: imports TF). tests/test_convert.py reads the files back
with tf.data.TFRecordDataset, which checks every CRC.
"""
import struct

MASK_DELTA = 0xA282EAD8


def _crc_function():
    """crc32c(bytes) -> int from the first installed package, or None."""
    try:
        import crc32c
        return crc32c.crc32c
    except ImportError:
        pass
    try:
        import google_crc32c
        return google_crc32c.value
    except ImportError:
        return None


CRC32C = _crc_function()


def available():
    return CRC32C is not None


def masked_crc(data):
    crc = CRC32C(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def frame(data):
    """One record's bytes: header + data + footer."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)), struct.pack("<I", masked_crc(data))


class Writer(object):
    """tf.io.TFRecordWriter's interface (write, close, context manager), no compression."""

    def __init__(self, path):
        self.f = open(path, "wb")

    def write(self, data):
        head, foot = frame(data)
        self.f.write(head)
        self.f.write(data)
        self.f.write(foot)

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def writer(path):
    """A TFRecord writer: ours when a CRC32C package is installed, else TensorFlow's."""
    if available():
        return Writer(path)
    import tensorflow as tf
    return tf.io.TFRecordWriter(path)
