"""Learning-rate schedules, also reachable as ``fastcnn.optimizers.schedules`` (Keras's path).

A schedule is called with the number of optimizer updates done so far (0 for the first update)
and returns the learning rate for the next one, as in Keras. The rates are computed in float64.
A rate that would leave the float range (ExponentialDecay with decay_rate > 1 after many steps)
raises a ValueError naming the schedule and the step.
"""
import math

from .arguments import finite_float
from .serialization import (Configurable, checked_config, custom_object_scope, get_class,
                            serialize)

__all__ = ["CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay",
           "LearningRateSchedule", "PiecewiseConstantDecay", "PolynomialDecay", "deserialize",
           "serialize"]


class LearningRateSchedule(Configurable):
    """Base class: subclasses implement ``__call__(step)`` and ``get_config``."""

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__} must define __call__(step)")

    def _power(self, base, exponent, step):
        """base ** exponent, or a ValueError where it leaves the float range."""
        try:
            value = base ** exponent
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise ValueError(f"{type(self).__name__} overflows at step {step}: {base!r} ** "
                             f"{exponent!r} exceeds the float range; use a decay rate <= 1 or "
                             "fewer steps")
        return value


def _positive(value, name):
    number = finite_float(value)
    if number is None or number <= 0:
        raise ValueError(f"Expected {name} > 0, received {name}={value!r}")
    return value


def _non_negative(value, name):
    number = finite_float(value)
    if number is None or number < 0:
        raise ValueError(f"Expected {name} >= 0, received {name}={value!r}")
    return number


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps), the exponent floored when
    ``staircase`` is set."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = float(_positive(initial_learning_rate,
                                                     "initial_learning_rate"))
        self.decay_steps = _positive(decay_steps, "decay_steps")
        self.decay_rate = float(_positive(decay_rate, "decay_rate"))
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self._power(self.decay_rate, exponent, step)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


def _flat_list(values, name):
    """``values``, a list or tuple of them or a 1-d array, as a list: another iterable (a
    string, the rows of a 2-d array) is no list of numbers."""
    if getattr(values, "ndim", None) == 1 and hasattr(values, "tolist"):
        return values.tolist()
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"Expected {name} to be a list of numbers, received "
                        f"{type(values).__name__}")
    return list(values)


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] up to and including step boundaries[0], values[i] for boundaries[i-1] < step
    <= boundaries[i], values[-1] after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = _flat_list(boundaries, "boundaries"), _flat_list(values, "values")
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"Expected one boundary fewer than values, received "
                             f"{len(boundaries)} boundaries and {len(values)} values")
        if any(finite_float(b) is None for b in boundaries) or any(
                b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"Expected strictly increasing finite boundaries, received "
                             f"boundaries={boundaries!r}")
        for value in values:
            _non_negative(value, "values")
        self.boundaries = boundaries
        self.values = [float(v) for v in values]
        self.name = name

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """From initial_learning_rate to end_learning_rate in decay_steps along
    (initial - end) * (1 - step / decay_steps) ** power + end, then end; with ``cycle``,
    decay_steps grows to the first multiple of itself at or past the step (1 at step 0)."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        self.initial_learning_rate = _non_negative(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _positive(decay_steps, "decay_steps")
        self.end_learning_rate = _non_negative(end_learning_rate, "end_learning_rate")
        self.power = _non_negative(power, "power")
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step):
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps = decay_steps * (math.ceil(step / decay_steps) if step else 1)
        else:
            step = min(step, decay_steps)
        fraction = 1 - step / decay_steps
        return ((self.initial_learning_rate - self.end_learning_rate)
                * self._power(fraction, self.power, step) + self.end_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps), step / decay_steps
    floored when ``staircase`` is set."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        self.initial_learning_rate = _non_negative(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _positive(decay_steps, "decay_steps")
        self.decay_rate = _non_negative(decay_rate, "decay_rate")
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        fraction = step / self.decay_steps
        if self.staircase:
            fraction = math.floor(fraction)
        return self.initial_learning_rate / (1 + self.decay_rate * fraction)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


def _cosine(fraction, alpha):
    """From 1 at fraction 0 to alpha at fraction 1, along half a cosine."""
    return (1 - alpha) * 0.5 * (1 + math.cos(math.pi * fraction)) + alpha


class CosineDecay(LearningRateSchedule):
    """Without warmup_target: initial_learning_rate times a cosine from 1 down to alpha over
    decay_steps, then alpha. With it: first a linear warmup from initial_learning_rate to
    warmup_target over warmup_steps, then the cosine decay from warmup_target."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _non_negative(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _positive(decay_steps, "decay_steps")
        self.alpha = _non_negative(alpha, "alpha")
        self.name = name
        self.warmup_target = (None if warmup_target is None
                              else _non_negative(warmup_target, "warmup_target"))
        self.warmup_steps = _non_negative(warmup_steps, "warmup_steps")

    def __call__(self, step):
        if self.warmup_target is None:
            return self.initial_learning_rate * _cosine(min(step, self.decay_steps)
                                                        / self.decay_steps, self.alpha)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            return ((self.warmup_target - self.initial_learning_rate) * (step / self.warmup_steps)
                    + self.initial_learning_rate)
        return self.warmup_target * _cosine((step - self.warmup_steps) / self.decay_steps,
                                            self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """SGDR: cosine decays from initial_learning_rate to alpha times it, restarted after each
    period; the first period lasts first_decay_steps, each next one t_mul times longer and
    starting m_mul times lower."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = _non_negative(initial_learning_rate, "initial_learning_rate")
        self.first_decay_steps = _positive(first_decay_steps, "first_decay_steps")
        self.t_mul = float(_positive(t_mul, "t_mul"))
        self.m_mul = _non_negative(m_mul, "m_mul")
        self.alpha = _non_negative(alpha, "alpha")
        self.name = name

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        if self.t_mul == 1:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            # the periods' lengths form a geometric series: find the period the step lies in
            remaining = 1 - fraction * (1 - self.t_mul)
            if remaining <= 0:  # t_mul < 1: the periods shrink, and their sum ends
                raise ValueError(f"CosineDecayRestarts with t_mul={self.t_mul} < 1 ends after "
                                 f"first_decay_steps / (1 - t_mul) steps, received step {step}")
            restart = math.floor(math.log(remaining) / math.log(self.t_mul))
            length = self._power(self.t_mul, restart, step)
            fraction = (fraction - (1 - length) / (1 - self.t_mul)) / length
        factor = self._power(self.m_mul, restart, step) if self.m_mul else 0.0
        return self.initial_learning_rate * ((1 - self.alpha) * factor * 0.5
                                             * (1 + math.cos(math.pi * fraction)) + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


SCHEDULES = {cls.__name__: cls for cls in (CosineDecay, CosineDecayRestarts, ExponentialDecay,
                                           InverseTimeDecay, PiecewiseConstantDecay,
                                           PolynomialDecay)}


def deserialize(config, custom_objects=None):
    """The schedule that ``serialize(schedule)`` describes ({"class_name", "config"}): one of
    fastcnn's, or a registered or custom LearningRateSchedule subclass."""
    config = checked_config(config, "schedules.deserialize")
    name = config.get("class_name")
    cls = SCHEDULES.get(name)
    if cls is None:
        with custom_object_scope(custom_objects):
            try:
                cls = get_class(name)
            except ValueError:
                cls = None
        if not (isinstance(cls, type) and issubclass(cls, LearningRateSchedule)):
            raise ValueError(f"Unknown learning-rate schedule {name!r}; expected one of "
                             f"{sorted(SCHEDULES)} or a registered LearningRateSchedule")
    return cls.from_config(config.get("config", {}))
