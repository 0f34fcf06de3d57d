"""The accuracy counts that the training loop sums over its batches, until it keeps metric objects.

Each takes one batch's targets and outputs y_pred (samples, ..., units) and returns (correct,
total): how many of the batch's predictions are right, and how many there are. A position (a pixel
of an image output) is one prediction for the categorical accuracies, and each unit is one for
binary accuracy. Keras averages over the last axis, then over the rest; the groups are all of one
size, so the ratio of the sums is the same number.

``resolve_accuracy`` picks the function that ``metrics=["accuracy"]`` stands for, as Keras does.
"""
import functools

import numpy as np

from ..arguments import finite_float
from ..losses import BinaryCrossentropy, Loss
from .base import real_array


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Outputs above ``threshold`` that have a target of 1, and the others that have a target
    of 0, among all of y_pred's values; targets of y_pred's shape, or without its last axis where
    that holds a single unit."""
    if finite_float(threshold) is None:
        raise ValueError(f"Expected threshold to be a finite number, received "
                         f"threshold={threshold!r:.200}")
    y_pred = real_array(y_pred, "y_pred")
    y_true = _targets(y_true, y_pred.shape, "binary_accuracy")
    return int(np.count_nonzero((y_pred > threshold) == y_true)), y_pred.size


def categorical_accuracy(y_true, y_pred):
    """Positions whose largest output (the first, on ties) is where the one-hot target is 1;
    targets of y_pred's shape."""
    y_pred = real_array(y_pred, "y_pred")
    y_true = _targets(y_true, y_pred.shape, "categorical_accuracy")
    predicted = y_pred.argmax(axis=-1)
    return int(np.count_nonzero(predicted == y_true.argmax(axis=-1))), predicted.size


def sparse_categorical_accuracy(y_true, y_pred):
    """Positions whose largest output (the first, on ties) is at the integer label; labels of
    shape y_pred.shape[:-1], or with a trailing axis of 1."""
    y_pred = real_array(y_pred, "y_pred")
    predicted = y_pred.argmax(axis=-1)
    y_true = _targets(y_true, predicted.shape, "sparse_categorical_accuracy")
    return int(np.count_nonzero(predicted == y_true)), predicted.size


def _targets(y_true, shape, metric):
    """y_true with the given shape, from that shape, or from it with an axis of 1 added or taken
    away at the end (Keras squeezes or expands the targets so)."""
    y_true = real_array(y_true, "y_true")
    if y_true.shape in (shape, (*shape, 1)) or (*y_true.shape, 1) == shape:
        return y_true.reshape(shape)
    raise ValueError(f"Expected targets of shape {shape} for {metric}, received shape "
                     f"{y_true.shape}")


def resolve_accuracy(loss, output_shape, target_shape):
    """The function that Keras's "accuracy" (or "acc") stands for: binary accuracy when the
    outputs have one unit in their last axis or the loss is binary cross-entropy; otherwise
    sparse categorical accuracy for integer labels (targets of lower rank than the outputs, or
    with a last axis of 1), and categorical accuracy for one-hot targets.

    ``loss`` is the model's Loss; ``output_shape`` and ``target_shape`` are one sample's shapes
    (without the batch axis), the targets' as the loss's check_targets returns them. The binary
    threshold is 0.5 on probabilities and 0 on logits (``loss.from_logits``), where the sigmoid
    crosses 0.5 (Keras would compare the logits with 0.5).
    """
    if not isinstance(loss, Loss):
        raise TypeError(f"Expected loss to be a fastcnn.losses.Loss, received {loss!r:.200}")
    output_shape, target_shape = tuple(output_shape), tuple(target_shape)
    if not output_shape:
        raise ValueError("Expected output_shape with at least one axis besides the batch axis, "
                         f"received output_shape={output_shape}")
    if output_shape[-1] == 1 or isinstance(loss, BinaryCrossentropy):
        return functools.partial(binary_accuracy, threshold=0.0 if loss.from_logits else 0.5)
    if len(target_shape) < len(output_shape) or target_shape[-1] == 1:
        return sparse_categorical_accuracy
    return categorical_accuracy
