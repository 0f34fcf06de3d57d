"""Keras's F-beta and F1 scores, per class or averaged, from weighted per-class counts.

Predictions (samples, classes) become 0/1: above ``threshold`` when one is given, else 1 only
where a row has its largest value (every tied maximum). Targets are one-hot or multi-hot.
"""
import numbers

import numpy as np

from ..arguments import finite_float, one_of
from ..config import EPSILON
from .base import Metric, real_array, real_pair

AVERAGES = (None, "micro", "macro", "weighted")


class FBetaScore(Metric):
    """(1 + beta^2) P R / (beta^2 P + R) per class, from the weighted true positives, false
    positives and false negatives summed over the batches (P = tp / (tp + fp), R = tp / (tp +
    fn), each denominator raised by 1e-7 as in Keras).

    ``average``: None gives an array of one score per class; "micro" first sums the counts over
    the classes; "macro" is the classes' mean; "weighted" their mean weighted by each class's
    (weighted) count of positive targets. Sample weights are one per sample.
    """

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        one_of(average, AVERAGES, "average")
        if finite_float(beta) is None or not beta > 0:
            raise ValueError(f"Expected a finite beta > 0, received beta={beta!r:.200}")
        if threshold is not None and (isinstance(threshold, bool)
                                      or not isinstance(threshold, numbers.Real)
                                      or not 0 < threshold <= 1):
            raise ValueError(f"Expected threshold in (0, 1], received threshold="
                             f"{threshold!r:.200}")
        self.average, self.beta = average, float(beta)
        self.threshold = None if threshold is None else float(threshold)
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.true_positives = self.false_positives = None
        self.false_negatives = self.intermediate_weights = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = real_pair(y_true, y_pred)
        y_true = y_true.astype(np.float64, copy=False)
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise ValueError(f"Expected y_true and y_pred of one shape (samples, classes) for "
                             f"{self.name}, received {y_true.shape} and {y_pred.shape}")
        if self.threshold is None:
            predicted = y_pred == y_pred.max(axis=1, keepdims=True)
        else:
            predicted = y_pred > self.threshold
        predicted = predicted.astype(np.float64)
        if sample_weight is not None:
            weight = real_array(sample_weight, "sample_weight").astype(np.float64, copy=False)
            if weight.shape not in ((len(y_pred),), (len(y_pred), 1)):
                raise ValueError(f"Expected sample_weight of shape ({len(y_pred)},), one per "
                                 f"sample, received shape {weight.shape}")
            predicted_w, true_w = (a * weight.reshape(-1, 1) for a in (predicted, y_true))
        else:
            predicted_w, true_w = predicted, y_true
        axis = None if self.average == "micro" else 0
        counts = ((predicted_w * y_true).sum(axis=axis),
                  (predicted_w * (1 - y_true)).sum(axis=axis),
                  ((1 - predicted) * true_w).sum(axis=axis), true_w.sum(axis=axis))
        if self.true_positives is None:
            (self.true_positives, self.false_positives, self.false_negatives,
             self.intermediate_weights) = counts
            return
        if np.shape(counts[0]) != np.shape(self.true_positives):
            raise ValueError(f"Expected {np.shape(self.true_positives)[0]} classes, as before, "
                             f"received y_pred of shape {y_pred.shape}")
        self.true_positives = self.true_positives + counts[0]
        self.false_positives = self.false_positives + counts[1]
        self.false_negatives = self.false_negatives + counts[2]
        self.intermediate_weights = self.intermediate_weights + counts[3]

    def result(self):
        if self.true_positives is None:
            return 0.0
        tp = self.true_positives
        precision = tp / (tp + self.false_positives + EPSILON)
        recall = tp / (tp + self.false_negatives + EPSILON)
        b2 = self.beta ** 2
        score = (1 + b2) * precision * recall / (b2 * precision + recall + EPSILON)
        if self.average == "weighted":
            weights = self.intermediate_weights
            return float((score * weights / (weights.sum() + EPSILON)).sum())
        if self.average is not None:
            return float(np.mean(score))
        return np.asarray(score, np.float64)

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """FBetaScore with beta = 1: the harmonic mean of precision and recall."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config
