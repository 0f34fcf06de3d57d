"""Activations as ONNX nodes: every function of ``fastcnn.activations`` with its Keras options,
the activation layers (Activation, ReLU, LeakyReLU, ELU, Softmax) and PReLU.

Pointwise activations keep their input's order of axes; softmax and log_softmax map their
Keras axes to the axes the tensor is held in. Where ONNX has no operator of opset 13 for an
activation (gelu, silu, mish, hard_silu), or its operator rounds differently from fastcnn's
formula (hard_sigmoid: ONNX's x / 6 + 0.5 against fastcnn's relu6(x + 3) / 6), the formula is
written out node by node.
"""
import math

import numpy as np

from .. import layers
from .._ops import activation as activation_ops

_PLAIN = {"sigmoid": "Sigmoid", "tanh": "Tanh", "exponential": "Exp", "softplus": "Softplus",
          "softsign": "Softsign"}


def activate(b, value, name, options):
    """The ONNX name of activation ``name`` (canonical, with Keras's ``options`` for it, the
    defaults filled in by ``activation_ops.check_options``) applied to ``value``, held in
    ``value``'s order."""
    x = value.name
    if name == "linear":
        return x
    if name in _PLAIN:
        return b.node(_PLAIN[name], [x])
    if name in ("softmax", "log_softmax"):
        return _softmax(b, value, name, options["axis"])
    if name == "relu":
        return _relu(b, x, **options)
    if name == "relu6":
        return b.node("Clip", [x, b.scalar(0), b.scalar(6)])
    if name == "leaky_relu":
        return b.node("LeakyRelu", [x], alpha=float(options["negative_slope"]))
    if name == "elu":
        return b.node("Elu", [x], alpha=float(options["alpha"]))
    if name == "selu":
        return b.node("Selu", [x], alpha=activation_ops.SELU_ALPHA,
                      gamma=activation_ops.SELU_SCALE)
    if name == "silu":
        return b.node("Mul", [x, b.node("Sigmoid", [x])])
    if name == "mish":
        return b.node("Mul", [x, b.node("Tanh", [b.node("Softplus", [x])])])
    if name == "hard_sigmoid":
        return _hard_sigmoid(b, x)
    if name == "hard_silu":
        return b.node("Mul", [x, _hard_sigmoid(b, x)])
    if name == "gelu":
        return _gelu(b, x, options["approximate"])
    raise ValueError(f"No ONNX form of activation {name!r}")


def _relu(b, x, negative_slope, max_value, threshold):
    """Keras's relu: min(x, max_value) where x > threshold, else negative_slope * (x -
    threshold); the plain cases as single nodes."""
    if threshold == 0 and negative_slope == 0:
        if max_value is None:
            return b.node("Relu", [x])
        return b.node("Clip", [x, b.scalar(0), b.scalar(max_value)])
    capped = x if max_value is None else b.node("Min", [x, b.scalar(max_value)])
    below = b.node("Mul", [b.node("Sub", [x, b.scalar(threshold)]), b.scalar(negative_slope)])
    return b.node("Where", [b.node("Greater", [x, b.scalar(threshold)]), capped, below])


def _hard_sigmoid(b, x):
    """relu6(x + 3) / 6, in fastcnn's order of operations."""
    shifted = b.node("Add", [x, b.scalar(3)])
    return b.node("Div", [b.node("Clip", [shifted, b.scalar(0), b.scalar(6)]), b.scalar(6)])


def _gelu(b, x, approximate):
    """x / 2 * (1 + erf(x / sqrt(2))), or x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))
    with ``approximate``."""
    if approximate:
        cube = b.node("Mul", [b.node("Mul", [x, x]), x])
        inner = b.node("Add", [x, b.node("Mul", [cube, b.scalar(0.044715)])])
        curve = b.node("Tanh", [b.node("Mul", [inner, b.scalar(math.sqrt(2 / math.pi))])])
    else:
        curve = b.node("Erf", [b.node("Mul", [x, b.scalar(math.sqrt(0.5))])])
    half = b.node("Mul", [x, b.scalar(0.5)])
    return b.node("Mul", [half, b.node("Add", [curve, b.scalar(1)])])


def _softmax(b, value, name, axis):
    """Softmax or log-softmax over Keras ``axis`` (an int or a tuple of ints): ONNX's operator
    for one axis, else the max-shifted formula over the axes together."""
    axes = sorted(value.axis(a) for a in (axis if isinstance(axis, tuple) else (axis,)))
    if len(axes) == 1:
        return b.node("Softmax" if name == "softmax" else "LogSoftmax", [value.name],
                      axis=axes[0])
    shifted = b.node("Sub", [value.name, b.reduce("ReduceMax", value.name, axes)])
    exp = b.node("Exp", [shifted])
    total = b.reduce("ReduceSum", exp, axes)
    if name == "softmax":
        return b.node("Div", [exp, total])
    return b.node("Sub", [shifted, b.node("Log", [total])])


def layer_activation(b, layer, x):
    """x through ``layer.activation`` with the layer's options: the converter of Activation
    and its subclasses, and what Dense and the convolutions apply after their linear part."""
    options = activation_ops.check_options(layer.activation, layer.activation_options)
    return activate(b, x, layer.activation, options), x.perm


def prelu(b, layer, x):
    """x where x > 0, else alpha * x, alpha broadcast over the shared axes."""
    alpha = np.asarray(layer.alpha)[None]
    return b.node("PRelu", [x.name, b.broadcast(alpha, x, "alpha")]), x.perm


CONVERTERS = {layers.Activation: layer_activation, layers.ReLU: layer_activation,
              layers.LeakyReLU: layer_activation, layers.ELU: layer_activation,
              layers.Softmax: layer_activation, layers.PReLU: prelu}
