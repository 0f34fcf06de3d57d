"""Dense, Flatten and Dropout."""
import numbers

import numpy as np

from .._ops import dense, dropout
from .._ops.checks import positive_int
from .base import Layer, RandomTransformLayer
from .kernel import KernelLayer


class Dense(KernelLayer):
    """``activation(x @ kernel + bias)`` with kernel of shape (in, units), applied to the last
    axis of inputs of any rank, as in Keras."""

    fusion = "dense"
    per_sample = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(units, "units")
        self._init_kernel_args(activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer)

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense {self.name!r} expects inputs of shape (batch, ..., features) "
                             f"with a known number of features, received {tuple(input_shape)}")
        if self.built:
            self._check_channels(input_shape, self.kernel.shape[0])
        return (*input_shape[:-1], self.units)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self._add_kernel_and_bias((input_shape[-1], self.units))

    def forward(self, x, ctx, training):
        # Higher ranks run as rows of the last axis: views, as the buffers are C-contiguous.
        rows = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        ctx.x = rows
        z = dense.dense_forward(rows, self.kernel, self.bias,
                                relu=self._pending_activation(ctx) == "relu",
                                out=ctx.buffer("z", (rows.shape[0], self.units)))
        y = self._activate(z, ctx, relu_fused=True)
        return y if x.ndim == 2 else y.reshape(*x.shape[:-1], self.units)

    def backward(self, dy, ctx, need_dx):
        rows = dy if dy.ndim == 2 else dy.reshape(-1, self.units)
        dz = self._deactivate(rows, ctx)
        dw, db = self._weight_grads(ctx)
        if dw is not None:
            dense.dense_backward_weight(ctx.x, dz, dw=dw, db=db)
        if not need_dx:
            return None
        dx = dense.dense_backward_input(dz, self.kernel, out=ctx.buffer("dx", ctx.x.shape))
        return dx if dy.ndim == 2 else dx.reshape(*dy.shape[:-1], ctx.x.shape[1])

    def get_config(self):
        return {**super().get_config(), "units": self.units, **self._kernel_config()}


class Flatten(Layer):
    """Reshape (batch, ...) to (batch, features) in NHWC order, exactly as Keras does: a view."""

    fusion = "flatten"
    per_sample = True

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else int(np.prod(rest)))

    def forward(self, x, ctx, training):
        ctx.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, ctx, need_dx):
        return dy.reshape(ctx.x_shape) if need_dx else None


class Dropout(RandomTransformLayer):
    """Zero a fraction ``rate`` of the inputs during training and scale the rest by 1/(1-rate);
    at inference it is the identity."""

    fusion = "dropout"
    per_sample = True

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"Expected rate in [0, 1), received rate={rate!r}")
        self.rate = float(rate)

    def draw_mask(self, ctx, training):
        """Starts a forward pass: the (seed, rate, first sample) of its mask, or None when it
        passes x through. A fused step that applies this dropout draws here too, so its masks are
        the layer's. The mask is keyed by the index of each sample in the whole batch (the
        batch's ``ctx.first_sample`` onwards), so processes sharing a batch draw its mask."""
        ctx.active = bool(training) and self.rate > 0
        if not ctx.active:
            return None
        ctx.mask = (int(ctx.rng.integers(2**64, dtype=np.uint64)), self.rate)
        return (*ctx.mask, ctx.first_sample)

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x, ctx, training):
        if self.draw_mask(ctx, training) is None:
            return x
        return dropout.dropout_forward(x, *ctx.mask, out=ctx.buffer("y", x.shape),
                                       first=ctx.first_sample)

    def _transform_backward(self, dy, ctx):
        return dropout.dropout_backward(dy, *ctx.mask, out=ctx.buffer("dx", dy.shape),
                                        first=ctx.first_sample)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
