"""Keras's metrics: stateful objects (``update_state``, ``result``, ``reset_state``) with Keras's
names and string aliases, found by ``get`` and, for ``compile``, by ``resolve``.

``binary_accuracy``, ``categorical_accuracy``, ``sparse_categorical_accuracy`` and
``resolve_accuracy`` here are the (correct, total) counts the training loop still sums (see
``counts``); Keras's per-prediction functions of those names live in ``metrics.accuracy_metrics``.
"""
from .accuracy_metrics import (Accuracy, BinaryAccuracy, CategoricalAccuracy,
                       SparseCategoricalAccuracy, accuracy)
from .base import Mean, MeanMetricWrapper, Metric
from .counts import (binary_accuracy, categorical_accuracy, resolve_accuracy,
                     sparse_categorical_accuracy)
from .loss_metrics import (BinaryCrossentropy, CategoricalCrossentropy, CategoricalHinge,
                           LossMetric, SparseCategoricalCrossentropy)
from .registry import deserialize, get, resolve, serialize
from .regression import (MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError,
                         mean_absolute_error, mean_squared_error)

__all__ = ["Accuracy", "BinaryAccuracy", "BinaryCrossentropy", "CategoricalAccuracy",
           "CategoricalCrossentropy", "CategoricalHinge", "LossMetric", "Mean",
           "MeanAbsoluteError", "MeanMetricWrapper", "MeanSquaredError", "Metric",
           "RootMeanSquaredError", "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
           "accuracy", "binary_accuracy", "categorical_accuracy", "deserialize", "get",
           "mean_absolute_error", "mean_squared_error", "resolve", "resolve_accuracy",
           "serialize", "sparse_categorical_accuracy"]
