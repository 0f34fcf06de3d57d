"""What Dense and the convolutions share: a kernel, an optional bias and an activation, with
their initializers, regularizers and constraints, and an activity regularizer."""
from .. import constraints, initializers, regularizers
from .activation import ActivationMixin, normalize_activation
from .base import Layer


class KernelLayer(ActivationMixin, Layer):
    """Base of the layers that compute ``activation(x * kernel + bias)``: the constructor
    arguments they share, their weights and the config of those arguments.

    Besides the arguments each subclass names, they take Keras's keywords
    ``bias_regularizer``, ``activity_regularizer`` (a penalty on the layer's output, divided by
    the batch size), ``kernel_constraint`` and ``bias_constraint``."""

    def __init__(self, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def _init_kernel_args(self, activation, use_bias, kernel_initializer, bias_initializer,
                          kernel_regularizer):
        # Each subclass calls this after checking its own arguments, as Keras checks them.
        self.activation = normalize_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.validate(kernel_initializer)
        self.bias_initializer = initializers.validate(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def _add_kernel_and_bias(self, kernel_shape, bias_size=None):
        """The kernel, then a bias of ``bias_size`` entries, by default one per output channel
        (the kernel's last axis)."""
        self.kernel = self.add_weight(kernel_shape, self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self.bias = (self.add_weight((bias_size or kernel_shape[-1],), self.bias_initializer,
                                     regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint, name="bias")
                     if self.use_bias else None)

    def _weight_grads(self, ctx):
        """(dkernel, dbias) buffers for backward: the engine's, or None when not trained."""
        grads = ctx.grads or (None, None)
        return grads[0], (grads[1] if self.use_bias else None)

    def _kernel_config(self):
        return {"activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer,
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}
