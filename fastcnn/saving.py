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

Keras 3's files are read and written too (``fastcnn.keras_format``): ``load_model`` and
``load_weights`` tell them by their content, ``save(..., format="keras")`` writes a ``.keras``
zip, and ``save_weights`` writes Keras's HDF5 layout to a name ending ``.weights.h5``.

Loading takes time linear in the file's size and memory bounded by what the file holds. Besides
the limits of ``fastcnn.file_limits`` (members, JSON size, depth and integers), it refuses,
before the work they would cause:

- a config whose layers would create more weight values than the file's weight members hold
  (4 bytes each): the weights are counted as they are declared, before they are allocated;
- an optimizer step count of ``ITERATIONS_LIMIT`` (2**62) or more, so that training can go on.
"""
import contextlib
import io
import json
import os
import re
import secrets
import zipfile

import numpy as np

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from . import losses, optimizers
from . import metrics as metrics_module
from .file_limits import (  # noqa: F401 - the limits, and the error, are saving's names too
    JSON_DEPTH_LIMIT, JSON_INT_DIGITS, JSON_LIMIT, MEMBER_LIMIT, InvalidSaveFileError, ZipArchive,
    few, open_zip)
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
ITERATIONS_LIMIT = 2**62
_NPY_HEADER_LIMIT = 16 * 2**10  # numpy refuses .npy headers beyond 10000 bytes anyway
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}
_ZIP64_THRESHOLD = 2**30  # a zip member written as a stream must announce zip64 before 2 GiB


__all__ = ["InvalidSaveFileError", "load_model", "register_keras_serializable", "save_model"]


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


def _replace(filepath, overwrite):
    """``atomic_write(filepath)``, refused if the file exists and not ``overwrite``."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"Expected a filepath that does not exist with overwrite=False, "
                              f"received filepath={filepath!r}")
    return atomic_write(filepath)


def _write(filepath, kind, config, arrays, overwrite, build_config=None):
    documents = {"metadata.json": {"format": FORMAT, "kind": kind, "format_version": FORMAT_VERSION,
                                   "build_config": build_config}}
    if config is not None:
        documents["config.json"] = config
    with _replace(filepath, overwrite) as f, zipfile.ZipFile(f, "w") as zf:
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


def save_model(model, filepath, overwrite=True, format=None):
    """Write the model to ``filepath``, atomically, in fastcnn's format (``format`` None or
    "fastcnn", whatever the name): architecture, weights, compiled state (optimizer slots and
    step count, loss, metrics) and seed, for a bitwise resume; or in Keras 3's (``format``
    "keras"): a ``.keras`` zip that Keras's load_model opens, without the optimizer's state and
    the seed (fastcnn.keras_format.keras_zip), refused for a layer or option Keras lacks."""
    if format not in (None, "fastcnn", "keras"):
        raise ValueError(f'Expected format None, "fastcnn" or "keras", received format={format!r}')
    _check_model(model)
    if format == "keras":
        from .keras_format import keras_zip
        members = keras_zip.model_members(model)
        with _replace(filepath, overwrite) as f, zipfile.ZipFile(f, "w") as zf:
            for name, data in members.items():
                zf.writestr(_zip_info(name), data)
        return
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
    built for, so that a new instance of a subclassed model can load them. A name that ends
    ``.weights.h5`` gets Keras's HDF5 layout, which Keras's load_weights reads (h5py needed);
    any other, fastcnn's zip of .npy arrays."""
    if os.fsdecode(filepath).endswith(".weights.h5"):
        from .keras_format import keras_h5
        data = keras_h5.weights_file(model, _build_config(model))
        with _replace(filepath, overwrite) as f:
            f.write(data)
        return
    _write(filepath, "weights", None, {_weight_member(k): w for k, w in enumerate(model.weights)},
           overwrite, build_config=_build_config(model))


# -- reading -------------------------------------------------------------------------------
class _Archive(ZipArchive):
    """A saved file opened for reading: Keras's (``kind`` "keras"), whose members the Keras
    reader checks, or fastcnn's, its member names and metadata already checked."""

    def __init__(self, filepath, zf, size):
        super().__init__(filepath, zf, size)
        if "metadata.json" in self.members and _is_keras(self.json("metadata.json")):
            self.kind = "keras"
            return
        self.check_names(_MEMBER_NAME, "metadata.json, config.json, weights/NNNN.npy and "
                                       "optimizer/<slot>/NNNN.npy")
        metadata = self.json("metadata.json")
        received = (metadata.get("format"), metadata.get("format_version"))
        if received != (FORMAT, FORMAT_VERSION) or metadata.get("kind") not in ("model", "weights"):
            self.fail(f"Expected a fastcnn file of format version {FORMAT_VERSION}, received "
                      f"metadata {metadata!r}")
        self.kind = metadata["kind"]

    def array(self, name, like, what):
        """Member ``name`` as a float32 array shaped like ``like`` (``what`` names it in errors).

        The header is checked before any data is read, so an object array's pickle is never
        touched and a forged shape allocates nothing."""
        data = self.read(name, like.nbytes + _NPY_HEADER_LIMIT)
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
        """The most bytes the weight members can hold."""
        return self.stored_bytes([name for name in self.members if name.startswith("weights/")])

    def check_members(self, expected):
        received, expected = set(self.members), set(expected)
        if received != expected:
            self.fail(f"Expected the members {few(expected)}, but {few(expected - received)} "
                      f"are missing and {few(received - expected)} are unexpected")


def _is_keras(metadata):
    """Whether a zip's metadata is that of a file Keras wrote (it names Keras's version)."""
    return "keras_version" in metadata and "format" not in metadata


def _open(filepath):
    return open_zip(filepath, _Archive)


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _is_hdf5(filepath):
    with open(filepath, "rb") as f:
        return f.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE


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
    the file is executed, whatever ``safe_mode`` says.

    A ``.keras`` file that Keras 3 wrote (told by its metadata, whatever its name) loads as
    ``fastcnn.keras_format.keras_zip`` describes: Keras's layers that fastcnn has, in a
    Sequential or functional model, with their weights and, when ``compile`` and fastcnn has
    every part of it, the compile config; the optimizer starts afresh."""
    if _is_hdf5(filepath):
        raise InvalidSaveFileError(f"Cannot load {os.fspath(filepath)!r}: an HDF5 file holds "
                                   "Keras's weights alone (load them into a built model with "
                                   "model.load_weights) or a legacy Keras model, which fastcnn "
                                   "does not read")
    with _open(filepath) as archive, custom_object_scope(custom_objects):
        if archive.kind == "keras":
            from .keras_format import keras_zip
            return keras_zip.load_model(archive, compile)
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


def _build_to_load(model, source, size, build_config):
    """Build an unbuilt model for the shapes ``build_config()`` gives, creating no more weight
    values than ``size`` bytes hold; refuse a model that stays unbuilt."""
    if not model.built:
        try:
            with weight_budget(size // 4):
                _build_from(model, build_config(), source)
        except InvalidSaveFileError:
            raise
        except ValueError as error:
            source.fail(f"Expected input shapes in build_config that the model builds for, "
                        f"received ones that fail with {error}")
    if not model.built:
        raise ValueError("Expected a built model to load weights into, received an unbuilt "
                         "one; declare an Input or call model.build(input_shape) first")


def load_weights(model, filepath):
    """Set ``model.weights`` from a file saved from the same architecture: fastcnn's weights or
    model file, or Keras's ``.weights.h5`` or ``.keras`` file, told apart by their content;
    nothing is changed unless every array matches."""
    if _is_hdf5(filepath):
        from .keras_format import keras_h5
        with keras_h5.open_weights(filepath) as source:
            _build_to_load(model, source, source.size, source.build_config)
            weights = source.read_weights(model)
        model.set_weights(weights)
        return
    with _open(filepath) as archive:
        if archive.kind == "keras":
            from .keras_format import keras_zip
            with keras_zip.weights_of(archive) as source:
                _build_to_load(model, source, source.size, lambda: None)
                weights = source.read_weights(model)
            model.set_weights(weights)
            return
        _build_to_load(model, archive, archive.weight_bytes(),
                       lambda: archive.json("metadata.json").get("build_config"))
        stored = {name for name in archive.members if name.startswith("weights/")}
        expected = {_weight_member(k) for k in range(len(model.weights))}
        if stored != expected:
            archive.fail(f"Expected {len(expected)} weight arrays for this model, received "
                         f"{len(stored)}: {sorted(stored)[:3]}{'...' if len(stored) > 3 else ''}")
        weights = _read_weights(archive, model)
    model.set_weights(weights)
