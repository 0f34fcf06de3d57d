"""Margin losses: Keras's categorical hinge, and the multiclass SVM loss."""
import numpy as np

from .._ops import loss as loss_ops
from .base import RawOutputLoss, class_labels, output_shape_tuple


class CategoricalHinge(RawOutputLoss):
    """Keras's max(0, neg - pos + 1), pos = sum(t * p), neg = max((1 - t) * p) over the last
    axis; one-hot targets."""

    name = "categorical_hinge"

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.categorical_hinge(y_pred, y_true, grad_scale, grad=grad, loss=loss)


class MulticlassHinge(RawOutputLoss):
    """The multiclass SVM loss sum_{j != y} max(0, s_j - s_y + 1) over the last axis, averaged
    over the positions and the batch.

    Targets are integer labels, (samples, ...) or (samples, ..., 1), or one-hot, (samples, ...,
    classes).
    """

    name = "multiclass_hinge"

    def check_targets(self, y, output_shape):
        output_shape = output_shape_tuple(output_shape)
        y = np.asarray(y)
        if y.shape[1:] == output_shape and output_shape[-1] > 1:
            if not (np.isin(y, (0, 1)).all() and (y.sum(axis=-1) == 1).all()):
                raise ValueError(f"Expected one-hot rows or integer labels in y for {self.name}, "
                                 "received rows that are not one-hot")
            y = y.argmax(axis=-1)
        return class_labels(y, output_shape, self.name)

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.multiclass_hinge(y_pred, y_true, grad_scale, grad=grad, loss=loss)
