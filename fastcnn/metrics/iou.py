"""Keras's MeanIoU: the mean over classes of intersection over union, from a weighted confusion
matrix accumulated over the batches."""
import numbers

import numpy as np

from .._ops import metrics as metric_ops
from .._ops.checks import positive_int
from .base import Metric, broadcast_weights, real_array

EPSILON = 1e-7  # Keras's backend epsilon, in the ratios' denominators


class MeanIoU(Metric):
    """For each class c, IoU = tp / (tp + fp + fn) from the weighted confusion matrix (rows the
    targets, columns the predictions); the result is the sum of the classes' IoU over the
    number of classes that occur at all (in targets or predictions), each denominator raised by
    1e-7 as in Keras.

    Targets and predictions are class indices of one shape, or with ``sparse_y_true`` /
    ``sparse_y_pred`` False, scores whose largest along ``axis`` is the class. Positions whose
    target is ``ignore_class`` are left out. Sample weights cover a sample's positions.
    """

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        self.num_classes = positive_int(num_classes, "num_classes")
        if ignore_class is not None and (isinstance(ignore_class, bool)
                                         or not isinstance(ignore_class, numbers.Integral)):
            raise ValueError(f"Expected ignore_class to be an int or None, received "
                             f"ignore_class={ignore_class!r:.200}")
        self.ignore_class = ignore_class
        self.sparse_y_true, self.sparse_y_pred = bool(sparse_y_true), bool(sparse_y_pred)
        self.axis = axis
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.total_cm = np.zeros((self.num_classes, self.num_classes))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = real_array(y_true, "y_true"), real_array(y_pred, "y_pred")
        if not self.sparse_y_true:
            y_true = y_true.argmax(axis=self.axis)
        if not self.sparse_y_pred:
            y_pred = y_pred.argmax(axis=self.axis)
        if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1:] == (1,):
            y_true = y_true[..., 0]
        if y_true.shape != y_pred.shape:
            raise ValueError(f"Expected y_true and y_pred of one shape for {self.name}, received "
                             f"{y_true.shape} and {y_pred.shape}")
        weight = broadcast_weights(sample_weight, y_true.shape).reshape(-1)
        y_true, y_pred = y_true.reshape(-1), y_pred.reshape(-1)
        if self.ignore_class is not None:
            kept = y_true != self.ignore_class
            y_true, y_pred, weight = y_true[kept], y_pred[kept], weight[kept]
        self.total_cm += metric_ops.confusion_matrix(y_true, y_pred, weight.astype(np.float64),
                                                     self.num_classes)

    def result(self):
        true_positives = np.diag(self.total_cm)
        union = self.total_cm.sum(axis=0) + self.total_cm.sum(axis=1) - true_positives
        present = np.count_nonzero(union > 1e-9)
        return float((true_positives / (union + EPSILON)).sum() / (present + EPSILON))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}
