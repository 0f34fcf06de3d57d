"""Stochastic gradient descent, with momentum and Nesterov's variant."""
from .._ops import optim
from .base import Optimizer, check_rate


class SGD(Optimizer):
    """Keras's SGD: v = momentum v - lr g; w += v, or w += momentum v - lr g with Nesterov;
    w -= lr g without momentum. Takes the options of Optimizer."""

    rule_slots = ("velocity",)

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = check_rate(momentum, "momentum", high_open=False)
        self.nesterov = bool(nesterov)

    def _update(self, weights, grads, slots, learning_rate, step, **transforms):
        optim.sgd_update(weights, grads, slots[0], learning_rate, self.momentum, self.nesterov,
                         operands=self._operands, **transforms)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
