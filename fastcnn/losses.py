"""Losses. Each gives per-sample losses and the gradient of the batch mean in one call.

Cross-entropy after a softmax layer is computed from that layer's logits by the fused kernel
(the model arranges this), which is both faster and stable where log(softmax) would underflow.
"""
import numpy as np

from ._ops import loss as loss_ops
from ._ops.checks import as_kernel_array

EPSILON = 1e-7  # Keras's clip for probabilities given to cross-entropy


class Loss:
    name = None

    def __init__(self, from_logits=False, name=None):
        self.from_logits = bool(from_logits)
        if name is not None:
            self.name = name

    def check_targets(self, y, n_outputs):
        """y as the array the loss consumes, or a ValueError naming the expected shape."""
        raise NotImplementedError

    def forward_backward(self, y_pred, y_true, logits, grad, loss):
        """Fill ``loss`` (N,) and ``grad`` = d mean(loss) / d y_pred; ``logits`` says whether
        y_pred are pre-softmax scores."""
        raise NotImplementedError

    def __call__(self, y_true, y_pred):
        """The mean loss, as Keras's ``loss(y_true, y_pred)``."""
        y_pred = as_kernel_array(y_pred, "y_pred", 2, np.float32)
        y_true = self.check_targets(y_true, y_pred.shape[1])
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

    def check_targets(self, y, n_outputs):
        y = np.asarray(y)
        if y.ndim != 2 or y.shape[1] != n_outputs:
            raise ValueError(f"Expected one-hot targets y of shape (samples, {n_outputs}) for "
                             f"{self.name}, received shape {y.shape}; use "
                             "sparse_categorical_crossentropy for integer labels")
        return as_kernel_array(y, "y", 2, np.float32)

    def forward_backward(self, y_pred, y_true, logits, grad, loss):
        if logits or self.from_logits:
            loss_ops.softmax_cross_entropy(y_pred, y_true, 1.0 / len(y_pred), grad=grad, loss=loss)
            return
        # Probabilities from a layer the loss cannot fuse with: Keras's clipped formula.
        p = y_pred / y_pred.sum(axis=1, keepdims=True)
        clipped = np.clip(p, EPSILON, 1 - EPSILON)
        loss[...] = -(y_true * np.log(clipped)).sum(axis=1)
        inside = (p > EPSILON) & (p < 1 - EPSILON)
        dp = np.where(inside, -y_true / clipped, 0) / len(y_pred)
        # through the normalisation p = y / sum(y)
        s = y_pred.sum(axis=1, keepdims=True)
        grad[...] = (dp - (dp * p).sum(axis=1, keepdims=True)) / s


class SparseCategoricalCrossentropy(Loss):
    name = "sparse_categorical_crossentropy"

    def check_targets(self, y, n_outputs):
        return _class_labels(y, n_outputs, self.name)

    def forward_backward(self, y_pred, y_true, logits, grad, loss):
        if logits or self.from_logits:
            loss_ops.sparse_softmax_cross_entropy(y_pred, y_true, 1.0 / len(y_pred), grad=grad, loss=loss)
            return
        onehot = np.zeros(y_pred.shape, np.float32)
        onehot[np.arange(len(y_true)), y_true] = 1
        CategoricalCrossentropy.forward_backward(self, y_pred, onehot, False, grad, loss)


def _class_labels(y, n_outputs, loss_name):
    """y as int64 class indices in [0, n_outputs), from (samples,) or (samples, 1)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"Expected integer labels y of shape (samples,) or (samples, 1) for "
                         f"{loss_name}, received shape {y.shape}")
    if y.dtype.kind == "f":
        fractional = y[~np.isfinite(y) | (y != np.round(y))]
        if fractional.size:
            raise ValueError(f"Expected integer class labels in y, received {float(fractional[0])}")
    elif y.dtype.kind not in "iu":
        raise TypeError(f"Expected integer class labels in y, received dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_outputs):
        raise ValueError(f"Expected labels in [0, {n_outputs}), received values from "
                         f"{y.min()} to {y.max()} in y")
    return np.ascontiguousarray(y, dtype=np.int64)


def _targets_like_outputs(y, n_outputs, loss_name):
    """y of shape (samples, n_outputs) as float32; (samples,) is accepted for one output."""
    y = np.asarray(y)
    if y.ndim == 1 and n_outputs == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(f"Expected targets y of shape (samples, {n_outputs}) for {loss_name}, "
                         f"received shape {y.shape}")
    return as_kernel_array(y, "y", 2, np.float32)


class BinaryCrossentropy(Loss):
    """Keras's binary cross-entropy, averaged over the outputs of a sample.

    On probabilities (a sigmoid output) it clips them to [1e-7, 1 - 1e-7] as Keras does; with
    ``from_logits=True`` it works from the scores in a form that cannot overflow. Targets are
    in [0, 1], of shape (samples, units), or (samples,) for a single unit.
    """

    name = "binary_crossentropy"

    def check_targets(self, y, n_outputs):
        return _targets_like_outputs(y, n_outputs, self.name)

    def forward_backward(self, y_pred, y_true, logits, grad, loss):
        loss_ops.binary_crossentropy(y_pred, y_true, 1.0 / len(y_pred),
                                     from_logits=logits or self.from_logits, grad=grad, loss=loss)


class _RawOutputLoss(Loss):
    """A loss of the outputs as they are, with no from_logits switch (as in Keras)."""

    def __init__(self, name=None):
        super().__init__(name=name)

    def check_targets(self, y, n_outputs):
        return _targets_like_outputs(y, n_outputs, self.name)

    def get_config(self):
        return {"name": self.name}


class MeanSquaredError(_RawOutputLoss):
    """Keras's mean squared error: the mean over the outputs of a sample, then over the batch."""

    name = "mean_squared_error"

    def forward_backward(self, y_pred, y_true, logits, grad, loss):
        loss_ops.mean_squared_error(y_pred, y_true, 1.0 / len(y_pred), grad=grad, loss=loss)


class CategoricalHinge(_RawOutputLoss):
    """Keras's max(0, neg - pos + 1), pos = sum(t * p), neg = max((1 - t) * p); one-hot targets."""

    name = "categorical_hinge"

    def forward_backward(self, y_pred, y_true, logits, grad, loss):
        loss_ops.categorical_hinge(y_pred, y_true, 1.0 / len(y_pred), grad=grad, loss=loss)


class MulticlassHinge(_RawOutputLoss):
    """The multiclass SVM loss sum_{j != y} max(0, s_j - s_y + 1), averaged over the batch.

    Targets are integer labels, (samples,) or (samples, 1), or one-hot rows (samples, classes).
    """

    name = "multiclass_hinge"

    def check_targets(self, y, n_outputs):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == n_outputs > 1:
            if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
                raise ValueError(f"Expected one-hot rows or integer labels in y for {self.name}, "
                                 "received rows that are not one-hot")
            y = y.argmax(axis=1)
        return _class_labels(y, n_outputs, self.name)

    def forward_backward(self, y_pred, y_true, logits, grad, loss):
        loss_ops.multiclass_hinge(y_pred, y_true, 1.0 / len(y_pred), grad=grad, loss=loss)


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
