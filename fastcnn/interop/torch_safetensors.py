"""The torch state dict of a model (to_torch_state_dict) in a .safetensors file, and back.

A .safetensors file is an 8-byte little-endian header length, a JSON header that gives each
tensor's dtype, shape and byte range, then the tensors' bytes: no pickle, nothing executed. Such
a file written here loads into torch with ``safetensors.torch.load_file`` and
``module.load_state_dict``, for a module whose submodules are named like the fastcnn layers; a
file that torch wrote from such a module loads here.

A .safetensors file keeps no order of its tensors (it sorts them), so a file loads by name, as
torch loads it. Files written here also record the state dict's order in their metadata
(``fastcnn_order``), so that they load by order where the names differ: into another instance
of the same architecture, whose layers got other default names.

Loading reads and checks the header (within the JSON limits of ``fastcnn.file_limits``) before
any tensor: every key, dtype and shape against the model, and the byte ranges against the file's
size. It then reads the file's bytes (with strict=True at most what the model's weights take
in float64, besides the header) and nothing changes in the model unless every tensor matches.
What it refuses raises ``fastcnn.saving.InvalidSaveFileError``.

Needs the safetensors package (``pip install fastcnn[torch]``); torch is never imported.
"""
import json
import math
import os

from ..file_limits import JSON_LIMIT, InvalidSaveFileError, parse_json
from ..saving import atomic_write
from .torch_state_dict import assign, is_batch_count, match, to_torch_state_dict, torch_modules_of

_HEADER_LENGTH_BYTES = 8
_ITEM_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
               "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_FLOATS = ("F16", "F32", "F64")  # those NumPy has: it has no bfloat16 (BF16)
_ORDER = "fastcnn_order"  # the metadata entry: {"keys": [the state dict's keys, in order]}


def _safetensors():
    try:
        import safetensors
        import safetensors.numpy
    except ImportError as error:
        raise ImportError("Reading and writing .safetensors files needs the safetensors package: "
                          "pip install fastcnn[torch]") from error
    return safetensors


def save_torch_weights(model, filepath, overwrite=True):
    """Write ``to_torch_state_dict(model)`` to the .safetensors file ``filepath``, atomically,
    with the metadata ``"format": "pt"`` that marks a torch state dict, and the keys' order."""
    safetensors = _safetensors()
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"Expected a filepath that does not exist with overwrite=False, "
                              f"received filepath={filepath!r}")
    state = to_torch_state_dict(model)
    data = safetensors.numpy.save(state, metadata={"format": "pt",
                                                   _ORDER: json.dumps({"keys": list(state)})})
    with atomic_write(filepath) as f:
        f.write(data)


class _Reader:
    """A .safetensors file open for reading, whose failures name it."""

    def __init__(self, filepath, f):
        self.filepath, self.f = filepath, f
        self.size = os.fstat(f.fileno()).st_size

    def fail(self, message):
        raise InvalidSaveFileError(f"Cannot load {self.filepath!r}: {message}")

    def header(self):
        """The header's tensors {key: (dtype, shape, (begin, end))}, each described in due form,
        their byte ranges following each other from 0; its metadata; and the file's size that
        it describes."""
        length = int.from_bytes(self.f.read(_HEADER_LENGTH_BYTES), "little")
        if length > min(JSON_LIMIT, self.size - _HEADER_LENGTH_BYTES):
            self.fail(f"Expected a .safetensors file, whose first 8 bytes give the length of a "
                      f"JSON header of at most {JSON_LIMIT} bytes within the file's "
                      f"{self.size}, received a length of {length}")
        document = parse_json(self.f.read(length), "the header", self.fail)
        metadata = document.pop("__metadata__", {})
        if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
            self.fail(f"Expected __metadata__ to map names to strings, received {metadata!r:.200}")
        entries = {key: self._entry(key, entry) for key, entry in document.items()}
        position = 0
        for key, (_, _, (begin, end)) in sorted(entries.items(), key=lambda item: item[1][2]):
            if begin != position:
                self.fail(f"Expected the tensors' bytes to follow each other, received tensor "
                          f"{key!r} at bytes {begin} to {end} after byte {position}")
            position = end
        return entries, metadata, _HEADER_LENGTH_BYTES + length + position

    def order(self, metadata, keys):
        """The ``keys`` in the order of the state dict that was written, as save_torch_weights
        records it, or None for a file that does not record it."""
        if _ORDER not in metadata:
            return None
        order = parse_json(metadata[_ORDER].encode("utf-8"), f"metadata {_ORDER!r}",
                           self.fail).get("keys")
        if not (isinstance(order, list) and all(isinstance(key, str) for key in order)
                and sorted(order) == sorted(keys)):
            self.fail(f"Expected metadata {_ORDER!r} to list the file's tensors, each once, "
                      f"received {metadata[_ORDER]!r:.200}")
        return order

    def _entry(self, key, entry):
        if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}
                and isinstance(entry["dtype"], str) and entry["dtype"] in _ITEM_BYTES
                and _ints(entry["shape"])
                and _ints(entry["data_offsets"]) and len(entry["data_offsets"]) == 2):
            self.fail(f"Expected tensor {key!r} to be described by its dtype (one of "
                      f"{sorted(_ITEM_BYTES)}), shape and data_offsets, received {entry!r:.200}")
        begin, end = entry["data_offsets"]
        nbytes = math.prod(entry["shape"]) * _ITEM_BYTES[entry["dtype"]]
        if not begin <= end or end - begin != nbytes:
            self.fail(f"Expected tensor {key!r} of shape {entry['shape']} and dtype "
                      f"{entry['dtype']} to span {nbytes} bytes, received data_offsets "
                      f"{entry['data_offsets']}")
        return entry["dtype"], tuple(entry["shape"]), (begin, end)


def _ints(value):
    """Whether ``value`` is a list of non-negative ints."""
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


def load_torch_weights(model, filepath, strict=True):
    """Set the model's weights from the .safetensors file ``filepath``, a torch state dict whose
    keys name this model's weights as to_torch_state_dict names them (a file keeps no order of
    its tensors, so they are matched by order only in files that record it, those written by
    save_torch_weights). ``strict`` as in load_torch_state_dict; ``num_batches_tracked`` entries
    are ignored. Float tensors (F16, F32, F64) are converted to float32. Returns the missing and
    unexpected keys (IncompatibleKeys)."""
    safetensors = _safetensors()
    modules = torch_modules_of(model)
    filepath = os.fspath(filepath)
    with open(filepath, "rb") as f:
        reader = _Reader(filepath, f)
        entries, metadata, end = reader.header()
        for key, (_, shape, _) in entries.items():
            if is_batch_count(key) and shape != ():
                reader.fail(f"Expected {key!r} to be a single count, received shape {shape}")
        order = reader.order(metadata, entries)
        shapes = {key: entries[key][1] for key in order or entries if not is_batch_count(key)}
        try:
            pairs, incompatible = match(modules, shapes, strict, order_kept=order is not None)
        except ValueError as error:
            reader.fail(str(error))
        for _, key in pairs:
            if entries[key][0] not in _FLOATS:
                reader.fail(f"Expected tensor {key!r} in one of the dtypes {_FLOATS}, received "
                            f"{entries[key][0]}")
        if reader.size != end:
            reader.fail(f"Expected the {end} bytes that the header describes, received a file "
                        f"of {reader.size}")
        f.seek(0)
        data = f.read(end)
    try:
        arrays = safetensors.numpy.load(data)
    except safetensors.SafetensorError as error:
        reader.fail(f"{type(error).__name__}: {error}")
    assign(pairs, arrays)
    return incompatible
