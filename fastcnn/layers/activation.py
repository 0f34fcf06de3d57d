"""Activation handling shared by layers that end in one, and the Activation/ReLU layers."""
from .._ops import activation as activation_ops
from .base import Layer


def normalize_activation(activation):
    name = "linear" if activation is None else activation
    if not isinstance(name, str) or name.lower() not in activation_ops.ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; expected one of "
                         f"{activation_ops.ACTIVATIONS} or None")
    return name.lower()


class ActivationMixin:
    """Applies ``self.activation`` after a layer's linear part, and undoes it in backward.

    The conv and dense kernels fuse relu themselves. Two planner flags on the call's context
    change what is left to do: ``emit_logits`` (a final softmax fused into the loss: return the
    logits) and ``defer_relu_grad`` (the reader of the output applies the relu backward).
    """

    def _pending_activation(self, ctx):
        """The activation this call must still apply after its linear part."""
        return "linear" if ctx.emit_logits and self.activation == "softmax" else self.activation

    def _activate(self, z, ctx, relu_fused=False):
        name = self._pending_activation(ctx)
        if name == "linear" or (relu_fused and name == "relu"):
            ctx.y = z
        else:
            ctx.y = activation_ops.activation_forward(name, z, out=ctx.buffer("y", z.shape))
        return ctx.y

    def _deactivate(self, dy, ctx):
        name = self._pending_activation(ctx)
        if name == "linear" or (name == "relu" and ctx.defer_relu_grad):
            return dy
        return activation_ops.activation_backward(name, ctx.y, dy,
                                                  out=ctx.buffer("dz", dy.shape))


class Activation(ActivationMixin, Layer):
    """Applies an activation function: "relu", "sigmoid", "tanh", "softmax" or "linear"."""

    fusion = "activation"

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = normalize_activation(activation)

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x, ctx, training):
        return self._activate(x, ctx)

    def backward(self, dy, ctx, need_dx):
        return self._deactivate(dy, ctx) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class ReLU(Activation):
    """The rectifier as a layer (Keras's defaults: no cap, no slope, threshold 0)."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        if max_value is not None or negative_slope != 0 or threshold != 0:
            raise ValueError("ReLU supports only max_value=None, negative_slope=0 and threshold=0, "
                             f"received {max_value!r}, {negative_slope!r}, {threshold!r}")
        kwargs.pop("activation", None)
        super().__init__("relu", **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["activation"]
        return config
