"""Keras's HDF5 layout of a model's weights: ``model.weights.h5`` inside a ``.keras`` zip, or a
``.weights.h5`` file.

Each layer's own weights are the datasets ``<path>/vars/0``, ``1``... at the path Keras's walk of
the model gives it: a model's layers under ``layers/<class in snake case>``, numbered per class
in Keras's order of ``model.layers`` (``layers/conv2d``, ``layers/conv2d_1``), a nested model's
under its own (``layers/sequential/layers/dense``), and the layers a subclassed model or a
custom layer holds under the attribute that holds them. Within a layer, the weights created
trainable come first, each group in creation order, as Keras's ``save_own_variables`` writes
them. The file may hold more (an optimizer's variables): what does not belong to a layer
under ``optimizer/`` is ignored; anything else must match the model.

Reading walks the whole file, and refuses:

- more than ``MEMBER_LIMIT`` groups and datasets, or groups nested deeper than
  ``JSON_DEPTH_LIMIT``;
- soft and external links, external and virtual datasets, chunks larger than their dataset;
- a dataset whose shape differs from its weight's, or whose dtype is not a float (an integer
  where Keras keeps one, Normalization's count), checked before the dataset is read;
- ``fastcnn_build_config`` (an attribute fastcnn adds and Keras ignores: the input shapes a
  subclassed model was built for) over ``JSON_LIMIT`` bytes or not a fixed-length string.

The HDF5 structures themselves are parsed by the HDF5 library (through h5py).
"""
import collections
import io
import json
import math
import os

import numpy as np

from ..file_limits import (JSON_DEPTH_LIMIT, JSON_LIMIT, MEMBER_LIMIT, InvalidSaveFileError,
                           parse_json)
from ..layers.base import Layer, _snake_case
from .model_configs import is_model, keras_layers, model_kind

BUILD_CONFIG = "fastcnn_build_config"
# Weights Keras keeps as integers: (layer class, weight name) -> the dtype Keras gives them.
INTEGER_WEIGHTS = {("Normalization", "count"): np.int32}
_CHUNK_SLACK = 2**20  # bytes a dataset's chunk may exceed it by: a small dataset's whole chunk


def h5py_module():
    try:
        import h5py
    except ImportError:
        raise ImportError("Keras's .keras and .weights.h5 files are HDF5 inside, which needs "
                          "h5py: pip install fastcnn[keras]") from None
    return h5py


# -- Keras's paths ---------------------------------------------------------------------------
def _join(*parts):
    return "/".join(part for part in parts if part)


def _keras_name(name):
    """Keras's walk visits an object's attributes sorted, its private ones last."""
    return f"~{name}" if name.startswith("_") else name


def _unique(name, used):
    used[name] = used.get(name, -1) + 1
    return name if used[name] == 0 else f"{name}_{used[name]}"


def variable_paths(model):
    """``(path, layer)`` of each layer with weights of its own, at Keras's path for it."""
    found, visited = [], set()

    def visit(layer, path):
        if id(layer) in visited:
            return
        visited.add(id(layer))
        if layer._weights:
            found.append((path, layer))
        attributes = dict(vars(layer))
        kind = model_kind(layer) if is_model(layer) else None
        if kind is not None:  # Keras walks a model's layers before its attributes
            container(keras_layers(layer), _join(path, "layers"))
        elif is_model(layer):  # a subclassed model's `layers` is one of its attributes to Keras
            attributes["layers"] = layer.layers
        for name in sorted(attributes, key=_keras_name):
            value = attributes[name]
            if isinstance(value, Layer):
                visit(value, _join(path, name))
            elif isinstance(value, (list, tuple, dict)) and not name.startswith("__"):
                container(value, _join(path, name))

    def container(items, path, seen=None):
        seen = set() if seen is None else seen
        if id(items) in seen:
            return
        seen.add(id(items))
        used = {}
        for item in items.values() if isinstance(items, dict) else items:
            if isinstance(item, Layer):
                name = "Functional" if model_kind(item) == "Functional" else type(item).__name__
                visit(item, _join(path, _unique(_snake_case(name), used)))
            elif isinstance(item, (list, tuple, dict)):
                container(item, _join(path, _unique("container", used)), seen)

    visit(model, "")
    return found


def keras_weights(layer):
    """The indices of ``layer``'s own weights in Keras's order: created trainable first."""
    flags = layer._weight_trainable
    return [i for i, t in enumerate(flags) if t] + [i for i, t in enumerate(flags) if not t]


def _dataset_names(path, layer):
    return [_join(path, "vars", str(k)) for k in range(len(layer._weights))]


# -- writing ---------------------------------------------------------------------------------
def weights_file(model, build_config=None):
    """The bytes of an HDF5 file of ``model``'s weights in Keras's layout."""
    h5py = h5py_module()
    stream = io.BytesIO()
    with h5py.File(stream, "w") as f:
        if build_config is not None:
            f.attrs[BUILD_CONFIG] = np.bytes_(json.dumps(build_config))
        for path, layer in variable_paths(model):
            group = f.create_group(_join(path, "vars"))
            group.attrs["name"] = layer.name
            for k, i in enumerate(keras_weights(layer)):
                dtype = INTEGER_WEIGHTS.get((type(layer).__name__, layer._weight_names[i]))
                value = layer._weights[i]
                group[str(k)] = value if dtype is None else np.rint(value).astype(dtype)
    return stream.getvalue()


# -- reading ---------------------------------------------------------------------------------
class H5Weights:
    """An HDF5 weights file open for reading (``source``: a path or a binary stream), its
    datasets indexed under the limits above; ``filepath`` names it in errors, ``size`` bounds
    what a model built to load it may allocate."""

    def __init__(self, source, filepath, size):
        h5py = self.h5py = h5py_module()
        self.filepath, self.size = filepath, size
        try:
            self.file = h5py.File(source, "r")
        except (OSError, ValueError) as error:
            self.fail(f"expected an HDF5 file, received a truncated or foreign one ({error})")
        try:
            self.datasets = self._index()
        except BaseException:
            self.file.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def fail(self, message):
        raise InvalidSaveFileError(f"Cannot load {self.filepath!r}: {message}")

    def _index(self):
        """{path: dataset} of every dataset, the groups walked under the limits."""
        h5py = self.h5py
        datasets, count, stack = {}, 0, [("", self.file, 0)]
        try:
            while stack:
                path, group, depth = stack.pop()
                count += len(group)
                if count > MEMBER_LIMIT:
                    self.fail(f"Expected at most {MEMBER_LIMIT} groups and datasets, received more")
                for name in group:
                    where = _join(path, name)
                    link = group.get(name, getlink=True)
                    if not isinstance(link, h5py.HardLink):
                        self.fail(f"Expected no soft or external links, received "
                                  f"{type(link).__name__} {where!r}")
                    item = group[name]
                    if isinstance(item, h5py.Dataset):
                        datasets[where] = item
                    elif not isinstance(item, h5py.Group):
                        self.fail(f"Expected groups and datasets, received {type(item).__name__} "
                                  f"{where!r}")
                    elif depth + 1 > JSON_DEPTH_LIMIT:
                        self.fail(f"Expected groups nested at most {JSON_DEPTH_LIMIT} deep, "
                                  f"received {where!r}")
                    else:
                        stack.append((where, item, depth + 1))
        except (OSError, KeyError, RuntimeError) as error:  # damaged structures
            self.fail(f"the HDF5 structure is damaged ({type(error).__name__}: {error})")
        return datasets

    def build_config(self):
        """fastcnn's build_config attribute, or None."""
        attributes = self.file.attrs
        if BUILD_CONFIG not in attributes:
            return None
        attribute = attributes.get_id(BUILD_CONFIG)
        dtype = attribute.dtype
        if dtype.kind != "S" or attribute.shape not in ((), None) or dtype.itemsize > JSON_LIMIT:
            self.fail(f"Expected the attribute {BUILD_CONFIG!r} to be a string of at most "
                      f"{JSON_LIMIT} bytes, received dtype {dtype} and shape {attribute.shape}")
        return parse_json(bytes(attributes[BUILD_CONFIG]), f"attribute {BUILD_CONFIG!r}",
                          self.fail)

    def _array(self, name, like, integer, what):
        """Dataset ``name`` as an array of ``like``'s shape and dtype, checked before reading."""
        dataset = self.datasets[name]
        dtype = dataset.dtype
        allowed = "f" + ("iu" if integer else "")
        if dtype.kind not in allowed or dtype.itemsize > 8 or dataset.shape != like.shape:
            self.fail(f"Expected dataset {name!r} ({what}) of shape {like.shape} and a "
                      f"{'numeric' if integer else 'float'} dtype, received shape {dataset.shape} "
                      f"and dtype {dtype}")
        if dataset.external or dataset.is_virtual:
            self.fail(f"Expected dataset {name!r} ({what}) stored in the file, received an "
                      "external or virtual one")
        chunk_bytes = math.prod(dataset.chunks or ()) * dtype.itemsize
        if dataset.chunks and chunk_bytes > like.size * dtype.itemsize + _CHUNK_SLACK:
            self.fail(f"Expected dataset {name!r} ({what}) in chunks no larger than itself, "
                      f"received chunks {dataset.chunks}")
        out = np.empty(like.shape, dtype)
        try:
            if out.size:
                dataset.read_direct(out)
        except (OSError, ValueError, TypeError, RuntimeError) as error:
            self.fail(f"dataset {name!r} ({what}) is damaged ({error})")
        return out.astype(like.dtype)

    def read_weights(self, model):
        """``model.weights``' new values, in order, each checked against the model."""
        if "layer_names" in self.file.attrs:
            self.fail("Expected Keras 3's layout of weights, received Keras 2's (legacy .h5), "
                      "which fastcnn does not read; load the model in Keras 3 and save its "
                      "weights again")
        groups = collections.defaultdict(list)
        for name in self.datasets:
            groups[name.rpartition("/")[0]].append(name)
        values = {}
        for path, layer in variable_paths(model):
            names = _dataset_names(path, layer)
            present = sorted(groups.pop(_join(path, "vars"), []))
            if present != sorted(names):
                self.fail(f"Expected the {len(names)} weights of layer {layer.name!r} "
                          f"({type(layer).__name__}) under {_join(path, 'vars')!r}, received "
                          f"{present[:5]}")
            for name, i in zip(names, keras_weights(layer)):
                integer = (type(layer).__name__, layer._weight_names[i]) in INTEGER_WEIGHTS
                what = f"weight {layer._weight_names[i]!r} of layer {layer.name!r}"
                values[id(layer), i] = self._array(name, layer._weights[i], integer, what)
        unclaimed = [n for group, names in groups.items() for n in names
                     if not (group + "/").startswith("optimizer/")]
        if unclaimed:
            self.fail(f"Expected weights of this model's layers only, received datasets no layer "
                      f"of it has: {sorted(unclaimed)[:5]}")
        return [values[id(owner), i] for owner, i in model._weight_owners()]


def open_weights(filepath):
    """The HDF5 weights file at ``filepath``, for reading."""
    filepath = os.fspath(filepath)
    return H5Weights(filepath, filepath, os.path.getsize(filepath))


def open_member(data, filepath, size):
    """The HDF5 weights held in ``data``, the bytes of a zip member of ``filepath``."""
    return H5Weights(io.BytesIO(data), filepath, size)
