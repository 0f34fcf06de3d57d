"""Weight constraints with Keras's names and formulas: after each optimizer step, fit maps the
constrained weight through its constraint, ``w = constraint(w)``.

    layers.Dense(64, kernel_constraint=constraints.MaxNorm(3), bias_constraint="non_neg")

The norms are taken over ``axis`` (0 by default: for a Dense kernel (in, out), each output
unit's incoming weights; for a Conv2D kernel (kh, kw, in, out) use axis=[0, 1, 2]).
"""
import numbers

import numpy as np

from . import serialization
from .arguments import non_negative_float
from .config import EPSILON
from .serialization import Configurable


def _axis(axis):
    axes = [axis] if isinstance(axis, numbers.Integral) else axis
    if not isinstance(axes, (list, tuple)) or not axes or not all(
            isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes):
        raise ValueError(f"Expected axis to be an int or a list of ints, received axis={axis!r}")
    return int(axis) if isinstance(axis, numbers.Integral) else [int(a) for a in axes]


class Constraint(Configurable):
    """Base class: ``constraint(w)`` returns the weight's constrained values."""

    def __call__(self, w):
        return w

    def get_config(self):
        return {}


class _NormConstraint(Constraint):
    """Rescales the slices of w along ``axis`` to the norm ``_target(norms)``."""

    def __init__(self, axis):
        self.axis = _axis(axis)

    def __call__(self, w):
        axis = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        if w.ndim == 0:
            return w
        norms = np.sqrt(np.sum(np.square(w, dtype=np.float64), axis=axis, keepdims=True))
        return (w * (self._target(norms) / (EPSILON + norms))).astype(w.dtype)

    def get_config(self):
        return {"axis": self.axis}


class MaxNorm(_NormConstraint):
    """Slices whose L2 norm exceeds ``max_value`` are scaled down to it."""

    def __init__(self, max_value=2, axis=0):
        super().__init__(axis)
        self.max_value = non_negative_float(max_value, "max_value")

    def _target(self, norms):
        return np.clip(norms, 0, self.max_value)

    def get_config(self):
        return {"max_value": self.max_value, **super().get_config()}


class UnitNorm(_NormConstraint):
    """Every slice scaled to unit L2 norm."""

    def __init__(self, axis=0):
        super().__init__(axis)

    def _target(self, norms):
        return 1.0


class MinMaxNorm(_NormConstraint):
    """Slice norms moved into [min_value, max_value]: the norm becomes
    rate * clip(norm, min_value, max_value) + (1 - rate) * norm."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        super().__init__(axis)
        self.min_value = non_negative_float(min_value, "min_value")
        self.max_value = non_negative_float(max_value, "max_value")
        self.rate = non_negative_float(rate, "rate")
        if self.min_value > self.max_value:
            raise ValueError(f"Expected min_value <= max_value, received min_value={min_value!r} "
                             f"and max_value={max_value!r}")

    def _target(self, norms):
        return self.rate * np.clip(norms, self.min_value, self.max_value) + \
            (1 - self.rate) * norms

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                **super().get_config()}


class NonNeg(Constraint):
    """Negative entries set to zero."""

    def __call__(self, w):
        return np.maximum(w, 0).astype(w.dtype)


max_norm, min_max_norm, non_neg, unit_norm = MaxNorm, MinMaxNorm, NonNeg, UnitNorm
CLASSES = (MaxNorm, MinMaxNorm, NonNeg, UnitNorm)
CONSTRAINTS = {**{cls.__name__: cls for cls in CLASSES}, "max_norm": MaxNorm,
               "min_max_norm": MinMaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm}
for _cls in CLASSES:
    serialization.register_builtin(_cls)


def serialize(constraint):
    """None, or a Constraint's {"class_name": ..., "config": {...}}; a plain callable stays
    itself (a config that holds one is not saved to JSON)."""
    if constraint is None or not isinstance(constraint, Constraint):
        return constraint
    return serialization.serialize(constraint)


def get(identifier):
    """A constraint from None, a Constraint, a name ("max_norm", "NonNeg"...) or a ``serialize``
    config; any other callable ``w -> w`` is returned as it is."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str) and identifier in CONSTRAINTS:
        return CONSTRAINTS[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in CONSTRAINTS:
        return CONSTRAINTS[identifier["class_name"]].from_config(identifier.get("config", {}))
    if callable(identifier) and not isinstance(identifier, type):
        return identifier
    raise ValueError(f"Unknown constraint {identifier!r:.200}; expected None, a Constraint, one "
                     f"of {sorted(CONSTRAINTS)}, a config dict or a callable")
