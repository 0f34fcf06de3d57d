"""Keras's utilities that scripts reach for: to_categorical, set_random_seed, clear_session,
PyDataset, and the image files and folders (load_img, save_img, image_dataset_from_directory...)."""
import itertools
import numbers
import random as _py_random

import numpy as np

from .. import random as _random
from .._ops.checks import check_memory, shown
from ..engine import tensor as _tensor
from ..layers import base as _layer_base
from ..layers import input_layer as _input_layer
from ..random import set_random_seed
from .image_dataset import image_dataset_from_directory
from .image_utils import array_to_img, img_to_array, load_img, save_img
from .py_dataset import PyDataset

__all__ = ["PyDataset", "array_to_img", "clear_session", "image_dataset_from_directory",
           "img_to_array", "load_img", "save_img", "set_random_seed", "to_categorical"]


def clear_session(free_memory=True):
    """Keras's reset of the global state: new layers and tensors are named from scratch again
    ("dense", "dense_1", ...), and the generator that draws unseeded weights starts a new stream
    from Python's random module (so that after ``set_random_seed`` it is reproducible, as in
    Keras). Models already built keep their names and weights. ``free_memory`` is accepted as
    Keras's; there is no device memory to free."""
    _layer_base._name_counters.clear()
    _tensor._tensor_counters.clear()
    _input_layer._input_counter = itertools.count()
    _random._generator = np.random.default_rng(_py_random.getrandbits(64))


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer labels: (N,) or (N, 1) -> (N, num_classes)."""
    y = np.asarray(y)
    check_memory([("the labels as int64", 8 * y.size)], "y")  # a broadcast view can be vast
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise TypeError(f"Expected integer labels, received dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"Expected non-negative labels, received minimum {y.min()}")
    top = int(y.max()) + 1 if y.size else 0
    if num_classes is None:
        num_classes = top
    elif isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 0:
        raise ValueError(f"Expected num_classes to be None or an int >= 0, received "
                         f"num_classes={shown(num_classes)}")
    elif top > num_classes:
        raise ValueError(f"Expected labels below num_classes={num_classes}, received {top - 1}")
    out = np.zeros((*y.shape, num_classes), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out
