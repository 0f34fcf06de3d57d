"""Losses with Keras's names, arguments and semantics: classes, their function forms (one loss
per position, unreduced, as Keras's ``losses.mean_absolute_error(y_true, y_pred)``) and the
string names compile takes.

Each loss gives, in one pass per batch, every sample's share of the batch loss and the gradient
of the batch loss (``Loss.forward_backward``), which is what fit trains on.
"""
from .. import serialization
from ..config import EPSILON
from .base import REDUCTIONS, Loss
from .crossentropy import (
    BinaryCrossentropy,
    BinaryFocalCrossentropy,
    CategoricalCrossentropy,
    CategoricalFocalCrossentropy,
    SparseCategoricalCrossentropy,
)
from .dice import Dice
from .hinge import CategoricalHinge, MulticlassHinge
from .regression import (
    Huber,
    KLDivergence,
    LogCosh,
    MeanAbsoluteError,
    MeanSquaredError,
    Poisson,
)

CLASSES = (BinaryCrossentropy, BinaryFocalCrossentropy, CategoricalCrossentropy,
           CategoricalFocalCrossentropy, CategoricalHinge, Dice, Huber, KLDivergence, LogCosh,
           MeanAbsoluteError, MeanSquaredError, MulticlassHinge, Poisson,
           SparseCategoricalCrossentropy)

# Names compile takes: each loss's own name, its class name, and Keras's aliases.
LOSSES = {**{cls.name: cls for cls in CLASSES}, **{cls.__name__: cls for cls in CLASSES},
          "mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError,
          "MAE": MeanAbsoluteError, "huber": Huber, "logcosh": LogCosh, "kld": KLDivergence,
          "KLD": KLDivergence, "kullback_leibler_divergence": KLDivergence}

_FUNCTIONS = {}  # function form -> its class


def _function_form(cls, name, options=()):
    """Keras's function ``name(y_true, y_pred, *options)``: ``cls``'s loss of each position,
    unreduced, with ``options`` (cls's arguments, in the function's order)."""
    def loss(y_true, y_pred, *args, **kwargs):
        if len(args) > len(options):
            raise TypeError(f"{name}() takes at most {2 + len(options)} positional arguments, "
                            f"received {2 + len(args)}")
        kwargs.update(zip(options, args))
        return cls(reduction="none", **kwargs)(y_true, y_pred)
    loss.__name__ = loss.__qualname__ = name
    loss.__doc__ = (f"The {cls.__name__} loss of each position of y_pred (samples, ..., outputs), "
                    f"unreduced" + (f"; options {', '.join(options)}." if options else "."))
    _FUNCTIONS[loss] = cls
    return loss


binary_crossentropy = _function_form(BinaryCrossentropy, "binary_crossentropy",
                                     ("from_logits", "label_smoothing", "axis"))
binary_focal_crossentropy = _function_form(
    BinaryFocalCrossentropy, "binary_focal_crossentropy",
    ("apply_class_balancing", "alpha", "gamma", "from_logits", "label_smoothing", "axis"))
categorical_crossentropy = _function_form(CategoricalCrossentropy, "categorical_crossentropy",
                                          ("from_logits", "label_smoothing", "axis"))
categorical_focal_crossentropy = _function_form(
    CategoricalFocalCrossentropy, "categorical_focal_crossentropy",
    ("alpha", "gamma", "from_logits", "label_smoothing", "axis"))
categorical_hinge = _function_form(CategoricalHinge, "categorical_hinge")
dice = _function_form(Dice, "dice", ("axis",))
huber = _function_form(Huber, "huber", ("delta",))
kl_divergence = _function_form(KLDivergence, "kl_divergence")
log_cosh = _function_form(LogCosh, "log_cosh")
mean_absolute_error = _function_form(MeanAbsoluteError, "mean_absolute_error")
mean_squared_error = _function_form(MeanSquaredError, "mean_squared_error")
poisson = _function_form(Poisson, "poisson")
sparse_categorical_crossentropy = _function_form(
    SparseCategoricalCrossentropy, "sparse_categorical_crossentropy",
    ("from_logits", "ignore_class"))
kld = kl_divergence
mae = mean_absolute_error
mse = mean_squared_error

for _cls in CLASSES:
    serialization.register_builtin(_cls)


def serialize(loss):
    """{"class_name": ..., "config": {...}} of a Loss."""
    return serialization.serialize(loss)


def deserialize(config):
    """The Loss that ``serialize`` described."""
    return serialization.deserialize(config)


def get(identifier):
    """A Loss from an instance, a name ("mae", "huber", "CategoricalCrossentropy"...), one of
    the function forms above, or a ``serialize`` config."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in LOSSES:
        return LOSSES[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in LOSSES:
        return deserialize(identifier)
    if callable(identifier) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if callable(identifier) and not isinstance(identifier, type):
        # fn(y_true, y_pred) written with fastcnn.ops: traced and differentiated by the
        # wrapper fastcnn.ops registers (fastcnn/ops/loss_function.py)
        return serialization.get_class("LossFunctionWrapper")(identifier)
    raise ValueError(f"Unknown loss {identifier!r}; expected one of {sorted(LOSSES)}, a Loss or "
                     "a function fn(y_true, y_pred)")


__all__ = ["BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
           "CategoricalFocalCrossentropy", "CategoricalHinge", "Dice", "EPSILON", "Huber",
           "KLDivergence", "LogCosh", "Loss", "MeanAbsoluteError", "MeanSquaredError",
           "MulticlassHinge", "Poisson", "REDUCTIONS", "SparseCategoricalCrossentropy",
           "binary_crossentropy", "binary_focal_crossentropy", "categorical_crossentropy",
           "categorical_focal_crossentropy", "categorical_hinge", "deserialize", "dice", "get",
           "huber", "kl_divergence", "kld", "log_cosh", "mae", "mean_absolute_error",
           "mean_squared_error", "mse", "poisson", "serialize", "sparse_categorical_crossentropy"]
