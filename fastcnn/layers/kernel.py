"""What Dense and Conv2D share: a kernel, an optional bias and an activation."""
from .. import initializers, regularizers
from .activation import ActivationMixin, normalize_activation
from .base import Layer


class KernelLayer(ActivationMixin, Layer):
    """Base of the layers that compute ``activation(x * kernel + bias)``: the constructor
    arguments they share, their weights and the config of those arguments."""

    def _init_kernel_args(self, activation, use_bias, kernel_initializer, bias_initializer,
                          kernel_regularizer):
        # Each subclass calls this after checking its own arguments, as Keras checks them.
        self.activation = normalize_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.validate(kernel_initializer)
        self.bias_initializer = initializers.validate(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def _add_kernel_and_bias(self, kernel_shape):
        """The kernel, then a bias with one entry per output channel (the kernel's last axis)."""
        self.kernel = self.add_weight(kernel_shape, self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, name="kernel")
        self.bias = (self.add_weight(kernel_shape[-1:], self.bias_initializer, name="bias")
                     if self.use_bias else None)

    def _weight_grads(self, ctx):
        """(dkernel, dbias) buffers for backward: the engine's, or None when not trained."""
        grads = ctx.grads or (None, None)
        return grads[0], (grads[1] if self.use_bias else None)

    def _kernel_config(self):
        return {"activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer,
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer)}
