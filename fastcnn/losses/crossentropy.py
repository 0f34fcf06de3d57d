"""The cross-entropies, plain and focal, of classes (softmax outputs) and of independent binary
outputs (sigmoid outputs), with Keras's label smoothing.

Cross-entropy after a softmax layer is computed from that layer's logits by the fused kernel
(the model arranges this), which is both faster and stable where log(softmax) would underflow.
"""
import numbers

import numpy as np

from .._ops import loss as loss_ops
from .base import (
    Loss,
    check_axis_last,
    check_label_smoothing,
    class_labels,
    output_shape_tuple,
    shape_text,
    targets_like_outputs,
)
from .._ops.checks import as_kernel_array, real_number, shown


def _smoothed(y_true, label_smoothing, toward):
    """Keras's label smoothing: the targets moved toward ``toward`` by ``label_smoothing``."""
    if not label_smoothing:
        return y_true
    return (y_true * (1 - label_smoothing) + label_smoothing * toward).astype(y_true.dtype)


class _OneHotTargets:
    """Targets of the outputs' shape: one-hot (or soft) class distributions over the last axis."""

    def check_targets(self, y, output_shape):
        output_shape = output_shape_tuple(output_shape)
        if output_shape and output_shape[-1] == 0:  # a distribution over no classes
            raise ValueError(f"Expected outputs with at least one class for {self.name}, "
                             f"received output shape {shape_text(output_shape)}")
        y = np.asarray(y)
        if y.shape[1:] != output_shape:
            raise ValueError(f"Expected one-hot targets y of shape {shape_text(output_shape)} "
                             f"for {self.name}, received shape {y.shape}; use "
                             "sparse_categorical_crossentropy for integer labels")
        return as_kernel_array(y, "y", dtype=self.target_dtype)


class _Crossentropy(Loss):
    """Keras's arguments of the cross-entropies: from_logits, label_smoothing and axis (the
    classes' axis, the last)."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name, reduction, dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.axis = check_axis_last(axis, self.name)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class CategoricalCrossentropy(_OneHotTargets, _Crossentropy):
    """Keras's categorical cross-entropy, -sum(t log p) over the classes (the last axis).

    On probabilities it normalises each row to sum 1 and clips it to [1e-7, 1 - 1e-7], as Keras
    does; from logits (``from_logits=True``, or the logits of a final softmax layer that the
    model hands over) it works from the log-sum-exp. ``label_smoothing`` s replaces the targets
    t by t (1 - s) + s / classes.
    """

    name = "categorical_crossentropy"

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        y_true = _smoothed(y_true, self.label_smoothing, 1 / y_pred.shape[1])
        if logits or self.from_logits:
            loss_ops.softmax_cross_entropy(y_pred, y_true, grad_scale, grad=grad, loss=loss)
        else:  # the focal kernel with no focus and no weights is Keras's formula on probabilities
            loss_ops.categorical_focal_crossentropy(y_pred, y_true, grad_scale, alpha=1.0,
                                                    gamma=0.0, grad=grad, loss=loss)

class SparseCategoricalCrossentropy(Loss):
    """Categorical cross-entropy with integer class labels, (samples, ...) or (samples, ..., 1).
    (Keras 3's has no label smoothing either.) Positions labelled ``ignore_class`` (a "void"
    class of segmentation maps, such as -1 or 255) have no loss and no gradient, and a mean is
    taken over the other positions, as in Keras."""

    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name=None, dtype=None):
        super().__init__(name, reduction, dtype)
        self.from_logits = bool(from_logits)
        if ignore_class is not None and (isinstance(ignore_class, bool) or
                                         not isinstance(ignore_class, numbers.Integral)):
            raise ValueError(f"Expected ignore_class to be None or an int, received "
                             f"ignore_class={ignore_class!r}")
        self.ignore_class = None if ignore_class is None else int(ignore_class)

    def check_targets(self, y, output_shape):
        return class_labels(y, output_shape_tuple(output_shape), self.name, self.ignore_class)

    def _mask(self, y_true):
        return None if self.ignore_class is None else y_true != self.ignore_class

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        if self.ignore_class is not None:  # any class will do: the mask zeroes these rows
            y_true = np.where(y_true == self.ignore_class, 0, y_true)
        if logits or self.from_logits:
            loss_ops.sparse_softmax_cross_entropy(y_pred, y_true, grad_scale, grad=grad,
                                                  loss=loss)
            return
        onehot = np.zeros(y_pred.shape, y_pred.dtype)
        onehot[np.arange(len(y_true)), y_true] = 1
        loss_ops.categorical_focal_crossentropy(y_pred, onehot, grad_scale, alpha=1.0, gamma=0.0,
                                                grad=grad, loss=loss)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "ignore_class": self.ignore_class}


class BinaryCrossentropy(_Crossentropy):
    """Keras's binary cross-entropy, averaged over the outputs of a position.

    On probabilities (a sigmoid output) it clips them to [1e-7, 1 - 1e-7] as Keras does; with
    ``from_logits=True`` it works from the scores in a form that cannot overflow. Targets are
    in [0, 1], of the outputs' shape (samples, ..., units), or without the last axis where it
    holds a single unit. ``label_smoothing`` s replaces them by t (1 - s) + s / 2.
    """

    name = "binary_crossentropy"

    def check_targets(self, y, output_shape):
        return targets_like_outputs(y, output_shape_tuple(output_shape), self.name,
                                    self.target_dtype)

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.binary_crossentropy(y_pred, _smoothed(y_true, self.label_smoothing, 0.5),
                                     grad_scale, from_logits=logits or self.from_logits,
                                     grad=grad, loss=loss)


class CategoricalFocalCrossentropy(_OneHotTargets, _Crossentropy):
    """Keras's focal cross-entropy of classes: sum over the classes of
    alpha (1 - o)^gamma (-t log o), o the probabilities (softmax of logits) normalised and clipped
    as by CategoricalCrossentropy. ``alpha`` is one number or a list, one per class; gamma = 0
    and alpha = 1 give the plain cross-entropy."""

    name = "categorical_focal_crossentropy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)
        given = alpha
        alpha = np.asarray(alpha)  # an int beyond int64 makes an object array, refused here
        if alpha.dtype.kind in "iu":
            alpha = alpha.astype(np.float64)
        if alpha.ndim > 1 or alpha.dtype.kind != "f" or not np.all(np.isfinite(alpha)):
            raise ValueError(f"Expected alpha to be a finite number or a list of them (one per "
                             f"class), received alpha={shown(given)}")
        self.alpha = alpha.tolist()
        self.gamma = real_number(gamma, "gamma", 0)

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.categorical_focal_crossentropy(
            y_pred, _smoothed(y_true, self.label_smoothing, 1 / y_pred.shape[1]), grad_scale,
            alpha=self.alpha, gamma=self.gamma, from_logits=logits or self.from_logits,
            grad=grad, loss=loss)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


class BinaryFocalCrossentropy(BinaryCrossentropy):
    """Keras's binary focal cross-entropy, averaged over the outputs of a position:
    (1 - p_t)^gamma times the clipped binary cross-entropy, p_t = t p + (1 - t)(1 - p), p the
    probability (the sigmoid of a logit); with ``apply_class_balancing`` also times alpha where
    t = 1 and 1 - alpha where t = 0 (in between for soft targets)."""

    name = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", name=None,
                 dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha = real_number(alpha, "alpha")
        self.gamma = real_number(gamma, "gamma", 0)

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.binary_focal_crossentropy(
            y_pred, _smoothed(y_true, self.label_smoothing, 0.5), grad_scale,
            apply_class_balancing=self.apply_class_balancing, alpha=self.alpha, gamma=self.gamma,
            from_logits=logits or self.from_logits, grad=grad, loss=loss)

    def get_config(self):
        return {**super().get_config(), "apply_class_balancing": self.apply_class_balancing,
                "alpha": self.alpha, "gamma": self.gamma}
