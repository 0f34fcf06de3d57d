"""Losses. Each gives per-sample losses and the gradient of the batch mean in one call.

Outputs may have any rank >= 2, (samples, ..., outputs), as in Keras: each position (a pixel of
an image output) has its loss over the last axis, and the batch loss is the mean over all
positions of all samples. The kernels see the output as rows (samples * positions, outputs).

Cross-entropy after a softmax layer is computed from that layer's logits by the fused kernel
(the model arranges this), which is both faster and stable where log(softmax) would underflow.
"""
import math
import numbers

import numpy as np

from ._ops import loss as loss_ops
from ._ops.checks import as_kernel_array, out_buffer

EPSILON = 1e-7  # Keras's clip for probabilities given to cross-entropy


class Loss:
    name = None

    def __init__(self, from_logits=False, name=None):
        self.from_logits = bool(from_logits)
        if name is not None:
            self.name = name

    def check_targets(self, y, output_shape):
        """y as the array the loss consumes, or a ValueError naming the expected shape.
        ``output_shape`` is one sample's output shape, such as (10,) or (32, 32, 5); an int n
        stands for (n,)."""
        raise NotImplementedError

    def forward_backward(self, y_pred, y_true, logits, grad, loss, batch=None):
        """Fill ``loss`` (N,), each sample's mean loss over its positions, and ``grad`` (the
        shape of y_pred (N, ..., K)) = d mean(loss) / d y_pred. ``y_true`` is as check_targets
        returns it; ``logits`` says whether y_pred are pre-softmax scores. ``batch`` (default
        N): the samples the mean runs over, when y_pred is one process's share of a batch."""
        n, k = len(y_pred), y_pred.shape[-1]
        positions = y_pred.shape[1:-1]
        if y_true.shape[:y_pred.ndim - 1] != y_pred.shape[:-1]:
            raise ValueError(f"Expected y_true for y_pred of shape {y_pred.shape}, received shape "
                             f"{y_true.shape}")
        n_rows = n * math.prod(positions)
        # Views of the rows (the buffers are C-contiguous, so a reshape never copies them).
        grad = out_buffer(grad, y_pred.shape, y_pred.dtype, "grad").reshape(n_rows, k)
        loss = out_buffer(loss, (n,), y_pred.dtype, "loss")
        # One position per sample: the rows are the samples, and the kernel writes their losses.
        row_loss = loss if n_rows == n else np.empty(n_rows, y_pred.dtype)
        self._row_losses(y_pred.reshape(n_rows, k),
                         y_true.reshape(n_rows, *y_true.shape[y_pred.ndim - 1:]),
                         logits, grad, row_loss, (batch or n) * math.prod(positions))
        if n_rows != n:
            loss[...] = row_loss.reshape(n, -1).mean(axis=1, dtype=np.float64)

    def _row_losses(self, y_pred, y_true, logits, grad, loss, n_rows):
        """Fill ``loss`` (R,) and ``grad`` (R, K) = d sum(loss) / d y_pred / n_rows for the
        rows y_pred (R, K) and their targets, y_true (R, K) or labels (R,); n_rows counts the
        rows of the whole batch the mean runs over (R, or more for a process's share)."""
        raise NotImplementedError

    def __call__(self, y_true, y_pred):
        """The mean loss, as Keras's ``loss(y_true, y_pred)``."""
        y_pred = as_kernel_array(y_pred, "y_pred", dtype=np.float32)
        if y_pred.ndim < 2:
            raise ValueError(f"Expected y_pred of shape (samples, ..., outputs), received shape "
                             f"{y_pred.shape}")
        y_true = self.check_targets(y_true, y_pred.shape[1:])
        if len(y_true) != len(y_pred):
            raise ValueError(f"Expected y_true and y_pred of the same length, received "
                             f"{len(y_true)} and {len(y_pred)}")
        loss = np.empty(len(y_pred), np.float32)
        self.forward_backward(y_pred, y_true, self.from_logits, np.empty_like(y_pred), loss)
        return float(loss.mean(dtype=np.float64))

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class CategoricalCrossentropy(Loss):
    name = "categorical_crossentropy"

    def check_targets(self, y, output_shape):
        output_shape = _output_shape(output_shape)
        y = np.asarray(y)
        if y.shape[1:] != output_shape:
            raise ValueError(f"Expected one-hot targets y of shape {_shape_text(output_shape)} "
                             f"for {self.name}, received shape {y.shape}; use "
                             "sparse_categorical_crossentropy for integer labels")
        return as_kernel_array(y, "y", dtype=np.float32)

    def _row_losses(self, y_pred, y_true, logits, grad, loss, n_rows):
        if logits or self.from_logits:
            loss_ops.softmax_cross_entropy(y_pred, y_true, 1.0 / n_rows, grad=grad, loss=loss)
            return
        # Probabilities from a layer the loss cannot fuse with: Keras's clipped formula.
        p = y_pred / y_pred.sum(axis=1, keepdims=True)
        clipped = np.clip(p, EPSILON, 1 - EPSILON)
        loss[...] = -(y_true * np.log(clipped)).sum(axis=1)
        inside = (p > EPSILON) & (p < 1 - EPSILON)
        dp = np.where(inside, -y_true / clipped, 0) / n_rows
        # through the normalisation p = y / sum(y)
        s = y_pred.sum(axis=1, keepdims=True)
        grad[...] = (dp - (dp * p).sum(axis=1, keepdims=True)) / s


class SparseCategoricalCrossentropy(Loss):
    name = "sparse_categorical_crossentropy"

    def check_targets(self, y, output_shape):
        return _class_labels(y, _output_shape(output_shape), self.name)

    def _row_losses(self, y_pred, y_true, logits, grad, loss, n_rows):
        if logits or self.from_logits:
            loss_ops.sparse_softmax_cross_entropy(y_pred, y_true, 1.0 / n_rows, grad=grad,
                                                  loss=loss)
            return
        onehot = np.zeros(y_pred.shape, np.float32)
        onehot[np.arange(len(y_true)), y_true] = 1
        CategoricalCrossentropy._row_losses(self, y_pred, onehot, False, grad, loss, n_rows)


def _output_shape(output_shape):
    """One sample's output shape as a tuple of ints; an int n stands for (n,), a Dense output."""
    if isinstance(output_shape, numbers.Integral):
        output_shape = (output_shape,)
    output_shape = tuple(int(d) for d in output_shape)
    if not output_shape:
        raise ValueError("Expected output_shape with a last axis of outputs, received "
                         "output_shape=()")
    return output_shape


def _shape_text(sample_shape):
    """A batch shape for messages: (samples, 32, 32) or (samples,)."""
    return "(" + ", ".join(["samples", *map(str, sample_shape)]) + ("," * (not sample_shape)) + ")"


def _class_labels(y, output_shape, loss_name):
    """y as int64 class indices in [0, classes) of shape (samples, *positions), for outputs of
    shape (*positions, classes); labels with a trailing axis of 1 are accepted too."""
    positions, n_classes = output_shape[:-1], output_shape[-1]
    y = np.asarray(y)
    if y.shape[1:] == (*positions, 1):
        y = y[..., 0]
    if y.ndim != len(positions) + 1 or y.shape[1:] != positions:
        raise ValueError(f"Expected integer labels y of shape {_shape_text(positions)} or "
                         f"{_shape_text((*positions, 1))} for {loss_name}, received shape "
                         f"{y.shape}")
    if y.dtype.kind == "f":
        fractional = y[~np.isfinite(y) | (y != np.round(y))]
        if fractional.size:
            raise ValueError(f"Expected integer class labels in y, received {float(fractional[0])}")
    elif y.dtype.kind not in "iu":
        raise TypeError(f"Expected integer class labels in y, received dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"Expected labels in [0, {n_classes}), received values from "
                         f"{y.min()} to {y.max()} in y")
    return np.ascontiguousarray(y, dtype=np.int64)


def _targets_like_outputs(y, output_shape, loss_name):
    """y of the outputs' shape (samples, *output_shape) as float32. Where the last axis holds one
    unit, targets without it are accepted too: (samples,) for one output."""
    y = np.asarray(y)
    accepted = _shape_text(output_shape)
    if output_shape[-1] == 1:
        accepted += f" or {_shape_text(output_shape[:-1])}"
        if y.ndim == len(output_shape) and y.shape[1:] == output_shape[:-1]:
            y = y[..., None]
    if y.shape[1:] != output_shape:
        raise ValueError(f"Expected targets y of shape {accepted} for {loss_name}, received "
                         f"shape {y.shape}")
    return as_kernel_array(y, "y", dtype=np.float32)


class BinaryCrossentropy(Loss):
    """Keras's binary cross-entropy, averaged over the outputs of a position.

    On probabilities (a sigmoid output) it clips them to [1e-7, 1 - 1e-7] as Keras does; with
    ``from_logits=True`` it works from the scores in a form that cannot overflow. Targets are
    in [0, 1], of the outputs' shape (samples, ..., units), or without the last axis where it
    holds a single unit.
    """

    name = "binary_crossentropy"

    def check_targets(self, y, output_shape):
        return _targets_like_outputs(y, _output_shape(output_shape), self.name)

    def _row_losses(self, y_pred, y_true, logits, grad, loss, n_rows):
        loss_ops.binary_crossentropy(y_pred, y_true, 1.0 / n_rows,
                                     from_logits=logits or self.from_logits, grad=grad, loss=loss)


class _RawOutputLoss(Loss):
    """A loss of the outputs as they are, with no from_logits switch (as in Keras)."""

    def __init__(self, name=None):
        super().__init__(name=name)

    def check_targets(self, y, output_shape):
        return _targets_like_outputs(y, _output_shape(output_shape), self.name)

    def get_config(self):
        return {"name": self.name}


class MeanSquaredError(_RawOutputLoss):
    """Keras's mean squared error: the mean over the last axis, then over the positions and the
    batch."""

    name = "mean_squared_error"

    def _row_losses(self, y_pred, y_true, logits, grad, loss, n_rows):
        loss_ops.mean_squared_error(y_pred, y_true, 1.0 / n_rows, grad=grad, loss=loss)


class CategoricalHinge(_RawOutputLoss):
    """Keras's max(0, neg - pos + 1), pos = sum(t * p), neg = max((1 - t) * p) over the last
    axis; one-hot targets."""

    name = "categorical_hinge"

    def _row_losses(self, y_pred, y_true, logits, grad, loss, n_rows):
        loss_ops.categorical_hinge(y_pred, y_true, 1.0 / n_rows, grad=grad, loss=loss)


class MulticlassHinge(_RawOutputLoss):
    """The multiclass SVM loss sum_{j != y} max(0, s_j - s_y + 1) over the last axis, averaged
    over the positions and the batch.

    Targets are integer labels, (samples, ...) or (samples, ..., 1), or one-hot, (samples, ...,
    classes).
    """

    name = "multiclass_hinge"

    def check_targets(self, y, output_shape):
        output_shape = _output_shape(output_shape)
        y = np.asarray(y)
        if y.shape[1:] == output_shape and output_shape[-1] > 1:
            if not (np.isin(y, (0, 1)).all() and (y.sum(axis=-1) == 1).all()):
                raise ValueError(f"Expected one-hot rows or integer labels in y for {self.name}, "
                                 "received rows that are not one-hot")
            y = y.argmax(axis=-1)
        return _class_labels(y, output_shape, self.name)

    def _row_losses(self, y_pred, y_true, logits, grad, loss, n_rows):
        loss_ops.multiclass_hinge(y_pred, y_true, 1.0 / n_rows, grad=grad, loss=loss)


LOSSES = {cls.name: cls for cls in (CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                    BinaryCrossentropy, MeanSquaredError, CategoricalHinge,
                                    MulticlassHinge)}
LOSSES["mse"] = MeanSquaredError


def get(identifier):
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in LOSSES:
        return LOSSES[identifier]()
    raise ValueError(f"Unknown loss {identifier!r}; expected one of {sorted(LOSSES)} or a Loss")
