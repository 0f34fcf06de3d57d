"""Saving and loading: one zip of JSON and .npy members, written atomically and read without pickle.

A model file (Keras names it ``.keras``; any name works) holds::

    metadata.json              {"format": "fastcnn", "kind": "model", "format_version": 1}
    config.json                the architecture (get_config), the input shapes it was built
                               for, the model's seed, the compiled state
    weights/0000.npy ...       model.weights, in order
    optimizer/<slot>/0000.npy  the optimizer's slots, aligned with model.trainable_weights

A weights file holds metadata.json (kind "weights") and weights/ only, which also makes it an
``.npz`` that ``np.load`` opens. Loading checks every member's name, and every array's shape and
dtype against the model, before it changes anything; whatever it refuses raises
``InvalidSaveFileError``, a ValueError.

Loading takes time linear in the file's size and memory bounded by what the file holds. It
refuses, before the work they would cause:

- more than ``MEMBER_LIMIT`` (20,000) members;
- a JSON member over ``JSON_LIMIT`` (4 MiB), nested deeper than ``JSON_DEPTH_LIMIT`` (100), or
  with an integer of more than ``JSON_INT_DIGITS`` (30) digits;
- a config whose layers would create more weight values than the file's weight members hold
  (4 bytes each): the weights are counted as they are declared, before they are allocated;
- an optimizer step count of ``ITERATIONS_LIMIT`` (2**62) or more, so that training can go on.
"""
import collections
import contextlib
import io
import json
import os
import re
import secrets
import zipfile
import zlib

import numpy as np

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from . import losses, optimizers
from . import metrics as metrics_module
from .serialization import (
    custom_object_scope,
    deserialize,
    get_class,
    register_keras_serializable,
    serialize,
    weight_budget,
)

FORMAT = "fastcnn"
FORMAT_VERSION = 1
# Every member name a fastcnn file may hold. Anything else (a pickle, "../x", "/etc/x", a
# backslash, a second copy) is refused, so no name is ever trusted further than this pattern.
_MEMBER_NAME = re.compile(r"(metadata|config)\.json|weights/[0-9]{4,}\.npy"
                          r"|optimizer/[A-Za-z0-9_]+/[0-9]{4,}\.npy")
MEMBER_LIMIT = 20_000
JSON_LIMIT = 4 * 2**20
JSON_DEPTH_LIMIT = 100
JSON_INT_DIGITS = 30
ITERATIONS_LIMIT = 2**62
# A JSON string (escapes included), replaced by "" before counting brackets: those inside
# strings do not nest.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_NESTING = np.zeros(256, np.int8)
_JSON_NESTING[list(b"[{")] = 1
_JSON_NESTING[list(b"]}")] = -1
_DEFLATE_RATIO = 1032  # the most that deflate expands: a member's bytes per stored byte
_NPY_HEADER_LIMIT = 16 * 2**10  # numpy refuses .npy headers beyond 10000 bytes anyway
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}
_ZIP64_THRESHOLD = 2**30  # a zip member written as a stream must announce zip64 before 2 GiB
# What zipfile and zlib raise on a truncated or damaged archive, found by flipping every byte:
# OSError from a seek to a negative offset, NotImplementedError from a garbled version field.
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)


__all__ = ["InvalidSaveFileError", "load_model", "register_keras_serializable", "save_model"]


class InvalidSaveFileError(ValueError):
    """A file load_model or load_weights refuses: not a fastcnn file, truncated or corrupt,
    unsafe (a pickle, an object array, an unexpected member name), or not matching the model."""


# -- writing -------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_write(filepath):
    """Yield a binary file that, once the block ends without error, replaces ``filepath``.

    The data goes to a hidden temporary file in the same directory (``.<name>.<random>.tmp``,
    the name cut to ``_TEMP_PREFIX_BYTES`` bytes at a character boundary), is fsynced, renamed
    over ``filepath`` with ``os.replace``, and the directory is fsynced. A crash at any moment
    leaves either the previous file or the complete new one, never a part; the temporary files
    that crashed saves leave are removed by the next save to the same place.
    """
    filepath = os.fsdecode(filepath)  # a str or bytes path, as Python's own calls take
    directory = os.path.dirname(os.path.abspath(filepath))
    prefix = "." + os.path.basename(filepath).encode("utf-8", "surrogatepass")[
        :_TEMP_PREFIX_BYTES].decode("utf-8", "ignore") + "."
    fd, temp = _create_temp(directory, prefix)
    try:
        with open(fd, "wb") as f:
            _remove_orphans(directory, prefix, temp)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, filepath)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


_TEMP_PREFIX_BYTES = 200  # of 255 a name may have: room for the dot, random part and suffix
_TEMP_NAME = re.compile(r"[0-9a-f]{8}\.tmp")


def _create_temp(directory, prefix):
    """A new temporary file, locked for as long as it is open so that another save can tell
    it from an orphan: the lock dies with the process that holds it."""
    while True:
        temp = os.path.join(directory, f"{prefix}{secrets.token_hex(4)}.tmp")
        try:
            # os.open rather than tempfile: the mode then follows the umask like any new file.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        if fcntl is None:  # Windows: an open file cannot be removed, which protects it instead
            return fd, temp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks, where no save can lock an orphan either
            return fd, temp
        # Another save may have taken the file for an orphan between its creation and the lock.
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.stat(temp), os.fstat(fd)):
                return fd, temp
        os.close(fd)


def _remove_orphans(directory, prefix, own):
    """Remove the temporary files of earlier saves to the same place whose process is gone
    (nobody holds their lock); those of saves still running are left alone."""
    orphans = []
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        orphans = [entry.path for entry in entries if entry.name.startswith(prefix)
                   and _TEMP_NAME.fullmatch(entry.name[len(prefix):]) and entry.path != own]
    for path in orphans:
        with contextlib.suppress(OSError):  # held by a running save, or already gone
            if fcntl is None:  # Windows refuses to remove a file that a running save holds open
                os.unlink(path)
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(path)
            finally:
                os.close(fd)


def _fsync_directory(directory):
    """Make the rename durable: it is an entry in the directory, which has its own buffers."""
    if os.name != "posix":  # Windows cannot open a directory; its rename is durable on return
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _weight_member(k):
    return f"weights/{k:04d}.npy"


def _slot_member(slot, k):
    return f"optimizer/{slot}/{k:04d}.npy"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Expected a config of JSON values, received {value!r} of type "
                    f"{type(value).__name__}")


def _zip_info(name):
    # A fixed timestamp: saving the same state twice gives the same bytes.
    return zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))


def _write(filepath, kind, config, arrays, overwrite, build_config=None):
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"Expected a filepath that does not exist with overwrite=False, "
                              f"received filepath={filepath!r}")
    documents = {"metadata.json": {"format": FORMAT, "kind": kind, "format_version": FORMAT_VERSION,
                                   "build_config": build_config}}
    if config is not None:
        documents["config.json"] = config
    with atomic_write(filepath) as f, zipfile.ZipFile(f, "w") as zf:
        for name, document in documents.items():
            zf.writestr(_zip_info(name), json.dumps(document, indent=1, default=_json_default))
        for name, array in arrays.items():
            with zf.open(_zip_info(name), "w", force_zip64=array.nbytes > _ZIP64_THRESHOLD) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _serialize_losses(loss):
    if isinstance(loss, dict):
        return {"dict": {k: _serialize_losses(v) for k, v in loss.items()}}
    if isinstance(loss, (list, tuple)):
        return [_serialize_losses(v) for v in loss]
    return None if loss is None else serialize(loss)


def _serialize_metrics(metrics):
    """compile's metrics as JSON: Metric objects as their configs (compile takes those back)."""
    if isinstance(metrics, dict):
        return {k: _serialize_metrics(v) for k, v in metrics.items()}
    if isinstance(metrics, (list, tuple)):
        return [_serialize_metrics(m) for m in metrics]
    return metrics_module.serialize(metrics) if isinstance(metrics, metrics_module.Metric) \
        else metrics


def _compile_config(model):
    """The compiled state as JSON, or None for a model that was never compiled."""
    if model.optimizer is None:
        return None
    optimizer = model.optimizer
    schedule = optimizer.schedule
    if schedule is not None and not isinstance(schedule, optimizers.schedules.LearningRateSchedule):
        raise ValueError(f"Expected a number or a LearningRateSchedule as the optimizer's "
                         f"learning rate to save the model, received the function {schedule!r}; "
                         "save_weights saves the weights alone")
    # the calls of apply, which with gradient accumulation are more than the updates
    return {"optimizer": {**serialize(optimizer), "iterations": int(optimizer._iterations),
                          "has_slots": optimizer.has_slots(model.trainable_weights)},
            "loss": _serialize_losses(model.loss),
            "loss_weights": model.loss_weights,
            "metrics": _serialize_metrics(model.metrics),
            "weighted_metrics": _serialize_metrics(model.weighted_metrics),
            "fuse": model.fuse}


def _build_config(model):
    """The input shapes a model built from its data (not from its config) was built for."""
    shapes = getattr(model, "_build_input", None)
    return None if shapes is None else {"input_shape": shapes}


def _check_model(model):
    if not (hasattr(model, "fit") and hasattr(model, "seed")):
        raise TypeError(f"Expected a model (fastcnn.Model or Sequential), received "
                        f"{type(model).__name__}")


def save_model(model, filepath, overwrite=True):
    """Write the model's architecture, weights and compiled state (optimizer slots and step
    count, loss, metrics) and its seed to ``filepath``, atomically."""
    _check_model(model)
    config = {**serialize(model), "build_config": _build_config(model), "seed": int(model.seed),
              "compile_config": _compile_config(model)}
    arrays = {_weight_member(k): w for k, w in enumerate(model.weights)}
    optimizer = model.optimizer
    if config["compile_config"] is not None and config["compile_config"]["optimizer"]["has_slots"]:
        for slot, values in zip(optimizer.slot_names, optimizer.slots_for(model.trainable_weights)):
            arrays.update({_slot_member(slot, k): v for k, v in enumerate(values)})
    _write(filepath, "model", config, arrays, overwrite)


def save_weights(model, filepath, overwrite=True):
    """Write ``model.weights`` to ``filepath``, atomically, with the input shapes the model was
    built for, so that a new instance of a subclassed model can load them."""
    _write(filepath, "weights", None, {_weight_member(k): w for k, w in enumerate(model.weights)},
           overwrite, build_config=_build_config(model))


# -- reading -------------------------------------------------------------------------------
class _Archive:
    """A saved file opened for reading, its member names and metadata already checked."""

    def __init__(self, filepath, zf, size):
        self.filepath = filepath
        self.zf = zf
        self.size = size
        infos = zf.infolist()
        if len(infos) > MEMBER_LIMIT:
            self.fail(f"Expected at most {MEMBER_LIMIT} members, received {len(infos)}")
        names = [info.filename for info in infos]
        odd = [name for name in names if not _MEMBER_NAME.fullmatch(name)]
        if odd:
            self.fail("Expected only the members metadata.json, config.json, weights/NNNN.npy "
                      f"and optimizer/<slot>/NNNN.npy, received {_few(odd)}")
        counts = collections.Counter(names)
        if len(counts) != len(names):
            self.fail(f"Expected each member once, received duplicates of "
                      f"{_few(n for n, c in counts.items() if c > 1)}")
        for info in infos:
            if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self.fail(f"Expected member {info.filename!r} stored or deflated without "
                          f"encryption, received compression {info.compress_type}, flags "
                          f"{info.flag_bits:#x}")
        self.members = {info.filename: info for info in infos}
        metadata = self.json("metadata.json")
        received = (metadata.get("format"), metadata.get("format_version"))
        if received != (FORMAT, FORMAT_VERSION) or metadata.get("kind") not in ("model", "weights"):
            self.fail(f"Expected a fastcnn file of format version {FORMAT_VERSION}, received "
                      f"metadata {metadata!r}")
        self.kind = metadata["kind"]

    def fail(self, message):
        raise InvalidSaveFileError(f"Cannot load {self.filepath!r}: {message}")

    def _read(self, name, limit):
        info = self.members.get(name)
        if info is None:
            self.fail(f"Expected a member {name!r}, received none")
        if info.file_size > limit:
            self.fail(f"Expected member {name!r} of at most {limit} bytes, received {info.file_size}")
        try:
            return self.zf.read(info)
        except _CORRUPT as error:
            self.fail(f"member {name!r} is damaged ({type(error).__name__}: {error})")

    def json(self, name):
        data = self._read(name, JSON_LIMIT)
        # Counted before parsing, so that the parser never recurses deeper than the limit.
        nesting = np.cumsum(_JSON_NESTING[np.frombuffer(_JSON_STRING.sub(b"", data), np.uint8)],
                            dtype=np.int64)
        if nesting.size and nesting.max() > JSON_DEPTH_LIMIT:
            self.fail(f"Expected JSON nested at most {JSON_DEPTH_LIMIT} deep in member {name!r}, "
                      f"received {nesting.max()} levels")
        try:
            document = json.loads(data.decode("utf-8"), parse_int=_parse_int)
        except (UnicodeDecodeError, ValueError) as error:  # ValueError: JSONDecodeError, _parse_int
            self.fail(f"Expected JSON in member {name!r}: {error}")
        if not isinstance(document, dict):
            self.fail(f"Expected a JSON object in member {name!r}, received {type(document).__name__}")
        return document

    def array(self, name, like, what):
        """Member ``name`` as a float32 array shaped like ``like`` (``what`` names it in errors).

        The header is checked before any data is read, so an object array's pickle is never
        touched and a forged shape allocates nothing."""
        data = self._read(name, like.nbytes + _NPY_HEADER_LIMIT)
        stream = io.BytesIO(data)
        try:
            version = np.lib.format.read_magic(stream)
            if version not in _NPY_HEADERS:
                self.fail(f"Expected member {name!r} ({what}) in .npy format 1.0 or 2.0, "
                          f"received version {version}")
            shape, _, dtype = _NPY_HEADERS[version](stream)
            if shape != like.shape or dtype.kind != "f" or dtype.itemsize != 4:
                self.fail(f"Expected member {name!r} ({what}) of shape {like.shape} and dtype "
                          f"float32, received shape {shape} and dtype {dtype}")
            stream.seek(0)
            return np.lib.format.read_array(stream, allow_pickle=False)
        except InvalidSaveFileError:
            raise
        except ValueError as error:  # not .npy, a malformed header, too few bytes
            self.fail(f"Expected member {name!r} ({what}) to be a .npy array: {error}")

    def weight_bytes(self):
        """The most bytes the weight members can hold: as they declare, but no more than the
        file's size allows (times deflate's largest ratio where any is deflated)."""
        infos = [info for name, info in self.members.items() if name.startswith("weights/")]
        ratio = (1 if all(info.compress_type == zipfile.ZIP_STORED for info in infos)
                 else _DEFLATE_RATIO)
        return min(sum(info.file_size for info in infos), self.size * ratio)

    def check_members(self, expected):
        received, expected = set(self.members), set(expected)
        if received != expected:
            self.fail(f"Expected the members {_few(expected)}, but {_few(expected - received)} "
                      f"are missing and {_few(received - expected)} are unexpected")


def _few(names, shown=5):
    """Up to ``shown`` of ``names``, sorted, for an error message that stays short."""
    names = sorted(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{names[:shown]!r}{more}"


def _parse_int(text):
    if len(text) > JSON_INT_DIGITS:
        raise ValueError(f"Expected integers of at most {JSON_INT_DIGITS} digits, received one "
                         f"of {len(text)}")
    return int(text)


@contextlib.contextmanager
def _open(filepath):
    filepath = os.fspath(filepath)
    with open(filepath, "rb") as f:
        try:
            zf = zipfile.ZipFile(f)
        except _CORRUPT as error:
            raise InvalidSaveFileError(f"Cannot load {filepath!r}: expected a fastcnn zip file, "
                                       f"received a truncated or foreign file "
                                       f"({type(error).__name__}: {error})") from None
        with zf:
            yield _Archive(filepath, zf, os.fstat(f.fileno()).st_size)


def _weight_descriptions(model):
    return [f"weight {owner._weight_names[i]!r} of layer {owner.name!r}"
            for owner, i in model._weight_owners()]


def _read_weights(archive, model):
    return [archive.array(_weight_member(k), w, what)
            for k, (w, what) in enumerate(zip(model.weights, _weight_descriptions(model)))]


def _mapping(value, name, archive):
    if not isinstance(value, dict):
        archive.fail(f"Expected {name} to be a JSON object, received {value!r}")
    return value


def _named(registry, entry, name, archive, build=lambda cls, config: cls(**config)):
    """The class in ``registry`` that ``entry["class_name"]`` names, built from ``entry["config"]``
    by ``build(cls, config)``."""
    classes = {cls.__name__: cls for cls in registry.values()}
    entry = _mapping(entry, name, archive)
    cls = classes.get(entry.get("class_name"))
    if cls is None:
        archive.fail(f"Expected the {name} class_name to be one of {sorted(classes)}, received "
                     f"class_name={entry.get('class_name')!r}")
    return build(cls, _mapping(entry.get("config"), f"the {name} config", archive))


def _check_int(value, name, archive, upper=2**64):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < upper:
        archive.fail(f"Expected {name} to be an int in [0, {upper}), received {name}={value!r}")
    return value


def _deserialize_losses(entry, archive):
    if isinstance(entry, list):
        return [_deserialize_losses(v, archive) for v in entry]
    if isinstance(entry, dict) and set(entry) == {"dict"}:
        return {k: _deserialize_losses(v, archive)
                for k, v in _mapping(entry["dict"], "loss", archive).items()}
    if isinstance(entry, dict) and entry.get("class_name") == "LossFunctionWrapper":
        return deserialize(entry)  # a custom loss function, found by its registered name
    return None if entry is None else _named(losses.LOSSES, entry, "loss", archive)


def _build_shapes(value, archive):
    """A shape (a list of ints and None) as a tuple, inside lists and dicts of shapes."""
    if isinstance(value, dict):
        return {k: _build_shapes(v, archive) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, list) or isinstance(v, dict)
                                                 for v in value):
        return [_build_shapes(v, archive) for v in value]
    if isinstance(value, list) and all(v is None or (isinstance(v, int) and not isinstance(v, bool)
                                                     and v > 0) for v in value):
        return tuple(value)
    archive.fail(f"Expected input shapes in build_config, received {value!r:.200}")


def _build_from(model, build_config, archive):
    """Build a model that its config leaves unbuilt (a subclassed one) for the saved shapes."""
    if model.built or build_config is None:
        return
    shapes = _mapping(build_config, "build_config", archive).get("input_shape")
    model.build(_build_shapes(shapes, archive))


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model saved at ``filepath`` with its weights, seed and (when ``compile``) its
    compiled state, ready to predict bitwise as before or to resume training.

    Classes that are not fastcnn's are found in ``custom_objects`` ({name: class}) or among
    those registered with ``register_keras_serializable``; any other name is refused. Nothing in
    the file is executed, whatever ``safe_mode`` says."""
    with _open(filepath) as archive, custom_object_scope(custom_objects):
        if archive.kind != "model":
            archive.fail("Expected a model file, received a weights file; build the model and "
                         "call model.load_weights(filepath)")
        document = archive.json("config.json")
        try:
            model_class = get_class(document.get("class_name"))
        except ValueError as error:
            archive.fail(str(error))
        if not (hasattr(model_class, "fit") and hasattr(model_class, "get_weights")):
            archive.fail(f"Expected the class_name of a model, received "
                         f"{document.get('class_name')!r}")
        seed = _check_int(document.get("seed"), "seed", archive)
        state = document.get("compile_config")
        slot_names = ()
        try:
            with weight_budget(archive.weight_bytes() // 4):
                model = model_class.from_config(_mapping(document.get("config"), "config", archive))
                _build_from(model, document.get("build_config"), archive)
            if state is not None:
                state = _mapping(state, "compile_config", archive)
                entry = _mapping(state.get("optimizer"), "optimizer", archive)
                optimizer = _named(optimizers.OPTIMIZERS, entry, "optimizer", archive,
                                   build=lambda cls, config: cls.from_config(config))
                iterations = _check_int(entry.get("iterations"), "iterations", archive,
                                        ITERATIONS_LIMIT)
                if entry.get("has_slots") not in (True, False):
                    archive.fail(f"Expected has_slots to be true or false, received "
                                 f"{entry.get('has_slots')!r}")
                slot_names = optimizer.slot_names if entry["has_slots"] else ()
                loss = _deserialize_losses(state.get("loss"), archive)
                if compile:
                    model.compile(optimizer=optimizer, loss=loss,
                                  loss_weights=state.get("loss_weights"),
                                  metrics=state.get("metrics"),
                                  weighted_metrics=state.get("weighted_metrics"),
                                  fuse=state.get("fuse", True))
        except InvalidSaveFileError:
            raise
        except (KeyError, TypeError, ValueError, NotImplementedError) as error:
            archive.fail(f"Expected a valid model config in 'config.json', received one that "
                         f"fails with {type(error).__name__}: {error}")
        trainable = model.trainable_weights
        archive.check_members(
            ["metadata.json", "config.json"] + [_weight_member(k) for k in range(len(model.weights))]
            + [_slot_member(s, k) for s in slot_names for k in range(len(trainable))])
        weights = _read_weights(archive, model)
        slots = [[archive.array(_slot_member(s, k), w, f"optimizer slot {s!r} of trainable weight {k}")
                  for k, w in enumerate(trainable)] for s in slot_names]
    model.set_weights(weights)
    model.seed = seed
    if compile and state is not None:
        optimizer._iterations = iterations
        if slots:
            optimizer.set_slots(trainable, slots)
    return model


def load_weights(model, filepath):
    """Set ``model.weights`` from a weights file or a model file saved from the same
    architecture; nothing is changed unless every array matches."""
    with _open(filepath) as archive:
        if not model.built:
            try:
                with weight_budget(archive.weight_bytes() // 4):
                    _build_from(model, archive.json("metadata.json").get("build_config"), archive)
            except InvalidSaveFileError:
                raise
            except ValueError as error:
                archive.fail(f"Expected input shapes in build_config that the model builds "
                             f"for, received ones that fail with {error}")
        if not model.built:
            raise ValueError("Expected a built model to load weights into, received an unbuilt "
                             "one; declare an Input or call model.build(input_shape) first")
        stored = {name for name in archive.members if name.startswith("weights/")}
        expected = {_weight_member(k) for k in range(len(model.weights))}
        if stored != expected:
            archive.fail(f"Expected {len(expected)} weight arrays for this model, received "
                         f"{len(stored)}: {sorted(stored)[:3]}{'...' if len(stored) > 3 else ''}")
        weights = _read_weights(archive, model)
    model.set_weights(weights)
