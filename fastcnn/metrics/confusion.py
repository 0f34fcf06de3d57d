"""Keras's metrics of the confusion counts at thresholds: Precision, Recall, AUC, the counts
themselves (TruePositives, FalsePositives, TrueNegatives, FalseNegatives), and the best of one
rate where another reaches a bound (SensitivityAtSpecificity, SpecificityAtSensitivity,
PrecisionAtRecall, RecallAtPrecision).

A prediction is positive at a threshold when it exceeds it. The counts are weighted: a target y
adds its weight times y to the positives and times 1 - y to the negatives (y is 0 or 1 for hard
labels). Sample weights of the predictions' leading axes apply to every prediction of a sample.
"""
import numbers

import numpy as np

from .._ops import metrics as metric_ops
from .._ops.checks import check_memory, positive_int
from ..arguments import one_of
from ..config import EPSILON
from .base import Metric, broadcast_weights, real_array, real_pair, same_rank


def _ratio(a, b):
    """a / b, 0 where b is 0 (Keras's divide_no_nan)."""
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def _unit_thresholds(thresholds, name):
    """A list of the thresholds (a number, or a list of them), each in [0, 1]."""
    values = np.asarray(thresholds)
    if values.ndim > 1 or values.dtype.kind not in "fiu":
        raise ValueError(f"Expected {name}: a number in [0, 1] or a list of them, received "
                         f"{name}={thresholds!r:.200}")
    values = values.reshape(-1)
    _check_thresholds_memory(values.size, name)
    if not ((values >= 0) & (values <= 1)).all():
        raise ValueError(f"Expected {name} in [0, 1], received {name}={thresholds!r:.200}")
    if not values.size:
        raise ValueError(f"Expected at least one threshold, received {name}={thresholds!r}")
    return values.astype(np.float64).tolist()


def _check_thresholds_memory(count, name):
    """Refuse more thresholds than memory holds: each keeps its value and four counts per
    label, and a Python float while the metric is built."""
    check_memory([(f"{count} thresholds", 8 * 8 * count)], name)


def _as_given(thresholds, values):
    """The thresholds argument for a config: None, a float, or a list of floats."""
    if thresholds is None:
        return None
    return values[0] if isinstance(thresholds, numbers.Real) else values


class _ThresholdCounts(Metric):
    """The weighted (tp, fp, tn, fn) at each threshold, per label with ``multi_label``."""

    def __init__(self, thresholds, name, dtype, top_k=None, class_id=None, multi_label=False):
        self._thresholds = np.asarray(thresholds, np.float64)
        self.top_k = None if top_k is None else positive_int(top_k, "top_k")
        if class_id is not None and (isinstance(class_id, bool)
                                     or not isinstance(class_id, numbers.Integral)
                                     or class_id < 0):
            raise ValueError(f"Expected class_id to be a non-negative int, received "
                             f"class_id={class_id!r:.200}")
        self.class_id = class_id
        self.multi_label = multi_label
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.true_positives = self.false_positives = None
        self.true_negatives = self.false_negatives = None

    def _scores(self, y_pred):
        return y_pred

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = same_rank(*real_pair(y_true, y_pred))
        if y_true.shape != y_pred.shape:
            raise ValueError(f"Expected y_true of y_pred's shape {y_pred.shape} for {self.name}, "
                             f"received shape {y_true.shape}")
        weight = broadcast_weights(sample_weight, y_pred.shape)
        y_pred = self._scores(np.asarray(y_pred, np.float64 if y_pred.dtype == np.float64
                                         else np.float32))
        if self.top_k is not None:
            y_pred = _keep_top_k(y_pred, self.top_k)
        if self.class_id is not None:
            if y_pred.ndim == 0 or self.class_id >= y_pred.shape[-1]:
                raise ValueError(f"Expected class_id below the {y_pred.shape[-1:]} classes of "
                                 f"y_pred's last axis, received class_id={self.class_id}")
            y_true, y_pred, weight = (a[..., self.class_id] for a in (y_true, y_pred, weight))
        labels = y_pred.shape[-1] if self.multi_label and y_pred.ndim else 1
        counts = metric_ops.threshold_confusion(*(a.reshape(-1, labels) for a in (
            y_pred, y_true.astype(y_pred.dtype), weight.astype(y_pred.dtype))), self._thresholds)
        if self.multi_label and self.true_positives is not None \
                and self.true_positives.shape[0] != labels:
            raise ValueError(f"Expected {self.true_positives.shape[0]} labels in y_pred's last "
                             f"axis, as before, received shape {y_pred.shape}")
        if self.true_positives is None:
            (self.true_positives, self.false_positives, self.true_negatives,
             self.false_negatives) = counts
        else:
            for state, c in zip((self.true_positives, self.false_positives,
                                 self.true_negatives, self.false_negatives), counts):
                state += c

    def _counts(self):
        """(tp, fp, tn, fn), each (labels, thresholds); zeros before any update."""
        if self.true_positives is None:
            zeros = np.zeros((1, len(self._thresholds)))
            return zeros, zeros, zeros, zeros
        return (self.true_positives, self.false_positives, self.true_negatives,
                self.false_negatives)


def _keep_top_k(y_pred, k):
    """y_pred with all but the k largest of each row (the last axis) set to -inf; of equal
    scores the first ones are kept."""
    order = np.argsort(-y_pred, axis=-1, kind="stable")
    kept = np.full(y_pred.shape, -np.inf, y_pred.dtype)
    top = order[..., :k]
    np.put_along_axis(kept, top, np.take_along_axis(y_pred, top, axis=-1), axis=-1)
    return kept


class _AtThresholds(_ThresholdCounts):
    """A value of the counts at each threshold (0.5 by default; with top_k, every kept score):
    a float for one threshold, else an array."""

    def __init__(self, thresholds, name, dtype, top_k=None, class_id=None):
        if thresholds is None:
            values = [-np.inf if top_k is not None else 0.5]
        else:
            values = _unit_thresholds(thresholds, "thresholds")
        self.init_thresholds = _as_given(thresholds, values)
        super().__init__(values, name, dtype, top_k=top_k, class_id=class_id)

    def result(self):
        value = self._value(*(c[0] for c in self._counts()))
        return float(value[0]) if len(value) == 1 else value

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class _PrecisionRecall(_AtThresholds):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, name, dtype, top_k=top_k, class_id=class_id)

    def get_config(self):
        return {**super().get_config(), "top_k": self.top_k, "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """tp / (tp + fp) at each threshold (0.5 by default): a float for one threshold, else an
    array. ``top_k`` counts only each row's k largest scores as predicted (ties to the first),
    ``class_id`` only that class's column."""

    @staticmethod
    def _value(tp, fp, tn, fn):
        return _ratio(tp, tp + fp)


class Recall(_PrecisionRecall):
    """tp / (tp + fn) at each threshold, with Precision's arguments."""

    @staticmethod
    def _value(tp, fp, tn, fn):
        return _ratio(tp, tp + fn)


class _Count(_AtThresholds):
    """One of the weighted counts at each threshold."""

    index = None  # of the count in (tp, fp, tn, fn)

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds, name, dtype)

    def _value(self, *counts):
        return counts[self.index]


class TruePositives(_Count):
    index = 0


class FalsePositives(_Count):
    index = 1


class TrueNegatives(_Count):
    index = 2


class FalseNegatives(_Count):
    index = 3


def _label_weights(label_weights):
    """AUC's label weights as a float64 vector of non-negative numbers."""
    weights = real_array(label_weights, "label_weights")
    if weights.ndim > 1:
        raise ValueError(f"Expected label_weights of rank 0 or 1, received shape {weights.shape}")
    weights = weights.astype(np.float64).reshape(-1)
    if not (np.isfinite(weights) & (weights >= 0)).all():
        raise ValueError(f"Expected non-negative finite label_weights, received {weights}")
    return weights


def _num_thresholds(num_thresholds, minimum):
    """``num_thresholds`` as an int of at least ``minimum`` that memory holds."""
    if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, numbers.Integral) \
            or num_thresholds < minimum:
        raise ValueError(f"Expected num_thresholds >= {minimum}, received "
                         f"num_thresholds={num_thresholds!r:.200}")
    _check_thresholds_memory(num_thresholds, "num_thresholds")
    return int(num_thresholds)


def _evenly_spaced(num_thresholds):
    """num_thresholds thresholds spaced evenly over [0, 1], the end ones moved out by 1e-7 so
    that scores of exactly 0 and 1 fall inside."""
    n = _num_thresholds(num_thresholds, 2)
    inner = np.arange(1, n - 1) / (n - 1)  # each (i + 1) / (n - 1), as Keras computes it
    return [-EPSILON, *inner.tolist(), 1 + EPSILON]


class _BestUnderBound(_ThresholdCounts):
    """The largest value of one rate over the thresholds at which another rate reaches
    ``bound``; 0 when none does. ``num_thresholds`` is as AUC's (1 means just 0.5)."""

    bound_name = None

    def __init__(self, bound, num_thresholds=200, class_id=None, name=None, dtype=None):
        if isinstance(bound, bool) or not isinstance(bound, numbers.Real) or not 0 <= bound <= 1:
            raise ValueError(f"Expected {self.bound_name} in [0, 1], received "
                             f"{self.bound_name}={bound!r:.200}")
        self.bound = float(bound)
        self.num_thresholds = _num_thresholds(num_thresholds, 1)
        thresholds = [0.5] if self.num_thresholds == 1 else _evenly_spaced(self.num_thresholds)
        super().__init__(thresholds, name, dtype, class_id=class_id)

    def result(self):
        bounded, best = self._rates(*(c[0] for c in self._counts()))
        feasible = bounded >= self.bound
        return float(best[feasible].max()) if feasible.any() else 0.0

    def get_config(self):
        return {**super().get_config(), self.bound_name: self.bound,
                "num_thresholds": self.num_thresholds, "class_id": self.class_id}


class SensitivityAtSpecificity(_BestUnderBound):
    """The best sensitivity (recall, tp / (tp + fn)) where specificity (tn / (tn + fp)) is at
    least ``specificity``."""

    bound_name = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    @staticmethod
    def _rates(tp, fp, tn, fn):
        return _ratio(tn, tn + fp), _ratio(tp, tp + fn)


class SpecificityAtSensitivity(_BestUnderBound):
    """The best specificity where sensitivity is at least ``sensitivity``."""

    bound_name = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    @staticmethod
    def _rates(tp, fp, tn, fn):
        return _ratio(tp, tp + fn), _ratio(tn, tn + fp)


class PrecisionAtRecall(_BestUnderBound):
    """The best precision where recall is at least ``recall``."""

    bound_name = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    @staticmethod
    def _rates(tp, fp, tn, fn):
        return _ratio(tp, tp + fn), _ratio(tp, tp + fp)


class RecallAtPrecision(_BestUnderBound):
    """The best recall where precision is at least ``precision``."""

    bound_name = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    @staticmethod
    def _rates(tp, fp, tn, fn):
        return _ratio(tp, tp + fp), _ratio(tp, tp + fn)


class AUC(_ThresholdCounts):
    """The area under the ROC or precision-recall curve, from the confusion counts at
    ``num_thresholds`` thresholds: evenly spaced over [0, 1], the end ones moved out by 1e-7
    so that scores of exactly 0 and 1 fall inside; or ``thresholds`` given, with those two ends
    added.

    The curve runs through the points of the thresholds; ``summation_method`` sums the strips
    between neighbours: "interpolation" (trapezoids for ROC; for PR, Davis and Goadrich's
    interpolation, in which precision varies along each strip as the true positives grow
    linearly with all the positives), "minoring" (the lower end's height) or "majoring" (the
    higher's). With ``multi_label`` each label (last axis) has its own curve and the result is
    their mean, weighted by ``label_weights`` when given; otherwise all predictions make one
    curve, each weighted by its label's weight. ``from_logits`` applies a sigmoid first.
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        one_of(curve, ("ROC", "PR"), "curve")
        one_of(summation_method, ("interpolation", "minoring", "majoring"), "summation_method")
        if thresholds is not None:
            inner = sorted(_unit_thresholds(thresholds, "thresholds"))
            num_thresholds = len(inner) + 2
        else:
            inner = _evenly_spaced(num_thresholds)[1:-1]
        self.num_thresholds, self.curve = int(num_thresholds), curve
        self.summation_method, self.from_logits = summation_method, bool(from_logits)
        self.init_thresholds = _as_given(thresholds, inner)
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else _label_weights(label_weights)
        super().__init__([-EPSILON, *inner, 1 + EPSILON], name or "auc", dtype,
                         multi_label=bool(multi_label))

    @property
    def thresholds(self):
        return self._thresholds.tolist()

    def _scores(self, y_pred):
        # the sigmoid, in a form that cannot overflow
        return 0.5 * (1 + np.tanh(y_pred / 2)) if self.from_logits else y_pred

    def update_state(self, y_true, y_pred, sample_weight=None):
        shape = np.shape(y_pred)
        if self.multi_label and len(shape) < 2:
            raise ValueError(f"Expected y_pred of shape (samples, labels) for a multi-label "
                             f"{self.name}, received shape {shape}")
        if self.label_weights is not None:
            if not shape or shape[-1] != len(self.label_weights):
                raise ValueError(f"Expected y_pred with {len(self.label_weights)} labels in its "
                                 f"last axis, one per label weight, received shape {shape}")
            if not self.multi_label:  # each prediction weighs its label's weight
                sample_weight = broadcast_weights(sample_weight, shape) * self.label_weights
        super().update_state(y_true, y_pred, sample_weight)

    def result(self):
        tp, fp, tn, fn = self._counts()
        if self.curve == "PR" and self.summation_method == "interpolation":
            per_label = self._interpolated_pr(tp, fp, fn)
        else:
            if self.curve == "ROC":
                x, y = _ratio(fp, fp + tn), _ratio(tp, tp + fn)
            else:
                x, y = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
            left, right = y[:, :-1], y[:, 1:]
            heights = {"interpolation": (left + right) / 2, "minoring": np.minimum(left, right),
                       "majoring": np.maximum(left, right)}[self.summation_method]
            per_label = ((x[:, :-1] - x[:, 1:]) * heights).sum(axis=1)
        if not self.multi_label:
            return float(per_label[0])
        if self.label_weights is None:
            return float(per_label.mean())
        return float(_ratio((per_label * self.label_weights).sum(), self.label_weights.sum()))

    @staticmethod
    def _interpolated_pr(tp, fp, fn):
        """Davis and Goadrich's area: between neighbouring thresholds the true positives grow
        linearly with the predicted positives p, so precision is slope + intercept / p along
        the strip, integrated over recall in closed form."""
        positives = tp + fp
        d_tp = tp[:, :-1] - tp[:, 1:]
        d_p = positives[:, :-1] - positives[:, 1:]
        slope = _ratio(d_tp, np.maximum(d_p, 0))
        intercept = tp[:, 1:] - slope * positives[:, 1:]
        both = (positives[:, :-1] > 0) & (positives[:, 1:] > 0)
        p_ratio = np.where(both, _ratio(positives[:, :-1], np.maximum(positives[:, 1:], 0)), 1)
        strips = _ratio(slope * (d_tp + intercept * np.log(p_ratio)),
                        np.maximum(tp[:, 1:] + fn[:, 1:], 0))
        return strips.sum(axis=1)

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "curve": self.curve, "summation_method": self.summation_method,
                "thresholds": self.init_thresholds, "multi_label": self.multi_label,
                "num_labels": self.num_labels,
                "label_weights": None if self.label_weights is None
                else self.label_weights.tolist(),
                "from_logits": self.from_logits}
