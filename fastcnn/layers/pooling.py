"""Max and average pooling; max pooling keeps the argmax of each window for its backward pass."""
from .. import ops
from .base import Layer, normalize_padding, normalize_tuple


class _Pooling2D(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, "strides")
        self.padding = normalize_padding(padding)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects inputs of shape "
                             f"(height, width, channels), received {input_shape}")
        (oh, ow), _ = ops.window_output_shape(input_shape[:2], self.pool_size, self.strides, self.padding)
        return (oh, ow, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


class MaxPooling2D(_Pooling2D):
    def forward(self, x, training=False):
        self._x_shape = x.shape
        shape = (x.shape[0], *self.output_shape)
        out, self._argmax = ops.maxpool2d_forward(
            x, self.pool_size, self.strides, self.padding,
            out=self.workspace.get("y", shape), argmax=self.workspace.get("argmax", shape, "int32"))
        return out

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return ops.maxpool2d_backward(dy, self._argmax, self._x_shape,
                                      out=self.workspace.get("dx", self._x_shape))


class AveragePooling2D(_Pooling2D):
    def forward(self, x, training=False):
        self._x_shape = x.shape
        return ops.avgpool2d_forward(x, self.pool_size, self.strides, self.padding,
                                     out=self.workspace.get("y", (x.shape[0], *self.output_shape)))

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return ops.avgpool2d_backward(dy, self._x_shape, self.pool_size, self.strides, self.padding,
                                      out=self.workspace.get("dx", self._x_shape))
