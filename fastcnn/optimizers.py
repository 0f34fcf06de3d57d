"""Optimizers with Keras's defaults and update rules; each update runs in a kernel."""
import numpy as np

from . import ops


class Optimizer:
    """Holds per-weight state (slots) created on the first update, and the step count."""

    slot_names = ()

    def __init__(self, learning_rate, name=None):
        if not callable(learning_rate):
            if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) \
                    or not learning_rate > 0:
                raise ValueError(f"Expected learning_rate > 0, received learning_rate={learning_rate!r}")
            learning_rate = float(learning_rate)
        self.learning_rate = learning_rate
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self.slots = None  # one list of arrays per slot name, aligned with the weights

    def current_learning_rate(self):
        """The rate for the next step: a schedule or callable is given the step count."""
        if callable(self.learning_rate):
            return float(self.learning_rate(self.iterations))
        return self.learning_rate

    def apply(self, weights, grads):
        if self.slots is None:
            self.slots = [[np.zeros_like(w) for w in weights] for _ in self.slot_names]
        self.iterations += 1
        lr = self.current_learning_rate()
        for i, (w, g) in enumerate(zip(weights, grads)):
            self._update(w, g, [slot[i] for slot in self.slots], lr)

    def _update(self, weight, grad, slots, learning_rate):
        raise NotImplementedError

    def get_config(self):
        lr = self.learning_rate
        return {"name": self.name, "learning_rate": lr if not callable(lr) else None}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class SGD(Optimizer):
    slot_names = ("velocity",)

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None):
        super().__init__(learning_rate, name)
        if not 0 <= momentum <= 1:
            raise ValueError(f"Expected momentum in [0, 1], received momentum={momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _update(self, weight, grad, slots, learning_rate):
        ops.sgd_update(weight, grad, slots[0], learning_rate, self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None):
        super().__init__(learning_rate, name)
        for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= value < 1:
                raise ValueError(f"Expected {key} in [0, 1), received {key}={value!r}")
        if not epsilon > 0:
            raise ValueError(f"Expected epsilon > 0, received epsilon={epsilon!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _update(self, weight, grad, slots, learning_rate):
        ops.adam_update(weight, grad, slots[0], slots[1], learning_rate, self.beta_1, self.beta_2,
                        self.epsilon, self.iterations)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def get(identifier):
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in OPTIMIZERS:
        return OPTIMIZERS[identifier.lower()]()
    raise ValueError(f"Unknown optimizer {identifier!r}; expected one of {sorted(OPTIMIZERS)} "
                     "or an Optimizer")
