"""Max, average and sum pooling, windowed and global; max pooling keeps the argmax of each
window for its backward pass."""
from .._ops import pool
from .._ops.checks import window_output_shape
from .base import Layer, normalize_padding, normalize_tuple


class _Pooling2D(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, "strides")
        self.padding = normalize_padding(padding)

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        (oh, ow), _ = window_output_shape(input_shape[:2], self.pool_size, self.strides,
                                          self.padding, "pool_size")
        return (oh, ow, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


class MaxPooling2D(_Pooling2D):
    # Set by the model when the layer before ends in relu: this layer then applies that relu's
    # backward as part of its own (see _ops.pool.maxpool2d_backward).
    applies_input_relu_grad = False

    def forward(self, x, training=False):
        self._x_shape = x.shape
        shape = (x.shape[0], *self.output_shape)
        self._y, self._argmax = pool.maxpool2d_forward(
            x, self.pool_size, self.strides, self.padding,
            out=self.workspace.get("y", shape), argmax=self.workspace.get("argmax", shape, "int32"))
        return self._y

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return pool.maxpool2d_backward(dy, self._argmax, self._x_shape,
                                       out=self.workspace.get("dx", self._x_shape),
                                       relu_output=self._y if self.applies_input_relu_grad else None)


class _WindowSumPooling2D(_Pooling2D):
    """Pooling by a sum over each window's cells inside the input, then (or not) a division."""

    _forward_op = _backward_op = None

    def forward(self, x, training=False):
        self._x_shape = x.shape
        return self._forward_op(x, self.pool_size, self.strides, self.padding,
                                out=self.workspace.get("y", (x.shape[0], *self.output_shape)))

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return self._backward_op(dy, self._x_shape, self.pool_size, self.strides, self.padding,
                                 out=self.workspace.get("dx", self._x_shape))


class AveragePooling2D(_WindowSumPooling2D):
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
        return (1, 1, input_shape[2]) if self.keepdims else (input_shape[2],)

    def _pooled(self, x):
        return self.workspace.get("y", (x.shape[0], x.shape[3]))

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    def forward(self, x, training=False):
        self._x_shape = x.shape
        out = pool.global_avgpool2d_forward(x, out=self._pooled(x))
        return out.reshape(x.shape[0], *self.output_shape)

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return pool.global_avgpool2d_backward(dy.reshape(dy.shape[0], -1), self._x_shape,
                                              out=self.workspace.get("dx", self._x_shape))


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Ties send the gradient to the first maximum in row-major order, as MaxPooling2D does."""

    def forward(self, x, training=False):
        self._x_shape = x.shape
        out, self._argmax = pool.global_maxpool2d_forward(
            x, out=self._pooled(x),
            argmax=self.workspace.get("argmax", (x.shape[0], x.shape[3]), "int32"))
        return out.reshape(x.shape[0], *self.output_shape)

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return pool.global_maxpool2d_backward(dy.reshape(dy.shape[0], -1), self._argmax,
                                              self._x_shape,
                                              out=self.workspace.get("dx", self._x_shape))
