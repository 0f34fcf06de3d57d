"""Dense, Flatten and Dropout."""
import numbers

import numpy as np

from .._ops import dense, dropout
from .._ops.checks import positive_int
from .base import Layer, RandomTransformLayer
from .kernel import KernelLayer


class Dense(KernelLayer):
    """``activation(x @ kernel + bias)`` with kernel of shape (in, units)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(units, "units")
        self._init_kernel_args(activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"Dense {self.name!r} expects flat inputs of shape (features,), received "
                             f"{input_shape}; add a Flatten layer before it")
        return (self.units,)

    def build(self, input_shape):
        super().build(input_shape)
        self._add_kernel_and_bias((self.input_shape[0], self.units))

    def forward(self, x, training=False):
        self._x = x
        z = dense.dense_forward(x, self.kernel, self.bias, relu=self._pending_activation() == "relu",
                                out=self.workspace.get("z", (x.shape[0], self.units)))
        return self._activate(z, relu_fused=True)

    def backward(self, dy, need_dx=True):
        dz = self._deactivate(dy)
        dense.dense_backward_weight(self._x, dz, dw=self.grads[0],
                                    db=self.grads[1] if self.use_bias else None)
        if not need_dx:
            return None
        return dense.dense_backward_input(dz, self.kernel, out=self.workspace.get("dx", self._x.shape))

    def get_config(self):
        return {**super().get_config(), "units": self.units, **self._kernel_config()}


class Flatten(Layer):
    """Reshape (batch, ...) to (batch, features) in NHWC order, exactly as Keras does: a view."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True):
        return dy.reshape(dy.shape[0], *self.input_shape) if need_dx else None


class Dropout(RandomTransformLayer):
    """Zero a fraction ``rate`` of the inputs during training and scale the rest by 1/(1-rate);
    at inference it is the identity."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"Expected rate in [0, 1), received rate={rate!r}")
        self.rate = float(rate)

    def draw_mask(self, training):
        """Starts a forward pass: the (seed, rate) of its mask, or None when it passes x through.
        A fused step that applies this dropout draws here too, so its masks are the layer's."""
        self._active = training and self.rate > 0
        if not self._active:
            return None
        self._mask_seed = int(self.rng.integers(2**64, dtype=np.uint64))
        return self.mask()

    def mask(self):
        """The (seed, rate) of the last forward pass's mask, or None."""
        return (self._mask_seed, self.rate) if self._active else None

    def forward(self, x, training=False):
        if self.draw_mask(training) is None:
            return x
        return dropout.dropout_forward(x, self._mask_seed, self.rate,
                                       out=self.workspace.get("y", x.shape))

    def _transform_backward(self, dy):
        return dropout.dropout_backward(dy, self._mask_seed, self.rate,
                                        out=self.workspace.get("dx", dy.shape))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
