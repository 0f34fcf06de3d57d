"""Optimizers with Keras's defaults and update rules; each update runs in a kernel."""
import sys

import numpy as np

from . import schedules
from ._ops import optim
from .arguments import finite_float
from .serialization import checked_config

# Keras scripts write ``from keras.optimizers.schedules import ExponentialDecay``; registering
# the module under that dotted name makes the import work though optimizers is not a package.
sys.modules[__name__ + ".schedules"] = schedules


class Optimizer:
    """Holds per-weight state (slots) created on the first update, and the step count."""

    slot_names = ()

    def __init__(self, learning_rate, name=None):
        self._learning_rate = None
        self.learning_rate = learning_rate
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        # id(weight) -> (weight, its slots): keyed by the array, as PyTorch keys state by the
        # parameter, so that a change of the trainable set between fits (a layer frozen or
        # unfrozen) leaves every weight with its own state. The entry holds the weight, so its
        # id is not reused.
        self._state = {}
        # The checked operands of the last update, reused while the arrays are the same ones.
        self._operands = optim.UpdateOperands()

    @property
    def learning_rate(self):
        """The rate, or the schedule (any callable of the update count) the optimizer follows.

        Callbacks set a new rate here. As in Keras, a schedule cannot be replaced by a number.
        """
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if not callable(value):
            if callable(self._learning_rate):
                raise TypeError(f"Expected to set learning_rate of an optimizer created with a "
                                f"number, but it follows the schedule {self._learning_rate!r}")
            number = finite_float(value)
            if number is None or not number > 0:
                raise ValueError(f"Expected learning_rate > 0, received learning_rate={value!r}")
            value = number
        self._learning_rate = value

    def current_learning_rate(self):
        """The rate for the next update. A schedule gets the number of updates done so far,
        0 for the first, as in Keras."""
        if callable(self.learning_rate):
            return float(self.learning_rate(self.iterations))
        return self.learning_rate

    def _slots_of(self, weight):
        """The weight's slots, one per slot name, created as zeros on its first update."""
        entry = self._state.get(id(weight))
        if entry is None:
            entry = self._state[id(weight)] = (weight, [np.zeros_like(weight)
                                                        for _ in self.slot_names])
        return entry[1]

    def has_slots(self, weights):
        """Whether any of weights has been updated (has state) by this optimizer."""
        return any(id(w) in self._state for w in _weight_list(weights))

    def slots_for(self, weights):
        """The slots of weights: one list per slot name, aligned with weights (a weight not yet
        updated gets its zeros now)."""
        slots = [self._slots_of(w) for w in _weight_list(weights)]
        return [[s[k] for s in slots] for k in range(len(self.slot_names))]

    def set_slots(self, weights, slots):
        """Gives weights the state slots_for(weights) returned (copies, C-contiguous: the kernels
        update them in place)."""
        for k, weight in enumerate(_weight_list(weights)):
            self._state[id(weight)] = (weight, [np.array(values[k], weight.dtype, order="C")
                                                for values in slots])

    def apply(self, weights, grads):
        """One update of every weight, in one kernel call."""
        weights = _weight_list(weights)
        if len({id(w) for w in weights}) != len(weights):
            raise ValueError("Expected every weight once, received one listed twice")
        slots = self.slots_for(weights)
        lr = self.current_learning_rate()
        self.iterations += 1
        self._update(weights, grads, slots, lr)

    def _update(self, weights, grads, slots, learning_rate):
        raise NotImplementedError(f"{type(self).__name__} has no update rule: a subclass of "
                                  "Optimizer defines _update")

    def get_config(self):
        lr = self.learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            lr = None
        return {"name": self.name, "learning_rate": lr}

    @classmethod
    def from_config(cls, config):
        if isinstance(checked_config(config, cls.__name__).get("learning_rate"), dict):
            config = {**config, "learning_rate": schedules.deserialize(config["learning_rate"])}
        return cls(**config)


def _weight_list(weights):
    """``weights`` as a list of arrays. An array is refused: iterated, it would be one weight
    per row."""
    if not isinstance(weights, (list, tuple)):
        raise TypeError(f"Expected weights to be a list of arrays, received "
                        f"{type(weights).__name__}")
    if not all(isinstance(w, np.ndarray) for w in weights):
        raise TypeError(f"Expected weights to be a list of arrays, received a list of "
                        f"{sorted({type(w).__name__ for w in weights})}")
    return list(weights)


class SGD(Optimizer):
    slot_names = ("velocity",)

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None):
        super().__init__(learning_rate, name)
        if not 0 <= momentum <= 1:
            raise ValueError(f"Expected momentum in [0, 1], received momentum={momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _update(self, weights, grads, slots, learning_rate):
        optim.sgd_update(weights, grads, slots[0], learning_rate, self.momentum, self.nesterov,
                         operands=self._operands)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None):
        super().__init__(learning_rate, name)
        for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= value < 1:
                raise ValueError(f"Expected {key} in [0, 1), received {key}={value!r}")
        if not (finite_float(epsilon) or 0) > 0:
            raise ValueError(f"Expected epsilon > 0, received epsilon={epsilon!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    weight_decay = 0.0  # AdamW's

    def _update(self, weights, grads, slots, learning_rate):
        optim.adam_update(weights, grads, slots[0], slots[1], learning_rate, self.beta_1,
                          self.beta_2, self.epsilon, self.iterations, self.weight_decay,
                          operands=self._operands)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class AdamW(Adam):
    """Adam with Keras 3's decoupled weight decay: before each Adam step every trainable weight,
    biases included as in Keras, shrinks by w -= learning_rate * weight_decay * w."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, name=None):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name)
        if finite_float(weight_decay) is None or weight_decay < 0:
            raise ValueError(f"Expected weight_decay >= 0, received weight_decay={weight_decay!r}")
        self.weight_decay = float(weight_decay)

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.weight_decay}


class RMSprop(Optimizer):
    """Keras 3's RMSprop: epsilon inside the square root, optional momentum and centering."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name=None):
        super().__init__(learning_rate, name)
        if not 0 <= rho < 1:
            raise ValueError(f"Expected rho in [0, 1), received rho={rho!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"Expected momentum in [0, 1), received momentum={momentum!r}")
        if not (finite_float(epsilon) or 0) > 0:
            raise ValueError(f"Expected epsilon > 0, received epsilon={epsilon!r}")
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)
        # Like Keras, keep the momentum and mean-gradient slots only when they are used.
        self.slot_names = (("mean_square",) + (("momentum_buffer",) if self.momentum else ())
                           + (("mean_grad",) if self.centered else ()))

    def _update(self, weights, grads, slots, learning_rate):
        slots = dict(zip(self.slot_names, slots))
        optim.rmsprop_update(weights, grads, slots["mean_square"], slots.get("momentum_buffer"),
                             slots.get("mean_grad"), learning_rate, self.rho, self.momentum,
                             self.epsilon, self.centered, operands=self._operands)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get(identifier):
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in OPTIMIZERS:
        return OPTIMIZERS[identifier.lower()]()
    raise ValueError(f"Unknown optimizer {identifier!r}; expected one of {sorted(OPTIMIZERS)} "
                     "or an Optimizer")
