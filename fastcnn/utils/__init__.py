"""Keras's utilities that scripts reach for: to_categorical, set_random_seed, PyDataset, and
the image files and folders (load_img, save_img, image_dataset_from_directory...)."""
import numpy as np

from ..random import set_random_seed
from .image_dataset import image_dataset_from_directory
from .image_utils import array_to_img, img_to_array, load_img, save_img
from .py_dataset import PyDataset

__all__ = ["PyDataset", "array_to_img", "image_dataset_from_directory", "img_to_array",
           "load_img", "save_img", "set_random_seed", "to_categorical"]


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer labels: (N,) or (N, 1) -> (N, num_classes)."""
    y = np.asarray(y)
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
    elif top > num_classes:
        raise ValueError(f"Expected labels below num_classes={num_classes}, received {top - 1}")
    out = np.zeros((*y.shape, num_classes), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out
