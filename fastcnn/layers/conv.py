"""Conv2D: NHWC inputs, HWIO kernel, bias and relu fused into the forward kernel."""
from .._ops import conv
from .._ops.checks import positive_int
from .arguments import normalize_padding, normalize_tuple, window_output_hw
from .kernel import KernelLayer


class Conv2D(KernelLayer):
    fusion = "conv2d"

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
        if self.built:
            self._check_channels(input_shape, self.kernel.shape[2])
        oh, ow = window_output_hw(input_shape, self.kernel_size, self.strides, self.padding,
                                  "kernel_size")
        return (input_shape[0], oh, ow, self.filters)

    def build(self, input_shape):
        self._check_image_input(input_shape)
        self._add_kernel_and_bias((*self.kernel_size, input_shape[-1], self.filters))

    def forward(self, x, ctx, training):
        ctx.x = x
        z = conv.conv2d_forward(x, self.kernel, self.bias, self.strides, self.padding,
                                relu=self._pending_activation(ctx) == "relu",
                                out=ctx.buffer("z", self.compute_output_shape(x.shape)))
        return self._activate(z, ctx, relu_fused=True)

    def backward(self, dy, ctx, need_dx):
        dz = self._deactivate(dy, ctx)
        dw, db = self._weight_grads(ctx)
        if dw is not None:
            conv.conv2d_backward_weight(ctx.x, dz, self.kernel.shape, self.strides, self.padding,
                                        dw=dw, db=db)
        if not need_dx:
            return None
        return conv.conv2d_backward_input(dz, self.kernel, ctx.x.shape, self.strides,
                                          self.padding, out=ctx.buffer("dx", ctx.x.shape))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, **self._kernel_config()}
