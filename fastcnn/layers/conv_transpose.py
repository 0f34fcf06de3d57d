"""Conv2DTranspose: the dX pass of the convolution from its output back to its input, run
forward (see _ext/conv.pyx); its own dX pass is that convolution's forward."""
from .._ops import conv
from .._ops.checks import positive_int
from .arguments import normalize_padding, normalize_tuple
from .conv import check_strides_with_dilation
from .kernel import KernelLayer


class Conv2DTranspose(KernelLayer):
    """Keras's Conv2DTranspose on NHWC images: kernel (kh, kw, filters, channels), output size
    per axis as Keras computes it (see _ops.conv.transpose_output_size)."""

    per_sample = True

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size")
        self.strides = normalize_tuple(strides, "strides")
        self.padding = normalize_padding(padding)
        self.output_padding = (None if output_padding is None else
                               normalize_tuple(output_padding, "output_padding", allow_zero=True))
        if self.output_padding is not None and any(
                p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(f"Expected output_padding < strides, received output_padding="
                             f"{self.output_padding} and strides={self.strides}")
        self.dilation_rate = normalize_tuple(dilation_rate, "dilation_rate")
        check_strides_with_dilation(self.strides, self.dilation_rate)
        self._init_kernel_args(activation, use_bias, kernel_initializer, bias_initializer,
                               kernel_regularizer)

    def _geometry(self):
        return dict(strides=self.strides, padding=self.padding,
                    output_padding=self.output_padding, dilation_rate=self.dilation_rate)

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        if self.built:
            self._check_channels(input_shape, self.kernel.shape[3])
        pads = self.output_padding or (None, None)
        oh, ow = (None if n is None else conv.transpose_output_size(n, k, s, self.padding, p, d)[0]
                  for n, k, s, p, d in zip(input_shape[1:3], self.kernel_size, self.strides, pads,
                                           self.dilation_rate))
        if (oh is not None and oh < 1) or (ow is not None and ow < 1):
            raise ValueError(f"Conv2DTranspose {self.name!r}: input shape {tuple(input_shape)} "
                             f"gives an empty output ({oh}, {ow})")
        return (input_shape[0], oh, ow, self.filters)

    def build(self, input_shape):
        self._check_image_input(input_shape)
        self._add_kernel_and_bias((*self.kernel_size, self.filters, input_shape[-1]),
                                  self.filters)

    def forward(self, x, ctx, training):
        ctx.x = x
        z = conv.conv2d_transpose_forward(
            x, self.kernel, self.bias, **self._geometry(),
            relu=self._pending_activation(ctx) == "relu",
            out=ctx.buffer("z", self.compute_output_shape(x.shape)))
        return self._activate(z, ctx, relu_fused=True)

    def backward(self, dy, ctx, need_dx):
        dz = self._deactivate(dy, ctx)
        dw, db = self._weight_grads(ctx)
        if dw is not None:
            conv.conv2d_transpose_backward_weight(ctx.x, dz, self.kernel.shape, **self._geometry(),
                                                  dw=dw, db=db)
        if not need_dx:
            return None
        return conv.conv2d_transpose_backward_input(dz, self.kernel, ctx.x.shape,
                                                    **self._geometry(),
                                                    out=ctx.buffer("dx", ctx.x.shape))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "output_padding": self.output_padding, "dilation_rate": self.dilation_rate,
                **self._kernel_config()}
