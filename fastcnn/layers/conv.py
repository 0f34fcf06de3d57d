"""Conv2D and Conv1D: NHWC inputs, HWIO kernel, bias and relu fused into the forward kernel.

Conv1D runs the 2-D kernels on images of height 1: its (steps, channels) inputs and its
(kernel_size, channels, filters) kernel are reshaped views, never copies.
"""
from .._ops import conv
from .._ops.checks import positive_int
from .arguments import normalize_padding, normalize_tuple, window_output_hw
from .kernel import KernelLayer
from .normalization import conv_moments_buffer


def normalize_groups(groups, filters):
    """Keras's checks of ``groups``: a positive int that divides ``filters``."""
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"Expected groups to be a positive int, received groups={groups!r}")
    if filters % groups:
        raise ValueError(f"Expected filters divisible by groups, received filters={filters} and "
                         f"groups={groups}")
    return groups


def check_strides_with_dilation(strides, dilation_rate):
    """Keras refuses strides > 1 together with dilation_rate > 1."""
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(f"Expected strides of 1 with dilation_rate > 1 (or no dilation), "
                         f"received strides={strides} and dilation_rate={dilation_rate}")


def dilated_window(kernel_size, dilation_rate):
    """The extent of a dilated kernel on each axis."""
    return tuple((k - 1) * d + 1 for k, d in zip(kernel_size, dilation_rate))


class _Conv(KernelLayer):
    """What Conv2D and Conv1D share: the arguments, and the kernel calls on NHWC arrays with a
    HWIO kernel of c_in / groups input channels."""

    def _init_conv(self, filters, kernel_size, strides, padding, dilation_rate, groups,
                   kernel_args):
        self.filters = positive_int(filters, "filters")
        self.groups = normalize_groups(groups, self.filters)
        self.kernel_size, self.strides, self.dilation_rate = kernel_size, strides, dilation_rate
        check_strides_with_dilation(strides, dilation_rate)
        self.padding = padding
        self._init_kernel_args(*kernel_args)

    def _check_groups(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] % self.groups:
            raise ValueError(f"{type(self).__name__} {self.name!r}: expected input channels "
                             f"divisible by groups={self.groups}, received input shape "
                             f"{tuple(input_shape)}")

    def _variant(self):
        """The kernel arguments that Conv2D and Conv1D give as 2-D."""
        return {"dilation_rate": self._dilation_2d, "groups": self.groups}

    def _forward_2d(self, x, kernel, z, ctx, moments=None, input_batchnorm=None):
        return conv.conv2d_forward(x, kernel, self.bias, self._strides_2d, self._padding_2d,
                                   relu=self._pending_activation(ctx) == "relu", out=z,
                                   moments=moments, input_batchnorm=input_batchnorm,
                                   **self._variant())

    def _backward_2d(self, dz, x, kernel, dw, db, dx, input_relu=False, batchnorm=None,
                     input_batchnorm=None):
        """dW (and db) unless dw is None, and dX unless dx is None; ``input_relu``: x is a relu's
        output whose backward dX gets too. Both from one pass over dz when the kernels allow.
        ``batchnorm`` (plain convolutions): dz is the gradient of the batch normalisation that
        read the output, whose input gradient the kernel makes (conv.conv2d_backward).
        ``input_batchnorm`` (plain convolutions): x is the input of the batch normalisation
        whose output the forward read (conv.conv2d_forward); dX does not read x."""
        variant = self._variant()
        if (batchnorm is not None or (input_batchnorm is not None and dw is not None)
                or (dw is not None and dx is not None
                    and (self._dilation_2d, self.groups) == conv.PLAIN)):
            return conv.conv2d_backward(x, dz, kernel, self._strides_2d, self._padding_2d, dw=dw,
                                        db=db, dx=dx, need_dx=dx is not None,
                                        input_relu=input_relu, batchnorm=batchnorm,
                                        input_batchnorm=input_batchnorm)[1]
        if dw is not None:
            conv.conv2d_backward_weight(x, dz, kernel.shape, self._strides_2d, self._padding_2d,
                                        dw=dw, db=db, **variant)
        if dx is None:
            return None
        return conv.conv2d_backward_input(dz, kernel, x.shape, self._strides_2d,
                                          self._padding_2d, out=dx,
                                          relu_output=x if input_relu else None, **variant)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "dilation_rate": self.dilation_rate, "groups": self.groups,
                **self._kernel_config()}


class Conv2D(_Conv):
    """Keras's Conv2D on NHWC images, with ``dilation_rate`` and ``groups``: group q convolves
    input channels [q*c/groups, (q+1)*c/groups) into filters [q*f/groups, (q+1)*f/groups) with a
    kernel of shape (kh, kw, c/groups, filters)."""

    per_sample = True

    @property
    def fusion(self):
        # The fused conv + max-pool kernels run plain convolutions only.
        return "conv2d" if (self.dilation_rate, self.groups) == conv.PLAIN else None

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, dilation_rate=(1, 1), groups=1, **kwargs):
        super().__init__(**kwargs)
        self._init_conv(filters, normalize_tuple(kernel_size, "kernel_size"),
                        normalize_tuple(strides, "strides"), normalize_padding(padding),
                        normalize_tuple(dilation_rate, "dilation_rate"), groups,
                        (activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer))
        self._strides_2d, self._padding_2d = self.strides, self.padding
        self._dilation_2d = self.dilation_rate

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        self._check_groups(input_shape)
        if self.built:
            self._check_channels(input_shape, self.kernel.shape[2] * self.groups)
        oh, ow = window_output_hw(input_shape, dilated_window(self.kernel_size, self.dilation_rate),
                                  self.strides, self.padding, "kernel_size")
        return (input_shape[0], oh, ow, self.filters)

    def build(self, input_shape):
        self._check_image_input(input_shape)
        self._check_groups(input_shape)
        self._add_kernel_and_bias((*self.kernel_size, input_shape[-1] // self.groups,
                                   self.filters))

    def forward(self, x, ctx, training):
        ctx.x = x
        shape = self.compute_output_shape(x.shape)
        # The BatchNormalization reading z may take its statistics' partial sums from here;
        # with the planner's input_batchnorm, x is the input of the one whose output it reads.
        ctx.moments = conv_moments_buffer(ctx, shape)
        z = self._forward_2d(x, self.kernel, ctx.buffer("z", shape), ctx, ctx.moments,
                             ctx.input_batchnorm)
        return self._activate(z, ctx, relu_fused=True)

    def backward(self, dy, ctx, need_dx):
        dz = self._deactivate(dy, ctx)
        dw, db = self._weight_grads(ctx)
        dx = ctx.buffer("dx", ctx.x.shape) if need_dx else None
        # With the planner's apply_input_relu_grad, x is a relu's output whose backward the
        # dX kernel applies too; with batchnorm_dx, dy is the gradient of the normalisation
        # that read the output, whose dx the kernel makes as it reads dy.
        batchnorm, ctx.batchnorm_dx = ctx.batchnorm_dx, None
        return self._backward_2d(dz, ctx.x, self.kernel, dw, db, dx, ctx.apply_input_relu_grad,
                                 batchnorm, ctx.input_batchnorm)


class Conv1D(_Conv):
    """Keras's Conv1D on (batch, steps, channels), with padding "valid", "same" or "causal"
    (zeros before the sequence only, so that output t sees inputs up to t), dilation_rate and
    groups; kernel (kernel_size, channels/groups, filters)."""

    per_sample = True

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, dilation_rate=1, groups=1, **kwargs):
        super().__init__(**kwargs)
        value = padding.lower() if isinstance(padding, str) else padding
        if value not in ("valid", "same", "causal"):
            raise ValueError(f'Expected padding "valid", "same" or "causal", received '
                             f"padding={padding!r}")
        self._init_conv(filters, _single(kernel_size, "kernel_size"), _single(strides, "strides"),
                        value, _single(dilation_rate, "dilation_rate"), groups,
                        (activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer))
        self._strides_2d, self._padding_2d = (1, *self.strides), self.padding
        self._dilation_2d = (1, *self.dilation_rate)

    def _check_sequence_input(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Conv1D {self.name!r} expects inputs of shape (batch, steps, "
                             f"channels), received {tuple(input_shape)}")
        self._check_groups(input_shape)

    def compute_output_shape(self, input_shape):
        self._check_sequence_input(input_shape)
        if self.built:
            self._check_channels(input_shape, self.kernel.shape[1] * self.groups)
        padding = "same" if self.padding == "causal" else self.padding  # the same length
        _, steps = window_output_hw((input_shape[0], 1, input_shape[1]),
                                    (1, *dilated_window(self.kernel_size, self.dilation_rate)),
                                    self._strides_2d, padding, "kernel_size")
        return (input_shape[0], steps, self.filters)

    def build(self, input_shape):
        self._check_sequence_input(input_shape)
        self._add_kernel_and_bias((*self.kernel_size, input_shape[-1] // self.groups,
                                   self.filters))

    def forward(self, x, ctx, training):
        ctx.x = x
        shape = self.compute_output_shape(x.shape)
        z = ctx.buffer("z", (shape[0], 1, *shape[1:]))
        self._forward_2d(x[:, None], self.kernel[None], z, ctx)
        return self._activate(z[:, 0], ctx, relu_fused=True)

    def backward(self, dy, ctx, need_dx):
        dz = self._deactivate(dy, ctx)
        dw, db = self._weight_grads(ctx)
        x = ctx.x[:, None]
        dx = ctx.buffer("dx", x.shape) if need_dx else None
        self._backward_2d(dz[:, None], x, self.kernel[None], None if dw is None else dw[None],
                          db, dx)
        return None if dx is None else dx[:, 0]


def _single(value, name):
    """An int or a 1-tuple of ints -> a positive 1-tuple, as Keras's Conv1D takes them."""
    single = value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value
    if isinstance(single, (tuple, list)):
        raise ValueError(f"Expected {name} to be an int or a 1-tuple of ints, received "
                         f"{name}={value!r}")
    return normalize_tuple(single, name)[:1]
