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

    The conv and dense kernels fuse relu themselves. When the model fuses a final softmax into
    the cross-entropy loss it sets ``emit_logits``, and the layer then returns its logits.
    """

    emit_logits = False
    relu_grad_applied_by_next = False  # set by the model when a MaxPooling2D follows

    def _pending_activation(self):
        """The activation this layer must still apply after its linear part."""
        return "linear" if self.emit_logits and self.activation == "softmax" else self.activation

    def _activate(self, z, relu_fused=False):
        name = self._pending_activation()
        if name == "linear" or (relu_fused and name == "relu"):
            self._y = z
        else:
            self._y = activation_ops.activation_forward(name, z, out=self.workspace.get("y", z.shape))
        return self._y

    def _deactivate(self, dy):
        name = self._pending_activation()
        if name == "linear" or (name == "relu" and self.relu_grad_applied_by_next):
            return dy
        return activation_ops.activation_backward(name, self._y, dy, out=self.workspace.get("dz", dy.shape))


class Activation(ActivationMixin, Layer):
    """Applies an activation function: "relu", "sigmoid", "tanh", "softmax" or "linear"."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = normalize_activation(activation)

    def forward(self, x, training=False):
        return self._activate(x)

    def backward(self, dy, need_dx=True):
        return self._deactivate(dy)

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
