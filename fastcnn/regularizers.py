"""Weight regularisers with Keras's names: a penalty added to the loss, and its gradient.

    layers.Dense(64, kernel_regularizer=regularizers.l2(1e-4))

The model adds each penalty to every batch's loss (and to evaluate's), as Keras does, and adds
its gradient to the weight's before the optimizer step.
"""

from . import serialization
from .arguments import finite_float
from ._ops import regularization
from .serialization import Configurable


class Regularizer(Configurable):
    """Base class: ``penalty = regularizer(weight)``; ``add_gradient`` accumulates its gradient."""

    def __call__(self, weight):
        raise NotImplementedError("A subclass of Regularizer defines __call__ (the penalty)")

    def add_gradient(self, weight, grad):
        """grad += d penalty / d weight, in place."""
        raise NotImplementedError("A subclass of Regularizer defines add_gradient")


class L2(Regularizer):
    """penalty = l2 * sum(weight ** 2)."""

    def __init__(self, l2=0.01):
        if finite_float(l2) is None or l2 < 0:
            raise ValueError(f"Expected l2 to be a finite number >= 0, received l2={l2!r}")
        self.l2 = float(l2)

    def __call__(self, weight):
        return self.l2 * regularization.sum_of_squares(weight)

    def add_gradient(self, weight, grad):
        regularization.axpy(2 * self.l2, weight, grad)

    def get_config(self):
        return {"l2": self.l2}


l2 = L2  # Keras's lower-case alias: regularizers.l2(0.01)

REGULARIZERS = {"L2": L2, "l2": L2}


def serialize(regularizer):
    """A JSON-friendly config: None, or {"class_name": ..., "config": {...}}."""
    return None if regularizer is None else serialization.serialize(regularizer)


def get(identifier):
    """A Regularizer from None, an instance, a name ("l2", with Keras's default factor) or a
    ``serialize`` config."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in REGULARIZERS:
        return REGULARIZERS[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in REGULARIZERS:
        return REGULARIZERS[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"Unknown regularizer {identifier!r}; expected None, a Regularizer, one of "
                     f"{sorted(REGULARIZERS)} or a config dict")
