"""The per-element adaptive rates without momentum moments: RMSprop, Adagrad and Adadelta."""
from .._ops import optim
from ..arguments import finite_float
from .base import Optimizer, check_epsilon, check_rate


class RMSprop(Optimizer):
    """Keras 3's RMSprop: epsilon inside the square root, optional momentum and centering."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = check_rate(rho, "rho")
        self.momentum = check_rate(momentum, "momentum")
        self.epsilon = check_epsilon(epsilon)
        self.centered = bool(centered)
        # Like Keras, keep the momentum and mean-gradient slots only when they are used.
        self.rule_slots = (("mean_square",) + (("momentum_buffer",) if self.momentum else ())
                           + (("mean_grad",) if self.centered else ()))

    def _update(self, weights, grads, slots, learning_rate, step, **transforms):
        slots = dict(zip(self.rule_slots, slots))
        optim.rmsprop_update(weights, grads, slots["mean_square"], slots.get("momentum_buffer"),
                             slots.get("mean_grad"), learning_rate, self.rho, self.momentum,
                             self.epsilon, self.centered, operands=self._operands, **transforms)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Keras's Adagrad: a += g^2 (a starts at initial_accumulator_value); w -= lr g /
    sqrt(a + epsilon)."""

    rule_slots = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        value = finite_float(initial_accumulator_value)
        if value is None or value < 0:
            raise ValueError(f"Expected initial_accumulator_value >= 0, received "
                             f"initial_accumulator_value={initial_accumulator_value!r}")
        self.initial_accumulator_value = value
        self.slot_fill = {"accumulator": value}
        self.epsilon = check_epsilon(epsilon)

    def _update(self, weights, grads, slots, learning_rate, step, **transforms):
        optim.adagrad_update(weights, grads, slots[0], learning_rate, self.epsilon,
                             operands=self._operands, **transforms)

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Keras's Adadelta, with a learning rate: running means of g^2 and of the squared steps
    (rho), each step -sqrt(mean step^2 + eps) g / sqrt(mean g^2 + eps) times the rate."""

    rule_slots = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = check_rate(rho, "rho")
        self.epsilon = check_epsilon(epsilon)

    def _update(self, weights, grads, slots, learning_rate, step, **transforms):
        optim.adadelta_update(weights, grads, slots[0], slots[1], learning_rate, self.rho,
                              self.epsilon, operands=self._operands, **transforms)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
