"""Keras's metrics: stateful objects (``update_state``, ``result``, ``reset_state``) with Keras's
names and string aliases, found by ``get`` and, for ``compile``, by ``resolve``.
"""
from .accuracy_metrics import (Accuracy, BinaryAccuracy, CategoricalAccuracy,
                               SparseCategoricalAccuracy, SparseTopKCategoricalAccuracy,
                               TopKCategoricalAccuracy, accuracy, binary_accuracy,
                               categorical_accuracy, sparse_categorical_accuracy,
                               sparse_top_k_categorical_accuracy, top_k_categorical_accuracy)
from .base import Mean, MeanMetricWrapper, Metric, Sum, Variable
from .confusion import (AUC, FalseNegatives, FalsePositives, Precision, PrecisionAtRecall, Recall,
                        RecallAtPrecision, SensitivityAtSpecificity, SpecificityAtSensitivity,
                        TrueNegatives, TruePositives)
from .fscore import F1Score, FBetaScore
from .iou import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from .loss_metrics import (BinaryCrossentropy, CategoricalCrossentropy, CategoricalHinge,
                           LossMetric, SparseCategoricalCrossentropy)
from .registry import deserialize, get, resolve, serialize
from .regression import (CosineSimilarity, MeanAbsoluteError, MeanAbsolutePercentageError,
                         MeanSquaredError, MeanSquaredLogarithmicError, R2Score,
                         RootMeanSquaredError,
                         cosine_similarity, mean_absolute_error, mean_absolute_percentage_error,
                         mean_squared_error, mean_squared_logarithmic_error)

__all__ = ["AUC", "Accuracy", "BinaryAccuracy", "BinaryCrossentropy", "BinaryIoU",
           "CategoricalAccuracy", "CategoricalCrossentropy", "CategoricalHinge",
           "CosineSimilarity", "F1Score", "FBetaScore", "FalseNegatives", "FalsePositives", "IoU",
           "LossMetric", "Mean", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanIoU",
           "MeanMetricWrapper", "MeanSquaredError", "MeanSquaredLogarithmicError", "Metric",
           "OneHotIoU", "OneHotMeanIoU", "Precision", "PrecisionAtRecall", "R2Score", "Recall",
           "RecallAtPrecision", "RootMeanSquaredError", "SensitivityAtSpecificity",
           "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
           "SparseTopKCategoricalAccuracy", "SpecificityAtSensitivity", "Sum",
           "TopKCategoricalAccuracy", "TrueNegatives", "TruePositives", "Variable", "accuracy",
           "binary_accuracy", "categorical_accuracy", "cosine_similarity", "deserialize", "get",
           "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_error",
           "mean_squared_logarithmic_error", "resolve", "serialize",
           "sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy",
           "top_k_categorical_accuracy"]
