"""DepthwiseConv2D and SeparableConv2D: a filter per input channel (``depth_multiplier`` of them),
and for the separable one a 1x1 convolution mixing the channels after it. Keras 3's arguments,
weights (depthwise ``(kh, kw, c, depth_multiplier)``, pointwise ``(1, 1, c * depth_multiplier,
filters)``) and output channel order (channel ``ch * depth_multiplier + m`` from input channel
``ch``); channels_last only."""
from .. import constraints, initializers, regularizers
from .._ops import conv, depthwise
from .._ops.checks import positive_int
from .activation import ActivationMixin, normalize_activation
from .arguments import normalize_padding, normalize_tuple, window_output_hw
from .base import Layer
from .normalization import conv_moments_buffer


def normalize_data_format(data_format):
    """fastcnn's layers are NHWC: None or "channels_last"."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f'Expected data_format "channels_last" or None (fastcnn is channels-last '
                         f'only), received data_format={data_format!r}')
    return "channels_last"


class _DepthwiseBase(ActivationMixin, Layer):
    """The depthwise part both layers share: its arguments, its output shape and its passes.
    Both also take Keras's keywords ``activity_regularizer`` (a penalty on the layer's output,
    divided by the batch size), ``depthwise_constraint`` and ``bias_constraint``."""

    def __init__(self, kernel_size, strides, padding, depth_multiplier, data_format,
                 dilation_rate, activation, use_bias, depthwise_initializer, bias_initializer,
                 depthwise_regularizer, bias_regularizer, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.kernel_size = normalize_tuple(kernel_size, "kernel_size")
        self.strides = normalize_tuple(strides, "strides")
        self.padding = normalize_padding(padding)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier")
        self.data_format = normalize_data_format(data_format)
        self.dilation_rate = normalize_tuple(dilation_rate, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"Expected strides of 1 with a dilation_rate above 1 (Keras refuses "
                             f"both), received strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.activation = normalize_activation(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.validate(depthwise_initializer)
        self.bias_initializer = initializers.validate(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def _output_hw(self, input_shape):
        self._check_image_input(input_shape)
        if self.built:
            self._check_channels(input_shape, self._in_channels())
        extent = tuple((k - 1) * r + 1 for k, r in zip(self.kernel_size, self.dilation_rate))
        return window_output_hw(input_shape, extent, self.strides, self.padding, "kernel_size")

    def _add_depthwise(self, input_shape, name):
        self._check_image_input(input_shape)
        return self.add_weight((*self.kernel_size, input_shape[-1], self.depth_multiplier),
                               self.depthwise_initializer, regularizer=self.depthwise_regularizer,
                               constraint=self.depthwise_constraint, name=name)

    def _add_bias(self, n):
        return (self.add_weight((n,), self.bias_initializer, regularizer=self.bias_regularizer,
                                constraint=self.bias_constraint, name="bias")
                if self.use_bias else None)

    def _geometry(self):
        return dict(strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate)

    def _depthwise_forward(self, x, kernel, bias, relu, out, moments=None):
        return depthwise.depthwise_forward(x, kernel, bias, **self._geometry(), relu=relu,
                                           out=out, moments=moments)

    def _depthwise_backward(self, x, dz, kernel, dw, db, ctx, need_dx):
        """dW (and db) into the engine's buffers when trained, and dX when asked for."""
        if dw is not None:
            depthwise.depthwise_backward_weight(
                x, dz, kernel.shape, **self._geometry(), dw=dw, db=db,
                partial=ctx.buffer("partial",
                                   depthwise.depthwise_partial_shape(dz.shape, kernel.shape),
                                   kernel.dtype))
        if not need_dx:
            return None
        return depthwise.depthwise_backward_input(dz, kernel, x.shape, **self._geometry(),
                                                  out=ctx.buffer("dx", x.shape))

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "depth_multiplier": self.depth_multiplier,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                "activation": self.activation, "use_bias": self.use_bias,
                "depthwise_initializer": self.depthwise_initializer,
                "bias_initializer": self.bias_initializer,
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}


class DepthwiseConv2D(_DepthwiseBase):
    """A filter (``depth_multiplier`` filters) of ``kernel_size`` per input channel; the output
    has ``channels * depth_multiplier`` channels. Weights ``kernel`` and ``bias``, as Keras 3
    names them."""

    fusion = "depthwise2d"
    per_sample = True

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, depthwise_regularizer, bias_regularizer, **kwargs)

    def _in_channels(self):
        return self.kernel.shape[2]

    def compute_output_shape(self, input_shape):
        oh, ow = self._output_hw(input_shape)
        return (input_shape[0], oh, ow, input_shape[-1] * self.depth_multiplier)

    def build(self, input_shape):
        self.kernel = self._add_depthwise(input_shape, "kernel")
        self.bias = self._add_bias(input_shape[-1] * self.depth_multiplier)

    def forward(self, x, ctx, training):
        ctx.x = x
        shape = self.compute_output_shape(x.shape)
        # The BatchNormalization reading z may take its statistics' partial sums from here.
        ctx.moments = conv_moments_buffer(ctx, shape)
        z = self._depthwise_forward(x, self.kernel, self.bias,
                                    self._pending_activation(ctx) == "relu",
                                    ctx.buffer("z", shape), ctx.moments)
        return self._activate(z, ctx, relu_fused=True)

    def backward(self, dy, ctx, need_dx):
        dz = self._deactivate(dy, ctx)
        grads = ctx.grads or (None, None)
        return self._depthwise_backward(ctx.x, dz, self.kernel, grads[0],
                                        grads[1] if self.use_bias else None, ctx, need_dx)


class SeparableConv2D(_DepthwiseBase):
    """DepthwiseConv2D without its bias, then a 1x1 convolution to ``filters`` channels with
    the bias and the activation. Weights ``depthwise_kernel``, ``pointwise_kernel`` and
    ``bias``, as Keras 3 names them."""

    per_sample = True

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, pointwise_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, depthwise_regularizer, bias_regularizer, **kwargs)
        self.filters = positive_int(filters, "filters")
        self.pointwise_initializer = initializers.validate(pointwise_initializer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.pointwise_constraint = constraints.get(pointwise_constraint)

    def _in_channels(self):
        return self.depthwise_kernel.shape[2]

    def compute_output_shape(self, input_shape):
        oh, ow = self._output_hw(input_shape)
        return (input_shape[0], oh, ow, self.filters)

    def build(self, input_shape):
        self.depthwise_kernel = self._add_depthwise(input_shape, "depthwise_kernel")
        self.pointwise_kernel = self.add_weight(
            (1, 1, input_shape[-1] * self.depth_multiplier, self.filters),
            self.pointwise_initializer, regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint, name="pointwise_kernel")
        self.bias = self._add_bias(self.filters)

    def forward(self, x, ctx, training):
        ctx.x = x
        hidden = self.compute_output_shape(x.shape)[:3] + self.pointwise_kernel.shape[2:3]
        ctx.hidden = self._depthwise_forward(x, self.depthwise_kernel, None, False,
                                             ctx.buffer("hidden", hidden))
        z = conv.conv2d_forward(ctx.hidden, self.pointwise_kernel, self.bias, (1, 1), "valid",
                                relu=self._pending_activation(ctx) == "relu",
                                out=ctx.buffer("z", self.compute_output_shape(x.shape)))
        return self._activate(z, ctx, relu_fused=True)

    def backward(self, dy, ctx, need_dx):
        dz = self._deactivate(dy, ctx)
        grads = ctx.grads or (None, None, None)
        if grads[1] is not None:
            conv.conv2d_backward_weight(ctx.hidden, dz, self.pointwise_kernel.shape, (1, 1),
                                        "valid", dw=grads[1],
                                        db=grads[2] if self.use_bias else None)
        if grads[0] is None and not need_dx:
            return None
        dhidden = conv.conv2d_backward_input(dz, self.pointwise_kernel, ctx.hidden.shape, (1, 1),
                                             "valid", out=ctx.buffer("dhidden", ctx.hidden.shape))
        return self._depthwise_backward(ctx.x, dhidden, self.depthwise_kernel, grads[0], None,
                                        ctx, need_dx)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "pointwise_initializer": self.pointwise_initializer,
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                "pointwise_constraint": constraints.serialize(self.pointwise_constraint)}
