"""Max, average and sum pooling, windowed and global; max pooling keeps the argmax of each
window for its backward pass."""
from .._ops import pool
from .arguments import normalize_padding, normalize_tuple, window_output_hw
from .base import Layer


class _Pooling2D(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, "strides")
        self.padding = normalize_padding(padding)

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        oh, ow = window_output_hw(input_shape, self.pool_size, self.strides, self.padding,
                                  "pool_size")
        return (input_shape[0], oh, ow, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


class MaxPooling2D(_Pooling2D):
    """With the planner's ``apply_input_relu_grad`` flag (its input is a relu's output), the
    backward pass also applies that relu's backward (see _ops.pool.maxpool2d_backward)."""

    fusion = "maxpool2d"
    per_sample = True

    def forward(self, x, ctx, training):
        ctx.x_shape = x.shape
        shape = self.compute_output_shape(x.shape)
        ctx.y, ctx.argmax = pool.maxpool2d_forward(
            x, self.pool_size, self.strides, self.padding,
            out=ctx.buffer("y", shape), argmax=ctx.buffer("argmax", shape, "int32"))
        return ctx.y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return pool.maxpool2d_backward(dy, ctx.argmax, ctx.x_shape,
                                       out=ctx.buffer("dx", ctx.x_shape),
                                       relu_output=ctx.y if ctx.apply_input_relu_grad else None)


class _WindowSumPooling2D(_Pooling2D):
    """Pooling by a sum over each window's cells inside the input, then (or not) a division."""

    _forward_op = _backward_op = None

    def forward(self, x, ctx, training):
        ctx.x_shape = x.shape
        return self._forward_op(x, self.pool_size, self.strides, self.padding,
                                out=ctx.buffer("y", self.compute_output_shape(x.shape)))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return self._backward_op(dy, ctx.x_shape, self.pool_size, self.strides, self.padding,
                                 out=ctx.buffer("dx", ctx.x_shape))


class AveragePooling2D(_WindowSumPooling2D):
    per_sample = True

    _forward_op = staticmethod(pool.avgpool2d_forward)
    _backward_op = staticmethod(pool.avgpool2d_backward)


class SumPooling2D(_WindowSumPooling2D):
    """The sum of each window's cells inside the input; backward gives every cell of a window
    that window's full gradient. Not in Keras: it is average pooling without the division."""

    _forward_op = staticmethod(pool.sumpool2d_forward)
    _backward_op = staticmethod(pool.sumpool2d_backward)


class _GlobalPooling2D(Layer):
    """Pool each channel over the whole image: (batch, channels), or (batch, 1, 1, channels)
    with ``keepdims``."""

    def __init__(self, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(keepdims, bool):
            raise ValueError(f"Expected keepdims to be True or False, received keepdims={keepdims!r}")
        self.keepdims = keepdims

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        n, c = input_shape[0], input_shape[3]
        return (n, 1, 1, c) if self.keepdims else (n, c)

    def _pooled(self, x, ctx):
        ctx.x_shape = x.shape
        return ctx.buffer("y", (x.shape[0], x.shape[3]))

    def _shaped(self, out, x):
        return out.reshape(self.compute_output_shape(x.shape))

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    per_sample = True

    def forward(self, x, ctx, training):
        return self._shaped(pool.global_avgpool2d_forward(x, out=self._pooled(x, ctx)), x)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return pool.global_avgpool2d_backward(dy.reshape(dy.shape[0], -1), ctx.x_shape,
                                              out=ctx.buffer("dx", ctx.x_shape))


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Ties send the gradient to the first maximum in row-major order, as MaxPooling2D does."""

    per_sample = True

    def forward(self, x, ctx, training):
        out, ctx.argmax = pool.global_maxpool2d_forward(
            x, out=self._pooled(x, ctx),
            argmax=ctx.buffer("argmax", (x.shape[0], x.shape[3]), "int32"))
        return self._shaped(out, x)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return pool.global_maxpool2d_backward(dy.reshape(dy.shape[0], -1), ctx.argmax,
                                              ctx.x_shape, out=ctx.buffer("dx", ctx.x_shape))
