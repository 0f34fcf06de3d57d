"""Learning-rate schedules, also reachable as ``fastcnn.optimizers.schedules`` (Keras's path).

A schedule is called with the number of optimizer updates done so far (0 for the first update)
and returns the learning rate for the next one, as in Keras.
"""
import math

from .arguments import finite_float
from .serialization import Configurable, checked_config, serialize

__all__ = ["LearningRateSchedule", "ExponentialDecay", "serialize", "deserialize"]


class LearningRateSchedule(Configurable):
    """Base class: subclasses implement ``__call__(step)`` and ``get_config``."""

    def __call__(self, step):
        raise NotImplementedError


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps), the exponent floored when
    ``staircase`` is set."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        for key, value in (("initial_learning_rate", initial_learning_rate),
                           ("decay_steps", decay_steps), ("decay_rate", decay_rate)):
            if finite_float(value) is None or value <= 0:
                raise ValueError(f"Expected {key} > 0, received {key}={value!r}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = decay_steps
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self.decay_rate ** exponent

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


SCHEDULES = {"ExponentialDecay": ExponentialDecay}


def deserialize(config):
    cls = SCHEDULES.get(checked_config(config, "schedules.deserialize").get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown learning-rate schedule {config.get('class_name')!r}; "
                         f"expected one of {sorted(SCHEDULES)}")
    return cls.from_config(config.get("config", {}))
