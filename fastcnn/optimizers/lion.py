"""Lion: sign updates from an interpolated momentum."""
from .._ops import optim
from .base import Optimizer, check_rate


class Lion(Optimizer):
    """Keras's Lion: w -= lr sign(beta_1 m + (1 - beta_1) g); then m = beta_2 m +
    (1 - beta_2) g. beta_1 must lie in (0, 1], as Keras requires."""

    rule_slots = ("momentum",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = check_rate(beta_1, "beta_1", high_open=False)
        if self.beta_1 == 0:
            raise ValueError("Expected beta_1 in (0, 1] (at 0 Lion is sign SGD), received "
                             f"beta_1={beta_1!r}")
        self.beta_2 = check_rate(beta_2, "beta_2", high_open=False)

    def _update(self, weights, grads, slots, learning_rate, step, **transforms):
        optim.lion_update(weights, grads, slots[0], learning_rate, self.beta_1, self.beta_2,
                          operands=self._operands, **transforms)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
