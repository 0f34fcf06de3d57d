"""Activation handling shared by layers that end in one, and the activation layers: Activation,
ReLU, LeakyReLU, ELU, Softmax and PReLU."""
import warnings

from .. import activations, initializers, regularizers
from .._ops import activation as activation_ops
from .base import Layer


def normalize_activation(activation):
    """The canonical name (aliases resolved) of an activation given by name (any case), by a
    function of ``fastcnn.activations``, or None (linear)."""
    if activation is None:
        return "linear"
    name = activation.lower() if isinstance(activation, str) else activation
    if callable(activation):
        name = activations.serialize(activation)
    if not isinstance(name, str) or name not in activation_ops.ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; expected one of "
                         f"{activation_ops.ACTIVATIONS}, a function of fastcnn.activations or None")
    return activation_ops.canonical_name(name)


class ActivationMixin:
    """Applies ``self.activation`` (with Keras's ``activation_options`` for it) after a layer's
    linear part, and undoes it in backward.

    The conv and dense kernels fuse relu themselves. Two planner flags on the call's context
    change what is left to do: ``emit_logits`` (a final softmax fused into the loss: return the
    logits) and ``defer_relu_grad`` (the reader of the output applies the relu backward).
    Backward reads the output ``ctx.y``, or for the activations whose derivative it does not
    determine, the input kept as ``ctx.z`` (the layer's own buffer, or its input: no copy).
    """

    activation_options = {}  # Keras's defaults

    def _pending_activation(self, ctx):
        """The activation this call must still apply after its linear part."""
        return "linear" if ctx.emit_logits and self.activation == "softmax" else self.activation

    def _activate(self, z, ctx, relu_fused=False):
        name = self._pending_activation(ctx)
        if name == "linear" or (relu_fused and name == "relu"):
            ctx.y = z
        else:
            ctx.z = z if activation_ops.backward_reads_input(name) else None
            ctx.y = activation_ops.activation_forward(name, z, out=ctx.buffer("y", z.shape),
                                                      **self.activation_options)
        return ctx.y

    def _deactivate(self, dy, ctx):
        name = self._pending_activation(ctx)
        if name == "linear" or (name == "relu" and ctx.defer_relu_grad):
            return dy
        saved = ctx.z if activation_ops.backward_reads_input(name) else ctx.y
        return activation_ops.activation_backward(name, saved, dy, out=ctx.buffer("dz", dy.shape),
                                                  **self.activation_options)


class Activation(ActivationMixin, Layer):
    """Applies an activation function, given by Keras's name or a fastcnn.activations function."""

    fusion = "activation"
    per_sample = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = normalize_activation(activation)

    def _set_options(self, **options):
        """Keras's options of the activation, checked now; left out where they are the defaults.
        The planner's fusions know each activation with its defaults only, so a layer with
        other options is not offered to them."""
        activation_ops.check_options(self.activation, options)
        self.activation_options = {key: value for key, value in options.items()
                                   if value != activation_ops.OPTIONS[self.activation][key]}
        if self.activation_options:
            self.fusion = None

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x, ctx, training):
        return self._activate(x, ctx)

    def backward(self, dy, ctx, need_dx):
        return self._deactivate(dy, ctx) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class _ActivationLayer(Activation):
    """An activation layer of a fixed function with Keras's named options: its config holds the
    options rather than the function."""

    def get_config(self):
        config = super().get_config()
        del config["activation"]
        return config


class ReLU(_ActivationLayer):
    """Keras's rectifier: min(x, max_value) above ``threshold``, ``negative_slope * (x -
    threshold)`` below; all three >= 0."""

    per_sample = True

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__("relu", **kwargs)
        self._set_options(max_value=max_value, negative_slope=negative_slope,
                          threshold=threshold)
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold
        if self.activation_options == {"max_value": 6}:
            # ReLU(6.0), as MobileNets write it, is the relu6 activation, which the planner fuses
            self.activation, self.activation_options, self.fusion = "relu6", {}, "activation"

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(_ActivationLayer):
    """x where x > 0, else negative_slope * x (>= 0; the layer's default 0.3, where the
    ``leaky_relu`` function's is 0.2). Keras 2's name for it, ``alpha``, is taken with Keras 3's
    deprecation warning."""

    per_sample = True

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.",
                          DeprecationWarning, stacklevel=2)
        super().__init__("leaky_relu", **kwargs)
        self._set_options(negative_slope=negative_slope)
        self.negative_slope = negative_slope

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_ActivationLayer):
    """x where x > 0, else alpha * (exp(x) - 1). alpha >= 0: its backward reads the output,
    which for a negative alpha would not tell the two pieces apart (torch refuses that too)."""

    per_sample = True

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__("elu", **kwargs)
        self._set_options(alpha=alpha)
        self.alpha = alpha

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(_ActivationLayer):
    """The softmax over ``axis``: an int, or a list of ints (the softmax over those axes
    together), of the input's axes counting the batch axis, as in Keras."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__("softmax", **kwargs)
        self._set_options(axis=tuple(axis) if isinstance(axis, list) else axis)
        self.axis = axis

    def compute_output_shape(self, input_shape):
        axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        if any(not -len(input_shape) <= a < len(input_shape) for a in axes):
            raise ValueError(f"Expected axis within the {len(input_shape)} axes of the input of "
                             f"shape {tuple(input_shape)}, received axis={self.axis!r}")
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class PReLU(Layer):
    """x where x > 0, else alpha * x, with alpha trained: one slope per input entry (batch axis
    aside), shared over ``shared_axes`` (for NHWC feature maps, ``shared_axes=[1, 2]`` gives one
    slope per channel)."""

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.validate(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if alpha_constraint is not None and not callable(alpha_constraint):
            raise ValueError(f"Expected alpha_constraint to be None or a callable, received "
                             f"alpha_constraint={alpha_constraint!r}")
        self.alpha_constraint = alpha_constraint
        axes = [] if shared_axes is None else (
            list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes])
        if not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in axes):
            raise ValueError(f"Expected shared_axes to be None, an int or a list of ints >= 1 "
                             f"(axes after the batch axis), received shared_axes={shared_axes!r}")
        self.shared_axes = None if shared_axes is None else axes

    def _alpha_shape(self, input_shape):
        axes = self.shared_axes or []
        if any(a >= len(input_shape) for a in axes):
            raise ValueError(f"Expected shared_axes within the input's axes 1..."
                             f"{len(input_shape) - 1}, received shared_axes={self.shared_axes!r} "
                             f"for an input of shape {tuple(input_shape)}")
        shape = tuple(1 if i in axes else d for i, d in enumerate(input_shape) if i > 0)
        if None in shape:
            raise ValueError(f"Expected the input's unshared axes to be known, received shape "
                             f"{tuple(input_shape)} with shared_axes={self.shared_axes!r}")
        return shape

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"PReLU {self.name!r} expects inputs of shape (batch, ...), "
                             f"received {tuple(input_shape)}")
        shape = self._alpha_shape(input_shape)
        if self.built and shape != self.alpha.shape:
            raise ValueError(f"PReLU {self.name!r} was built for slopes of shape "
                             f"{self.alpha.shape}, received an input of shape "
                             f"{tuple(input_shape)}")
        return input_shape

    def build(self, input_shape):
        self.alpha = self.add_weight(self._alpha_shape(input_shape), self.alpha_initializer,
                                     regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint, name="alpha")

    def forward(self, x, ctx, training):
        ctx.x = x
        return activation_ops.prelu_forward(x, self.alpha, out=ctx.buffer("y", x.shape))

    def backward(self, dy, ctx, need_dx):
        dalpha = (ctx.grads or [None])[0]
        if dalpha is None and not need_dx:
            return None
        dx, _ = activation_ops.prelu_backward(
            ctx.x, self.alpha, dy, dx=ctx.buffer("dx", dy.shape) if need_dx else None,
            dalpha=dalpha, need_dx=need_dx, need_dalpha=dalpha is not None)
        return dx

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": self.alpha_initializer,
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": self.alpha_constraint, "shared_axes": self.shared_axes}
