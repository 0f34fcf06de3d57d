"""Per-sample loss weights, as Keras reads them: ``sample_weight`` gives each sample's weight,
``class_weight`` maps a class index to the weight of the samples of that class (a class it does
not name weighs 1). A batch's loss is then sum(w_i * loss_i) / n over its n samples."""
import numbers

import numpy as np

from .._ops.checks import check_array


def check_class_weight(class_weight):
    """{int class: float weight}, or None."""
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict):
        raise TypeError(f"Expected class_weight to be a dict {{class index: weight}}, received "
                        f"{type(class_weight).__name__}")
    checked = {}
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, numbers.Integral) or key < 0:
            raise ValueError(f"Expected class_weight's keys to be class indices (ints >= 0), "
                             f"received {key!r:.200}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not np.isfinite(value):
            raise ValueError(f"Expected class_weight's values to be finite numbers, received "
                             f"{value!r:.200} for class {key}")
        checked[int(key)] = float(value)
    return checked


def sample_weights(weights, n, name="sample_weight"):
    """``weights`` as a float32 array (n,): one finite weight per sample, (n,) or (n, 1)."""
    if weights is None:
        return None
    w = check_array(weights, name)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise ValueError(f"Expected {name} of shape ({n},), one weight per sample, received "
                         f"shape {w.shape}")
    w = np.asarray(w, dtype=np.float32)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"Expected finite {name}, received non-finite values")
    return w


def class_weights(class_weight, y, name="y"):
    """The float32 weight (n,) of each sample of the targets ``y``: integer labels (n,) or
    (n, 1), or one-hot rows (n, classes) whose largest entry is the class."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        labels = y.argmax(axis=1)
    elif y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        labels = np.rint(y.reshape(-1)).astype(np.int64)
    else:
        raise ValueError(f"Expected class_weight with targets {name} of shape (samples,), "
                         f"(samples, 1) or (samples, classes), received shape {y.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"Expected class indices >= 0 in {name} for class_weight, received "
                         f"{labels.min()}")
    top = max(max(class_weight, default=-1) + 1, int(labels.max()) + 1 if labels.size else 0)
    table = np.ones(top, np.float32)
    table[list(class_weight)] = list(class_weight.values())
    return table[labels]
