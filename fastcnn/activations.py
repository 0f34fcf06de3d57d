"""Activation functions by Keras 3's names and signatures, on NumPy arrays (as ``keras.activations``
on tensors): each returns a new array of the input's floating dtype (float32 for other inputs).
``get``, ``serialize`` and ``deserialize`` map between the functions and their names; any of these
functions, or its name, is a layer's ``activation=``.
"""
import numpy as np

from ._ops import activation as activation_ops

__all__ = ["deserialize", "elu", "exponential", "gelu", "get", "hard_sigmoid", "hard_silu",
           "hard_swish", "leaky_relu", "linear", "log_softmax", "mish", "relu", "relu6", "selu",
           "serialize", "sigmoid", "silu", "softmax", "softplus", "softsign", "swish", "tanh"]


def _apply(name, x, **options):
    # the kernels see at least one axis: a scalar comes back as one
    return activation_ops.activation_forward(name, x, **options).reshape(np.shape(x))


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """min(x, max_value) where x > threshold, else negative_slope * (x - threshold)."""
    return _apply("relu", x, negative_slope=negative_slope, max_value=max_value,
                  threshold=threshold)


def leaky_relu(x, negative_slope=0.2):
    """x where x > 0, else negative_slope * x."""
    return _apply("leaky_relu", x, negative_slope=negative_slope)


def relu6(x):
    """min(max(x, 0), 6)."""
    return _apply("relu6", x)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) over ``axis`` (an int or a sequence of ints)."""
    return _apply("softmax", x, axis=axis)


def log_softmax(x, axis=-1):
    """x - log(sum(exp(x))) over ``axis``."""
    return _apply("log_softmax", x, axis=axis)


def elu(x, alpha=1.0):
    """x where x > 0, else alpha * (exp(x) - 1); alpha >= 0."""
    return _apply("elu", x, alpha=alpha)


def selu(x):
    """scale * elu(x, alpha) with Keras's constants alpha = 1.67326324..., scale = 1.05070098...."""
    return _apply("selu", x)


def gelu(x, approximate=False):
    """x * P(X <= x) for X ~ N(0, 1), or with approximate, its tanh approximation."""
    return _apply("gelu", x, approximate=approximate)


def silu(x):
    """x * sigmoid(x)."""
    return _apply("silu", x)


def softplus(x):
    """log(exp(x) + 1)."""
    return _apply("softplus", x)


def softsign(x):
    """x / (abs(x) + 1)."""
    return _apply("softsign", x)


def tanh(x):
    return _apply("tanh", x)


def sigmoid(x):
    """1 / (1 + exp(-x))."""
    return _apply("sigmoid", x)


def exponential(x):
    return _apply("exponential", x)


def hard_sigmoid(x):
    """relu6(x + 3) / 6: 0 for x <= -3, 1 for x >= 3, x / 6 + 0.5 between."""
    return _apply("hard_sigmoid", x)


def hard_silu(x):
    """x * hard_sigmoid(x)."""
    return _apply("hard_silu", x)


def mish(x):
    """x * tanh(softplus(x))."""
    return _apply("mish", x)


def linear(x):
    """The identity: x itself."""
    return x


swish, hard_swish = silu, hard_silu  # Keras's second names

_BY_NAME = {name: globals()[name] for name in activation_ops.ACTIVATIONS}


def serialize(activation):
    """The name of one of these functions (an alias gives the function's own name)."""
    name = getattr(activation, "__name__", None)
    if _BY_NAME.get(name) is not activation:
        raise ValueError(f"Expected a function of fastcnn.activations, received {activation!r}")
    return name


def deserialize(config):
    """The function of a name that ``serialize`` gives (or an alias)."""
    if not isinstance(config, str) or config not in _BY_NAME:
        raise ValueError(f"Unknown activation {config!r}; expected one of "
                         f"{activation_ops.ACTIVATIONS}")
    return _BY_NAME[config]


def get(identifier):
    """The function of ``identifier``: None (linear), a name, or a callable (returned as is)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret activation function identifier: {identifier!r}")
