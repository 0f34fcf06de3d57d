"""Adam and its family: AdamW, Nadam (Nesterov momentum) and Adamax (the infinity norm)."""
from .._ops import optim
from .._ops.checks import positive_int
from .base import Optimizer, check_epsilon, check_rate


class _Moments(Optimizer):
    """The hyper-parameters the Adam family shares: beta_1, beta_2 and epsilon."""

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = check_rate(beta_1, "beta_1")
        self.beta_2 = check_rate(beta_2, "beta_2")
        self.epsilon = check_epsilon(epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adam(_Moments):
    """Keras's Adam, the bias corrections folded into the step size; ``amsgrad`` divides by the
    running maximum of the second moment (slot "v_hat"). Takes the options of Optimizer."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.amsgrad = bool(amsgrad)
        self.rule_slots = ("m", "v") + (("v_hat",) if self.amsgrad else ())

    def _update(self, weights, grads, slots, learning_rate, step, **transforms):
        optim.adam_update(weights, grads, slots[0], slots[1], slots[2] if self.amsgrad else None,
                          learning_rate, self.beta_1, self.beta_2, self.epsilon, step,
                          operands=self._operands, **transforms)

    def get_config(self):
        return {**super().get_config(), "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay on by default (0.004), as Keras 3's AdamW: before each
    step every weight, biases included, shrinks by w -= learning_rate * weight_decay * w."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, **kwargs):
        if weight_decay is None:
            raise ValueError("Expected a float weight_decay >= 0 for AdamW, received None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad,
                         weight_decay=weight_decay, **kwargs)


class Nadam(_Moments):
    """Keras's Nadam: Adam with Nesterov momentum through the momentum cache
    u_t = beta_1 (1 - 0.96^t / 2) and its running product."""

    rule_slots = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self._u_products = (None, None)  # (beta_1, the products of its first caches)

    def _momentum_cache(self, t):
        return self.beta_1 * (1 - 0.5 * 0.96 ** t)

    def u_product(self, step):
        """The product of the momentum caches u_1 .. u_step (steps count from 1). After the
        first few hundred steps 0.96^t / 2 no longer changes 1 - 0.96^t / 2 in float64 and every
        cache is beta_1 itself: the product is that of the steps before, computed once, times a
        power of beta_1, so that any step costs the same, after a load too."""
        step = positive_int(step, "step")
        if self._u_products[0] != self.beta_1:
            products = [1.0]  # products[t]: the product of u_1 .. u_t
            while self._momentum_cache(len(products)) != self.beta_1:
                products.append(products[-1] * self._momentum_cache(len(products)))
            self._u_products = (self.beta_1, products)
        products = self._u_products[1]
        if step < len(products):
            return products[step]
        # beta_1 < 1: its powers beyond 2**64 are all 0, and a vaster int makes no float
        return products[-1] * self.beta_1 ** min(step - len(products) + 1, 2**64)

    def _update(self, weights, grads, slots, learning_rate, step, **transforms):
        optim.nadam_update(weights, grads, slots[0], slots[1], learning_rate, self.beta_1,
                           self.beta_2, self.epsilon, step, self.u_product(step),
                           operands=self._operands, **transforms)


class Adamax(_Moments):
    """Keras's Adamax: Adam with the exponentially weighted infinity norm u = max(beta_2 u, |g|)
    in place of the second moment."""

    rule_slots = ("m", "u")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)

    def _update(self, weights, grads, slots, learning_rate, step, **transforms):
        optim.adamax_update(weights, grads, slots[0], slots[1], learning_rate, self.beta_1,
                            self.beta_2, self.epsilon, step, operands=self._operands,
                            **transforms)
