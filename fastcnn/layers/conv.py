"""Conv2D: NHWC inputs, HWIO kernel, bias and relu fused into the forward kernel."""
from .._ops import conv
from .._ops.checks import positive_int, window_output_shape
from .base import normalize_padding, normalize_tuple
from .kernel import KernelLayer


class Conv2D(KernelLayer):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size")
        self.strides = normalize_tuple(strides, "strides")
        self.padding = normalize_padding(padding)
        self._init_kernel_args(activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer)

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        (oh, ow), _ = window_output_shape(input_shape[:2], self.kernel_size, self.strides,
                                          self.padding, "kernel_size")
        return (oh, ow, self.filters)

    def build(self, input_shape):
        super().build(input_shape)
        self._add_kernel_and_bias((*self.kernel_size, self.input_shape[2], self.filters))

    def forward(self, x, training=False):
        self._x = x
        z = conv.conv2d_forward(x, self.kernel, self.bias, self.strides, self.padding,
                                relu=self._pending_activation() == "relu",
                                out=self.workspace.get("z", (x.shape[0], *self.output_shape)))
        return self._activate(z, relu_fused=True)

    def backward(self, dy, need_dx=True):
        dz = self._deactivate(dy)
        conv.conv2d_backward_weight(self._x, dz, self.kernel.shape, self.strides, self.padding,
                                    dw=self.grads[0], db=self.grads[1] if self.use_bias else None)
        if not need_dx:
            return None
        return conv.conv2d_backward_input(dz, self.kernel, self._x.shape, self.strides, self.padding,
                                          out=self.workspace.get("dx", self._x.shape))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, **self._kernel_config()}
