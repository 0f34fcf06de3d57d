"""Finding metrics by name, as Keras does: ``get``, ``serialize``/``deserialize`` and
``resolve``, which also turns "accuracy" and "crossentropy" into the variant that suits a
model's loss and shapes."""
from .. import losses, serialization
from . import accuracy_metrics as accuracy, confusion, fscore, iou, loss_metrics, regression
from .base import Mean, MeanMetricWrapper, Metric, Sum, snake_case

CLASSES = (Mean, MeanMetricWrapper, loss_metrics.LossMetric,
           accuracy.Accuracy, accuracy.BinaryAccuracy, accuracy.CategoricalAccuracy,
           accuracy.SparseCategoricalAccuracy, accuracy.TopKCategoricalAccuracy,
           accuracy.SparseTopKCategoricalAccuracy,
           confusion.Precision, confusion.Recall, confusion.AUC, fscore.FBetaScore, fscore.F1Score,
           iou.IoU, iou.MeanIoU, iou.BinaryIoU, iou.OneHotIoU, iou.OneHotMeanIoU,
           confusion.TruePositives, confusion.FalsePositives, confusion.TrueNegatives,
           confusion.FalseNegatives, confusion.SensitivityAtSpecificity,
           confusion.SpecificityAtSensitivity, confusion.PrecisionAtRecall,
           confusion.RecallAtPrecision, Sum,
           regression.MeanSquaredError, regression.MeanAbsoluteError,
           regression.RootMeanSquaredError, regression.MeanAbsolutePercentageError,
           regression.MeanSquaredLogarithmicError, regression.CosineSimilarity,
           regression.R2Score,
           loss_metrics.BinaryCrossentropy, loss_metrics.CategoricalCrossentropy,
           loss_metrics.SparseCategoricalCrossentropy, loss_metrics.CategoricalHinge)
_BY_CLASS_NAME = {cls.__name__: cls for cls in CLASSES}
# Keras's lower-case names: each class's snake-case name, which is also the name of the function
# it averages, and the short aliases.
_BY_NAME = {snake_case(cls.__name__): cls for cls in CLASSES
            if cls not in (MeanMetricWrapper, loss_metrics.LossMetric)}
_BY_NAME.update({alias: cls for short, cls in (("bce", loss_metrics.BinaryCrossentropy),
                                                ("mse", regression.MeanSquaredError),
                                                ("mae", regression.MeanAbsoluteError),
                                                ("mape", regression.MeanAbsolutePercentageError),
                                                ("msle", regression.MeanSquaredLogarithmicError))
                 for alias in (short, short.upper())})
_BY_NAME["acc"] = accuracy.Accuracy
# The functions a MeanMetricWrapper's config may name.
FUNCTIONS = {fn.__name__: fn for fn in (
    accuracy.accuracy, accuracy.binary_accuracy, accuracy.categorical_accuracy,
    accuracy.sparse_categorical_accuracy, accuracy.top_k_categorical_accuracy,
    accuracy.sparse_top_k_categorical_accuracy, regression.mean_squared_error,
    regression.mean_absolute_error, regression.mean_absolute_percentage_error,
    regression.mean_squared_logarithmic_error, regression.cosine_similarity)}


def get(identifier):
    """The metric an identifier stands for, as Keras's ``metrics.get``: a Metric itself; a Metric
    class, instantiated; a class name ("AUC"), instantiated with its default name; a lower-case
    name or alias ("mae", "top_k_categorical_accuracy", "auc"), instantiated and named as
    written; a loss name that ``fastcnn.losses.get`` knows, or a Loss, as a LossMetric; a config
    dict, deserialized; any other function of (y_true, y_pred), as a MeanMetricWrapper."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        if identifier in _BY_CLASS_NAME and identifier not in ("MeanMetricWrapper",
                                                               "LossMetric"):
            return _BY_CLASS_NAME[identifier]()
        if identifier in _BY_NAME:
            return _BY_NAME[identifier](name=identifier)
        if identifier in losses.LOSSES:
            return loss_metrics.LossMetric(identifier, name=identifier)
        raise ValueError(f"Unknown metric {identifier!r}; expected one of "
                         f"{sorted({*_BY_NAME, *_BY_CLASS_NAME, *losses.LOSSES})}, a Metric, a "
                         "Loss or a function")
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, losses.Loss):
        return loss_metrics.LossMetric(identifier)
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(f"Expected a metric, a metric name or a function, received "
                    f"{identifier!r:.200}")


def serialize(metric):
    """{"class_name": ..., "config": {...}} of a metric."""
    return serialization.serialize(metric)


def deserialize(config, custom_objects=None):
    """The metric ``serialize`` described; classes and functions not fastcnn's are looked up in
    ``custom_objects`` or among the classes registered with register_keras_serializable."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ValueError(f"Expected {{'class_name': ..., 'config': {{...}}}}, received "
                         f"{config!r:.200}")
    class_name, config = config.get("class_name"), dict(config["config"])
    custom_objects = custom_objects or {}
    with serialization.custom_object_scope(custom_objects):
        cls = _BY_CLASS_NAME.get(class_name) or serialization.get_class(class_name)
    if cls is MeanMetricWrapper:
        fn = config.pop("fn", None)
        fn = FUNCTIONS.get(fn) or custom_objects.get(fn)
        if not callable(fn):
            raise ValueError(f"Unknown metric function {fn!r}: pass it in custom_objects")
        return MeanMetricWrapper(fn, **config)
    return cls.from_config(config)


def resolve(identifier, loss, output_shape, target_shape):
    """The metric that ``compile(metrics=[identifier])`` gives an output, named exactly as the
    user wrote it when a string.

    "accuracy" and "acc" (in any case) become binary accuracy when the output has one unit in
    its last axis or the loss is binary cross-entropy, with a threshold of 0 when the loss takes
    logits (where the sigmoid crosses 0.5) and 0.5 otherwise; else sparse categorical accuracy
    for integer labels (targets of lower rank than the outputs, or with a last axis of 1), and
    categorical accuracy for one-hot targets. "crossentropy" and "ce" become the binary, sparse
    or categorical cross-entropy by the same rules, taking logits when the loss does. Anything
    else is ``get(identifier)``.

    ``loss`` is the output's Loss; ``output_shape`` and ``target_shape`` are one sample's shapes
    (without the batch axis), the targets' as the loss's check_targets returns them.
    """
    key = identifier.lower() if isinstance(identifier, str) else None
    if key not in ("accuracy", "acc", "crossentropy", "ce"):
        metric = get(identifier)
        if isinstance(identifier, str):
            metric.name = identifier
        return metric
    if not isinstance(loss, losses.Loss):
        raise TypeError(f"Expected loss to be a fastcnn.losses.Loss, received {loss!r:.200}")
    output_shape, target_shape = tuple(output_shape), tuple(target_shape)
    if not output_shape:
        raise ValueError("Expected output_shape with at least one axis besides the batch axis, "
                         f"received output_shape={output_shape}")
    binary = output_shape[-1] == 1 or isinstance(loss, losses.BinaryCrossentropy)
    sparse = len(target_shape) < len(output_shape) or (target_shape[-1:] == (1,))
    if key in ("accuracy", "acc"):
        if binary:
            return accuracy.BinaryAccuracy(name=identifier,
                                           threshold=0.0 if loss.from_logits else 0.5)
        if sparse:
            return accuracy.SparseCategoricalAccuracy(name=identifier)
        return accuracy.CategoricalAccuracy(name=identifier)
    cls = (loss_metrics.BinaryCrossentropy if binary else
           loss_metrics.SparseCategoricalCrossentropy if sparse else
           loss_metrics.CategoricalCrossentropy)
    return cls(name=identifier, from_logits=loss.from_logits)
