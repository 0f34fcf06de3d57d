"""Regularisers with Keras's names: a penalty added to the loss, and its gradient.

    layers.Dense(64, kernel_regularizer=regularizers.L1L2(l1=1e-5, l2=1e-4),
                 bias_regularizer="l2", activity_regularizer=regularizers.L1(1e-5))

The model adds each weight's penalty to every batch's loss (and to evaluate's), as Keras does,
and adds its gradient to the weight's before the optimizer step. An activity regulariser
penalises the layer's output on each batch, divided by the batch size, as Keras 3 does.
"""

from . import serialization
from .arguments import non_negative_float
from ._ops import regularization
from ._ops.checks import real_number
from .serialization import Configurable


class Regularizer(Configurable):
    """Base class: ``penalty = regularizer(x)``; ``add_gradient`` accumulates its gradient."""

    def __call__(self, x):
        raise NotImplementedError("A subclass of Regularizer defines __call__ (the penalty)")

    def add_gradient(self, x, grad, scale=1.0):
        """grad += scale * d penalty / d x, in place."""
        raise NotImplementedError("A subclass of Regularizer defines add_gradient")


class L1L2(Regularizer):
    """penalty = l1 * sum(|x|) + l2 * sum(x ** 2) (no gradient from |x| where x = 0)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = non_negative_float(l1, "l1"), non_negative_float(l2, "l2")

    def __call__(self, x):
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * regularization.sum_of_abs(x)
        if self.l2:
            penalty += self.l2 * regularization.sum_of_squares(x)
        return penalty

    def add_gradient(self, x, grad, scale=1.0):
        scale = real_number(scale, "scale")
        if self.l1:
            regularization.add_sign(scale * self.l1, x, grad)
        if self.l2:
            regularization.axpy(scale * 2 * self.l2, x, grad)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """penalty = l1 * sum(|x|)."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """penalty = l2 * sum(x ** 2)."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2  # Keras's lower-case aliases: regularizers.l2(0.01)

REGULARIZERS = {"L1": L1, "l1": L1, "L2": L2, "l2": L2, "L1L2": L1L2, "l1_l2": L1L2}
for _cls in (L1, L2, L1L2):
    serialization.register_builtin(_cls)


def serialize(regularizer):
    """A JSON-friendly config: None, or {"class_name": ..., "config": {...}}."""
    return None if regularizer is None else serialization.serialize(regularizer)


def get(identifier):
    """A Regularizer from None, an instance, a name ("l1", "l2", "l1_l2", with Keras's default
    factors: 0.01, 0.01, and 0 for both) or a ``serialize`` config."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in REGULARIZERS:
        return REGULARIZERS[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in REGULARIZERS:
        return REGULARIZERS[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"Unknown regularizer {identifier!r}; expected None, a Regularizer, one of "
                     f"{sorted(REGULARIZERS)} or a config dict")
