"""Keras's Dice loss, 1 - 2 sum(t p) / (sum(t) + sum(p) + 1e-7), over the whole batch or per
sample."""
import numbers

import numpy as np

from .._ops import loss as loss_ops
from .base import RawOutputLoss, _sample_weights


class Dice(RawOutputLoss):
    """Keras's Dice loss. With ``axis=None`` (Keras's default) the sums run over the whole
    batch, which gives one loss for the batch; with ``axis`` naming every axis but the batch
    axis, such as (1, 2, 3) for images, each sample has its loss and the reduction averages
    them. (Other axes, which would leave several losses per sample, are refused.)"""

    name = "dice"

    def __init__(self, reduction="sum_over_batch_size", name=None, axis=None, dtype=None):
        super().__init__(name, reduction, dtype)
        if axis is not None:
            axes = (axis,) if isinstance(axis, numbers.Integral) else axis
            if not isinstance(axes, (tuple, list)) or not axes or not all(
                    isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes):
                raise ValueError(f"Expected axis to be None or a tuple of ints, received "
                                 f"axis={axis!r:.200}")
            axis = tuple(int(a) for a in axes)
        self.axis = axis

    def _per_sample(self, ndim):
        if self.axis is None:
            return False
        if sorted(a % ndim if -ndim <= a < ndim else -1 for a in self.axis) != \
                list(range(1, ndim)):
            raise ValueError(f"Expected axis=None or all the axes but the batch axis "
                             f"{tuple(range(1, ndim))} for dice of outputs of rank {ndim}, "
                             f"received axis={self.axis}")
        return True

    def _weighted_values(self, y_pred, y_true, logits, grad, sample_weight, batch=None):
        n = len(y_pred)
        if self._per_sample(y_pred.ndim):  # one row per sample, reduced as any loss
            return super()._weighted_values(y_pred.reshape(n, -1), y_true.reshape(n, -1),
                                            logits, grad.reshape(n, -1), sample_weight, batch)
        if batch is not None:
            raise self._share_error("axis=None (one Dice loss over the whole batch)")
        # One loss L for the batch: the weights scale it (L w per sample), and the reduction
        # sums or averages those, or leaves L alone without weights.
        weights = _sample_weights(sample_weight, n, ())
        if weights is None:
            factor, divisor = 1.0, 1.0
        else:
            divisor = self._divisor(weights, n)
            factor = float(weights.sum(dtype=np.float64)) / divisor if divisor else 0.0
        loss = np.empty(1, y_pred.dtype)
        loss_ops.dice(y_pred.reshape(1, -1), y_true.reshape(1, -1), factor,
                      grad=grad.reshape(1, -1), loss=loss)
        values = loss[0] if weights is None else loss[0] * weights
        return np.asarray(values, y_pred.dtype), divisor

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.dice(y_pred, y_true, grad_scale, grad=grad, loss=loss)

    def get_config(self):
        return {**super().get_config(),
                "axis": None if self.axis is None else list(self.axis)}
