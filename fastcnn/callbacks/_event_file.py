"""TensorBoard's event files, written without TensorFlow or protobuf.

An event file is a sequence of TFRecords: each record is its length (uint64, little-endian),
the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data. Each record's
data is an ``Event`` protocol buffer (tensorflow/core/util/event.proto): wall_time (field 1,
double), step (2, int64), and either file_version (3, string; the first record) or a
``Summary`` (5), whose values (1) carry a tag (1) and a simple_value (2, float) or a
``HistogramProto`` (5). Only these fields are written, encoded by hand below.
"""
import os
import socket
import struct
import time

import numpy as np

HISTOGRAM_BUCKETS = 30  # as tf.summary.histogram


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli) of ``data``, as TFRecord uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data):
    """``data`` framed as one TFRecord."""
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked_crc32c(length)) + data
            + struct.pack("<I", masked_crc32c(data)))


# -- protocol buffer encoding ----------------------------------------------------------------
def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field, wire_type):
    return _varint(field << 3 | wire_type)


def _double(field, value):
    return _key(field, 1) + struct.pack("<d", value)


def _float(field, value):
    return _key(field, 5) + struct.pack("<f", value)


def _int(field, value):
    return _key(field, 0) + _varint(value & 0xFFFFFFFFFFFFFFFF)  # two's complement, as int64


def _bytes(field, data):
    return _key(field, 2) + _varint(len(data)) + data


def _packed_doubles(field, values):
    return _bytes(field, np.asarray(values, "<f8").tobytes())


def event(step, summary=None, file_version=None, wall_time=None):
    """One Event's bytes: a Summary's (as given by scalar_value/histogram_value) or the file
    version's."""
    data = _double(1, time.time() if wall_time is None else wall_time) + _int(2, step)
    if file_version is not None:
        data += _bytes(3, file_version.encode())
    if summary is not None:
        data += _bytes(5, b"".join(_bytes(1, value) for value in summary))
    return data


def scalar_value(tag, value):
    """A Summary.Value holding a scalar (float32, as TensorBoard's simple_value)."""
    return _bytes(1, tag.encode()) + _float(2, value)


def histogram_value(tag, values, buckets=HISTOGRAM_BUCKETS):
    """A Summary.Value holding a HistogramProto of ``values`` in equal-width buckets; each
    bucket counts the values up to its limit (bucket_limit), above the previous limit."""
    values = np.asarray(values, np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size:
        low, high = float(values.min()), float(values.max())
        counts, edges = np.histogram(values, bins=buckets if high > low else 1,
                                     range=(low, high) if high > low else (low - 0.5, low + 0.5))
        limits = edges[1:]
    else:
        low = high = 0.0
        counts, limits = np.zeros(1), np.zeros(1)
    histogram = (_double(1, low) + _double(2, high) + _double(3, float(values.size))
                 + _double(4, float(values.sum())) + _double(5, float(np.dot(values, values)))
                 + _packed_doubles(6, limits) + _packed_doubles(7, counts))
    return _bytes(1, tag.encode()) + _bytes(5, histogram)


class EventFileWriter:
    """Appends Events to a new event file in ``directory`` (created when missing), named as
    TensorFlow names them so that TensorBoard finds it."""

    _count = 0

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        EventFileWriter._count += 1
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{EventFileWriter._count}.v2")
        self.path = os.path.join(directory, name)
        self._file = open(self.path, "wb")
        self.write(event(0, file_version="brain.Event:2"))

    def write(self, data):
        self._file.write(record(data))

    def add_scalars(self, values, step):
        """One Event with a scalar per (tag, value) of ``values``."""
        if values:
            self.write(event(step, [scalar_value(tag, value) for tag, value in values.items()]))

    def add_histogram(self, tag, values, step):
        self.write(event(step, [histogram_value(tag, values)]))

    def flush(self):
        self._file.flush()

    def close(self):
        self._file.close()
