"""The limits every saved file is read under, whatever its layout (fastcnn's zip, Keras's
``.keras`` zip, an HDF5 weights file), and the readers that enforce them on zips and JSON.

Reading takes time linear in the file's size and memory bounded by what the file holds. It
refuses, before the work they would cause:

- more than ``MEMBER_LIMIT`` (20,000) members (zip members, or HDF5 groups and datasets);
- a JSON document over ``JSON_LIMIT`` (4 MiB), nested deeper than ``JSON_DEPTH_LIMIT`` (100),
  or with an integer of more than ``JSON_INT_DIGITS`` (30) digits;
- an encrypted zip member, or one compressed other than stored or deflated.

Whatever is refused raises ``InvalidSaveFileError``, a ValueError.
"""
import collections
import contextlib
import json
import os
import re
import zipfile
import zlib

import numpy as np

MEMBER_LIMIT = 20_000
JSON_LIMIT = 4 * 2**20
JSON_DEPTH_LIMIT = 100
JSON_INT_DIGITS = 30
DEFLATE_RATIO = 1032  # the most that deflate expands: a member's bytes per stored byte
# What zipfile and zlib raise on a truncated or damaged archive, found by flipping every byte:
# OSError from a seek to a negative offset, NotImplementedError from a garbled version field.
CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)
# A JSON string (escapes included), replaced by "" before counting brackets: those inside
# strings do not nest.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_NESTING = np.zeros(256, np.int8)
_JSON_NESTING[list(b"[{")] = 1
_JSON_NESTING[list(b"]}")] = -1


class InvalidSaveFileError(ValueError):
    """A file load_model or load_weights refuses: not a fastcnn or Keras file, truncated or
    corrupt, unsafe (a pickle, an object array, code, an unexpected member name), or not
    matching the model."""


def few(names, shown=5):
    """Up to ``shown`` of ``names``, sorted, for an error message that stays short."""
    names = sorted(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{names[:shown]!r}{more}"


def _parse_int(text):
    if len(text) > JSON_INT_DIGITS:
        raise ValueError(f"Expected integers of at most {JSON_INT_DIGITS} digits, received one "
                         f"of {len(text)}")
    return int(text)


def parse_json(data, what, fail):
    """The JSON object in the bytes ``data`` (``what`` names it in errors), within the depth
    and integer limits; ``fail(message)`` raises. The size is the caller's to check."""
    # Counted before parsing, so that the parser never recurses deeper than the limit.
    nesting = np.cumsum(_JSON_NESTING[np.frombuffer(_JSON_STRING.sub(b"", data), np.uint8)],
                        dtype=np.int64)
    if nesting.size and nesting.max() > JSON_DEPTH_LIMIT:
        fail(f"Expected JSON nested at most {JSON_DEPTH_LIMIT} deep in {what}, received "
             f"{nesting.max()} levels")
    try:
        document = json.loads(data.decode("utf-8"), parse_int=_parse_int)
    except (UnicodeDecodeError, ValueError) as error:  # ValueError: JSONDecodeError, _parse_int
        fail(f"Expected JSON in {what}: {error}")
    if not isinstance(document, dict):
        fail(f"Expected a JSON object in {what}, received {type(document).__name__}")
    return document


class ZipArchive:
    """A zip opened for reading, its member count, names' uniqueness and compression checked;
    ``members`` maps each name to its ZipInfo."""

    def __init__(self, filepath, zf, size):
        self.filepath = filepath
        self.zf = zf
        self.size = size
        infos = zf.infolist()
        if len(infos) > MEMBER_LIMIT:
            self.fail(f"Expected at most {MEMBER_LIMIT} members, received {len(infos)}")
        counts = collections.Counter(info.filename for info in infos)
        if len(counts) != len(infos):
            self.fail(f"Expected each member once, received duplicates of "
                      f"{few(n for n, c in counts.items() if c > 1)}")
        for info in infos:
            if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self.fail(f"Expected member {info.filename!r} stored or deflated without "
                          f"encryption, received compression {info.compress_type}, flags "
                          f"{info.flag_bits:#x}")
        self.members = {info.filename: info for info in infos}

    def fail(self, message):
        raise InvalidSaveFileError(f"Cannot load {self.filepath!r}: {message}")

    def check_names(self, pattern, description):
        """Refuse any member whose name ``pattern`` does not match in full."""
        odd = [name for name in self.members if not pattern.fullmatch(name)]
        if odd:
            self.fail(f"Expected only the members {description}, received {few(odd)}")

    def read(self, name, limit):
        """The bytes of member ``name``, refused beyond ``limit`` bytes before any is read."""
        info = self.members.get(name)
        if info is None:
            self.fail(f"Expected a member {name!r}, received none")
        if info.file_size > limit:
            self.fail(f"Expected member {name!r} of at most {limit} bytes, received {info.file_size}")
        try:
            return self.zf.read(info)
        except CORRUPT as error:
            self.fail(f"member {name!r} is damaged ({type(error).__name__}: {error})")

    def json(self, name):
        return parse_json(self.read(name, JSON_LIMIT), f"member {name!r}", self.fail)

    def stored_bytes(self, names):
        """The most bytes members ``names`` can hold: as they declare, but no more than the
        file's size allows (times deflate's largest ratio where any is deflated)."""
        infos = [self.members[name] for name in names]
        ratio = (1 if all(info.compress_type == zipfile.ZIP_STORED for info in infos)
                 else DEFLATE_RATIO)
        return min(sum(info.file_size for info in infos), self.size * ratio)


@contextlib.contextmanager
def open_zip(filepath, archive_class=ZipArchive):
    """``filepath`` as an ``archive_class`` (a ZipArchive), or InvalidSaveFileError if it is no
    zip."""
    filepath = os.fspath(filepath)
    with open(filepath, "rb") as f:
        try:
            zf = zipfile.ZipFile(f)
        except CORRUPT as error:
            raise InvalidSaveFileError(f"Cannot load {filepath!r}: expected a fastcnn zip file "
                                       f"or a Keras .keras file, received a truncated or "
                                       f"foreign file ({type(error).__name__}: {error})") from None
        with zf:
            yield archive_class(filepath, zf, os.fstat(f.fileno()).st_size)
