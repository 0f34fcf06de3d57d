"""The Loss base class: targets checked once per fit, and per batch one pass that gives each
sample's share of the batch loss and the gradient of the batch loss, with Keras's ``reduction``
and ``sample_weight``.

Outputs may have any rank >= 2, (samples, ..., outputs), as in Keras: each position (a pixel of
an image output) has its loss over the last axis. The kernels see the output as rows
(samples * positions, outputs).
"""
import math
import numbers

import numpy as np

from .._ops.checks import as_kernel_array, check_array, out_buffer
from ..serialization import Configurable

# Keras's reductions of the weighted per-position losses: "sum_over_batch_size" and "mean" divide
# the sum by the number of positions, "mean_with_sample_weight" by the sum of the weights, "sum"
# and "none" (None) keep the sum (fit trains on the sum of an unreduced loss, as Keras's does).
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
DTYPES = (None, "float32", "float64")


class Loss(Configurable):
    """Base class of the losses, with Keras's ``name``, ``reduction`` and ``dtype``.

    ``loss(y_true, y_pred, sample_weight=None)`` gives the reduced loss, a float (an array of
    one loss per position under ``reduction="none"``). ``sample_weight`` holds one weight per
    sample (samples,), or per position (samples, ...) for outputs of higher rank.

    **A custom loss** subclasses Loss and defines, on NumPy arrays, ``call(y_true, y_pred)``:
    the loss of each position, of shape y_pred.shape[:-1] (one value per sample for outputs
    (samples, outputs)), and ``gradient(y_true, y_pred)``: the derivative of the sum of
    ``call``'s values with respect to y_pred, of y_pred's shape. fit, evaluate and standalone
    calls then apply the reduction and the sample weights as for the built-in losses::

        class QuarticError(losses.Loss):
            def call(self, y_true, y_pred):
                return np.mean((y_pred - y_true) ** 4, axis=-1)

            def gradient(self, y_true, y_pred):
                return 4 * (y_pred - y_true) ** 3 / y_pred.shape[-1]

        model.compile("adam", loss=QuarticError())

    Targets reach ``call`` as arrays of the loss's dtype (float32 by default), samples first; a subclass may override
    ``check_targets(y, output_shape)`` to accept others. Its constructor passes ``name``,
    ``reduction`` and ``dtype`` on to ``Loss.__init__``, and ``get_config`` returns its own
    arguments too if it is to be saved.
    """

    name = None
    from_logits = False  # what the accuracy metric reads: built-in losses of logits set it

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Expected name to be a string, received name={name!r:.200}")
        self.name = name or self.name or type(self).__name__
        if not isinstance(reduction, (str, type(None))) or reduction not in REDUCTIONS:
            raise ValueError(f"Expected reduction to be one of {REDUCTIONS}, received "
                             f"reduction={reduction!r:.200}")
        self.reduction = reduction
        if dtype is not None and np.dtype(dtype).name not in DTYPES:
            raise ValueError(f"Expected dtype to be one of {DTYPES}, received dtype={dtype!r}")
        self.dtype = None if dtype is None else np.dtype(dtype).name

    # -- what subclasses define ------------------------------------------------------------
    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} defines no call(y_true, y_pred)")

    def gradient(self, y_true, y_pred):
        raise NotImplementedError(
            f"{type(self).__name__} defines call but not gradient(y_true, y_pred): a custom Loss "
            "gives the derivative of the sum of call's values with respect to y_pred (see the "
            "Loss docstring)")

    def check_targets(self, y, output_shape):
        """y as the array the loss consumes, or a ValueError naming the expected shape.
        ``output_shape`` is one sample's output shape, such as (10,) or (32, 32, 5); an int n
        stands for (n,)."""
        y = check_array(y, "y")
        if y.ndim == 0:
            raise ValueError(f"Expected targets y with a batch axis, received shape {y.shape}")
        return as_kernel_array(y, "y", dtype=self.target_dtype)

    @property
    def target_dtype(self):
        """The dtype the targets are read in: the loss's own dtype, float32 by default."""
        return np.dtype(self.dtype or np.float32)

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        """Fill ``loss`` (R,) and ``grad`` (R, K) = grad_scale * d sum(loss) / d y_pred for the
        rows y_pred (R, K) and their targets (R, ...)."""
        raise NotImplementedError

    def _custom(self):
        return type(self).call is not Loss.call

    # -- one batch -------------------------------------------------------------------------
    def forward_backward(self, y_pred, y_true, logits, grad, loss, sample_weight=None,
                         batch=None):
        """Fill ``loss`` (N,), each sample's share of the batch loss (their mean is the batch
        loss that ``reduction`` defines), and ``grad`` (y_pred's shape) = d batch loss /
        d y_pred. ``y_true`` is as check_targets returns it; ``logits`` says whether y_pred are
        pre-softmax scores; ``sample_weight`` is None or as in ``__call__``. ``batch`` (None:
        N) is the size of the batch whose samples y_pred are, when they are one process's
        share of it (fastcnn.distributed): the batch loss is that whole batch's."""
        n = len(y_pred)
        grad = out_buffer(grad, y_pred.shape, y_pred.dtype, "grad")
        loss = out_buffer(loss, (n,), y_pred.dtype, "loss")
        values, divisor = self._weighted_values(y_pred, y_true, logits, grad, sample_weight,
                                                batch)
        if values.ndim == 0:  # one loss for the whole batch
            loss[...] = float(values) / divisor
            return
        per_sample, whole = values.reshape(n, -1), batch or n
        if per_sample.shape[1] == 1 and divisor == whole:
            loss[...] = per_sample[:, 0]
        else:
            # sum / (divisor / whole): the mean over the positions when the divisor counts
            # them all
            totals = per_sample.sum(axis=1, dtype=np.float64)
            loss[...] = totals / (divisor / whole) if divisor else 0

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss as Keras's ``loss(y_true, y_pred, sample_weight)`` gives it."""
        y_pred = as_kernel_array(y_pred, "y_pred", dtype=self.dtype or np.float32)
        one_sample = y_pred.ndim == 1  # Keras's losses take one sample's outputs (K,) too
        if one_sample:
            y_pred, y_true = y_pred[None], np.asarray(y_true)[None]
        y_true = self.check_targets(y_true, y_pred.shape[1:])
        if len(y_true) != len(y_pred):
            raise ValueError(f"Expected y_true and y_pred of the same length, received "
                             f"{len(y_true)} and {len(y_pred)}")
        values, divisor = self._weighted_values(y_pred, y_true, self.from_logits,
                                                np.empty_like(y_pred), sample_weight)
        if self.reduction in ("none", None):
            return values[0] if one_sample and values.ndim else values
        total = float(values.sum(dtype=np.float64))
        return total / divisor if divisor else 0.0

    def _weighted_values(self, y_pred, y_true, logits, grad, sample_weight, batch=None):
        """(the weighted loss of each position, (N, *positions); the divisor of their sum that
        the reduction makes the batch loss), with ``grad`` filled with d batch loss / d y_pred.
        ``batch`` as in forward_backward."""
        n, positions = len(y_pred), y_pred.shape[1:-1]
        weights = _sample_weights(sample_weight, n, positions)
        n_values = n * math.prod(positions)
        mask = self._mask(y_true)
        if batch is not None and (mask is not None or (
                weights is not None and self.reduction == "mean_with_sample_weight")):
            raise self._share_error("ignore_class" if mask is not None
                                    else 'reduction="mean_with_sample_weight" and sample weights')
        if mask is None:
            divisor = self._divisor(weights, (batch or n) * math.prod(positions))
        else:  # as Keras: masked positions weigh 0, and a mean is over the others
            weights = mask if weights is None else weights * mask
            divisor = self._divisor(weights, int(np.count_nonzero(mask)))
        scale = 1 / divisor if divisor else 0.0
        if self._custom():
            values = self._custom_values(y_pred, y_true, grad, scale)
        else:
            if y_true.shape[:y_pred.ndim - 1] != y_pred.shape[:-1]:
                raise ValueError(f"Expected y_true for y_pred of shape {y_pred.shape}, received "
                                 f"shape {y_true.shape}")
            k = y_pred.shape[-1]
            values = np.empty(n_values, y_pred.dtype)
            # Views of the rows (the buffers are C-contiguous, so a reshape never copies them).
            self._row_losses(y_pred.reshape(n_values, k),
                             y_true.reshape(n_values, *y_true.shape[y_pred.ndim - 1:]),
                             logits, grad.reshape(n_values, k), values, scale)
        values = values.reshape(n, *positions)
        if weights is not None:  # cast once (values and grad share y_pred's dtype)
            weights = weights.astype(values.dtype, copy=False)
            values *= weights
            grad *= weights[..., None]
        return values, divisor

    def _mask(self, y_true):
        """None, or which positions (N, *positions) count: the loss ignores the others."""
        return None

    def _share_error(self, what):
        """The error of a distributed fit (a process's share of each batch) with a loss whose
        divisor would need every process's samples."""
        return ValueError(f"Expected a loss that divides by the batch's size or not at all in "
                          f"a distributed fit, received {self.name} with {what}: its divisor "
                          f"depends on the samples of every process")

    def _divisor(self, weights, n_values):
        if self.reduction in ("sum", "none", None):
            return 1.0
        if self.reduction == "mean_with_sample_weight" and weights is not None:
            return float(weights.sum(dtype=np.float64))
        return float(n_values)

    def _custom_values(self, y_pred, y_true, grad, scale):
        values = np.asarray(self.call(y_true, y_pred), dtype=y_pred.dtype)
        if values.shape != y_pred.shape[:-1]:
            raise ValueError(f"Expected {type(self).__name__}.call to return one loss per "
                             f"position, of shape {y_pred.shape[:-1]}, received shape "
                             f"{values.shape}")
        g = np.asarray(self.gradient(y_true, y_pred))
        if g.shape != y_pred.shape:
            raise ValueError(f"Expected {type(self).__name__}.gradient to return y_pred's shape "
                             f"{y_pred.shape}, received shape {g.shape}")
        np.multiply(g, scale, out=grad, casting="unsafe")
        return values.reshape(-1)

    # -- config ----------------------------------------------------------------------------
    def get_config(self):
        config = {"name": self.name, "reduction": self.reduction}
        if self.dtype is not None:
            config["dtype"] = self.dtype
        return config


def _sample_weights(sample_weight, n, positions):
    """None, or the weights broadcast to (n, *positions) as float64: one per sample (n,), one
    per position (n, *positions), either with a trailing axis of 1, or one number for all."""
    if sample_weight is None:
        return None
    w = check_array(sample_weight, "sample_weight")
    if w.dtype.kind not in "iuf" or not np.all(np.isfinite(w)):
        raise ValueError("Expected sample_weight of finite numbers")
    w = w.astype(np.float64, copy=False)
    if w.ndim and w.shape[-1] == 1 and w.shape[:-1] in ((n,), (n, *positions)):
        w = w[..., 0]
    if w.shape == (n,):
        w = w.reshape(n, *(1,) * len(positions))
    elif w.ndim and w.shape != (n, *positions):
        raise ValueError(f"Expected sample_weight of shape ({n},) or {(n, *positions)}, "
                         f"received shape {w.shape}")
    return np.broadcast_to(w, (n, *positions))


def output_shape_tuple(output_shape):
    """One sample's output shape as a tuple of ints; an int n stands for (n,), a Dense output."""
    if isinstance(output_shape, numbers.Integral):
        output_shape = (output_shape,)
    output_shape = tuple(int(d) for d in output_shape)
    if not output_shape:
        raise ValueError("Expected output_shape with a last axis of outputs, received "
                         "output_shape=()")
    return output_shape


def shape_text(sample_shape):
    """A batch shape for messages: (samples, 32, 32) or (samples,)."""
    return "(" + ", ".join(["samples", *map(str, sample_shape)]) + ("," * (not sample_shape)) + ")"


def class_labels(y, output_shape, loss_name, ignore_class=None):
    """y as int64 class indices in [0, classes) (or ``ignore_class``) of shape (samples,
    *positions), for outputs of shape (*positions, classes); labels with a trailing axis of 1
    are accepted too."""
    positions, n_classes = output_shape[:-1], output_shape[-1]
    y = np.asarray(y)
    if y.shape[1:] == (*positions, 1):
        y = y[..., 0]
    if y.ndim != len(positions) + 1 or y.shape[1:] != positions:
        raise ValueError(f"Expected integer labels y of shape {shape_text(positions)} or "
                         f"{shape_text((*positions, 1))} for {loss_name}, received shape "
                         f"{y.shape}")
    if y.dtype.kind == "f":
        fractional = y[~np.isfinite(y) | (y != np.round(y))]
        if fractional.size:
            raise ValueError(f"Expected integer class labels in y, received {float(fractional[0])}")
    elif y.dtype.kind not in "iu":
        raise TypeError(f"Expected integer class labels in y, received dtype {y.dtype}")
    counted = y if ignore_class is None else y[y != ignore_class]
    if counted.size and (counted.min() < 0 or counted.max() >= n_classes):
        also = "" if ignore_class is None else f" (or ignore_class={ignore_class})"
        raise ValueError(f"Expected labels in [0, {n_classes}){also}, received values from "
                         f"{counted.min()} to {counted.max()} in y")
    return np.ascontiguousarray(y, dtype=np.int64)


def targets_like_outputs(y, output_shape, loss_name, dtype=np.float32):
    """y of the outputs' shape (samples, *output_shape) in ``dtype``. Where the last axis holds one
    unit, targets without it are accepted too: (samples,) for one output."""
    y = np.asarray(y)
    accepted = shape_text(output_shape)
    if output_shape[-1] == 1:
        accepted += f" or {shape_text(output_shape[:-1])}"
        if y.ndim == len(output_shape) and y.shape[1:] == output_shape[:-1]:
            y = y[..., None]
    if y.shape[1:] != output_shape:
        raise ValueError(f"Expected targets y of shape {accepted} for {loss_name}, received "
                         f"shape {y.shape}")
    return as_kernel_array(y, "y", dtype=dtype)


def check_axis_last(axis, loss_name):
    """Keras's ``axis`` of the cross-entropies: the classes' axis, which is the last here."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or axis != -1:
        raise ValueError(f"Expected axis=-1 for {loss_name} (the outputs' last axis holds the "
                         f"classes), received axis={axis!r}")
    return -1


def check_label_smoothing(label_smoothing):
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
            or not 0 <= label_smoothing <= 1:
        raise ValueError(f"Expected label_smoothing in [0, 1], received "
                         f"label_smoothing={label_smoothing!r}")
    return float(label_smoothing)


class RawOutputLoss(Loss):
    """A loss of the outputs as they are, with targets of the outputs' shape and no from_logits
    switch (as in Keras)."""

    def check_targets(self, y, output_shape):
        return targets_like_outputs(y, output_shape_tuple(output_shape), self.name,
                                    self.target_dtype)
