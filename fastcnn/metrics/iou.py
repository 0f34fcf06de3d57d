"""Keras's intersection-over-union metrics, from a weighted confusion matrix accumulated over
the batches: IoU over chosen classes, MeanIoU over all, BinaryIoU of thresholded scores, and
their one-hot forms."""
import numbers

import numpy as np

from .._ops import metrics as metric_ops
from .._ops.checks import check_memory, positive_int
from ..arguments import axis_index, finite_float
from ..config import EPSILON
from .base import Metric, broadcast_weights, real_array, real_pair


def _num_classes(num_classes):
    """``num_classes`` as a positive int whose confusion matrix memory holds."""
    num_classes = positive_int(num_classes, "num_classes")
    check_memory([(f"a {num_classes} x {num_classes} confusion matrix",
                   8 * num_classes * num_classes)], "num_classes")
    return num_classes


class IoU(Metric):
    """For each class c of ``target_class_ids``, IoU = tp / (tp + fp + fn) from the weighted
    confusion matrix (rows the targets, columns the predictions); the result is the sum of
    those IoU over the number of them whose class occurs at all (in targets or predictions),
    each denominator raised by 1e-7 as in Keras.

    Targets and predictions are class indices of one shape, or with ``sparse_y_true`` /
    ``sparse_y_pred`` False, scores whose largest along ``axis`` is the class. Positions whose
    target is ``ignore_class`` are left out. Sample weights cover a sample's positions.
    """

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        self.num_classes = _num_classes(num_classes)
        ids = np.asarray(target_class_ids)
        if ids.ndim > 1 or ids.dtype.kind not in "iu" or not ids.size \
                or not ((ids >= 0) & (ids < self.num_classes)).all():
            raise ValueError(f"Expected target_class_ids: an int in [0, {self.num_classes}) or a "
                             f"list of them, received target_class_ids={target_class_ids!r:.200}")
        self.target_class_ids = ids.reshape(-1).tolist()
        if ignore_class is not None and (isinstance(ignore_class, bool)
                                         or not isinstance(ignore_class, numbers.Integral)):
            raise ValueError(f"Expected ignore_class to be an int or None, received "
                             f"ignore_class={ignore_class!r:.200}")
        self.ignore_class = ignore_class
        self.sparse_y_true, self.sparse_y_pred = bool(sparse_y_true), bool(sparse_y_pred)
        self.axis = axis_index(axis)
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.total_cm = np.zeros((self.num_classes, self.num_classes))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = real_pair(y_true, y_pred)
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
        true_positives, union = true_positives[self.target_class_ids], union[self.target_class_ids]
        present = np.count_nonzero(union > 1e-9)
        return float((true_positives / (union + EPSILON)).sum() / (present + EPSILON))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


class MeanIoU(IoU):
    """IoU averaged over all ``num_classes`` classes (those that occur)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, list(range(_num_classes(num_classes))),
                         name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        config = super().get_config()
        del config["target_class_ids"]
        return config


class BinaryIoU(IoU):
    """IoU of binary targets (0 or 1) and scores thresholded at ``threshold`` (above it: 1),
    over the classes ``target_class_ids`` (0, 1 or both)."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        if finite_float(threshold) is None:
            raise ValueError(f"Expected threshold to be a finite number, received "
                             f"threshold={threshold!r:.200}")
        self.threshold = float(threshold)
        super().__init__(2, target_class_ids, name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(y_true, real_array(y_pred, "y_pred") > self.threshold,
                             sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype,
                "target_class_ids": self.target_class_ids, "threshold": self.threshold}


class OneHotIoU(IoU):
    """IoU of one-hot targets and scores (the largest along ``axis`` is the class)."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, target_class_ids, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        config = super().get_config()
        del config["sparse_y_true"]
        return config


class OneHotMeanIoU(MeanIoU):
    """MeanIoU of one-hot targets and scores (the largest along ``axis`` is the class)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        config = super().get_config()
        del config["sparse_y_true"]
        return config
