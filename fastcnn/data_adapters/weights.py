"""Loss weights, as Keras reads them: ``sample_weight`` gives each sample's weight (or each
position's, for outputs with positions), ``class_weight`` maps a class index to the weight of
the samples of that class (a class it does not name weighs 1). With the default reduction a
batch's loss is then sum(w_i * loss_i) / m over its m loss values (samples, or samples times
positions).

For a model with several outputs, Keras hands each output's loss (and weighted metrics) its own
weights: one array given alone is every output's, a list holds one entry per output and a dict
one per output name, where None (or a name left out) leaves that output unweighted. Each
output's weights are per sample, or per position of that output."""
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


def sample_weights(weights, n, positions=(), name="sample_weight"):
    """``weights`` as a float32 array: one finite weight per sample, (n,) or (n, 1), or for an
    output with ``positions`` (the axes between the samples and the last, such as (H, W) for
    outputs (n, H, W, classes)), one per position, (n, *positions) or (n, *positions, 1): Keras
    multiplies each position's loss by its weight, and the mean is still over every position."""
    if weights is None:
        return None
    w = check_array(weights, name)
    per_position = (n, *positions) if positions else None
    if w.ndim >= 2 and w.shape[-1] == 1 and w.shape[:-1] in ((n,), per_position):
        w = w[..., 0]
    if w.shape not in ((n,), per_position):
        accepted = f"({n},), one weight per sample"
        if per_position:
            accepted += f", or {per_position}, one per position of the output"
        raise ValueError(f"Expected {name} of shape {accepted}, received shape {w.shape}")
    w = np.asarray(w, dtype=np.float32)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"Expected finite {name}, received non-finite values")
    return w


def class_weights(class_weight, y, output_shape, name="y"):
    """The float32 weight (n,) of each sample of the targets ``y``: integer labels (n,) or
    (n, 1), or one-hot rows (n, classes) whose largest entry is the class, for outputs of shape
    ``output_shape`` (batch axis first). As in Keras, a sample has one class: targets of 3 or
    more dimensions, and any output with a class per position, are refused."""
    y = np.asarray(y)
    if len(output_shape) > 2 or y.ndim > 2:
        raise ValueError(
            f"Expected class_weight with targets of one class per sample, (samples,), "
            f"(samples, 1) or (samples, classes), received targets {name} of shape {y.shape} "
            f"for outputs of shape {tuple(output_shape)}: like Keras, class_weight is not "
            f"supported for 3+ dimensional targets or per-position outputs. Pass sample_weight "
            f"of shape (samples, *positions) holding the weight of each position's class "
            f"instead")
    if y.ndim == 2 and y.shape[1] > 1:
        labels = y.argmax(axis=1)
    else:
        labels = np.rint(y.reshape(-1)).astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"Expected class indices >= 0 in {name} for class_weight, received "
                         f"{labels.min()}")
    top = max(max(class_weight, default=-1) + 1, int(labels.max()) + 1 if labels.size else 0)
    table = np.ones(top, np.float32)
    table[list(class_weight)] = list(class_weight.values())
    return table[labels]
