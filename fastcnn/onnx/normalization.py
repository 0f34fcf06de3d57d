"""The normalising and affine layers as ONNX nodes: BatchNormalization (ONNX's inference-mode
BatchNormalization on channels-first tensors, with the moving statistics; runtimes fold it into
the convolution before it), LayerNormalization and GroupNormalization (their statistics per
sample), Normalization and Rescaling (a fixed ``x * scale + shift``)."""
import numpy as np

from .. import layers
from ..config import EPSILON
from .builder import Value, channels_first


def batch_normalization(b, layer, x):
    """(x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta per channel."""
    weights = [b.const(w, name) for w, name in (
        (layer.gamma, "gamma"), (layer.beta, "beta"), (layer.moving_mean, "moving_mean"),
        (layer.moving_variance, "moving_variance"))]
    y = b.node("BatchNormalization", [b.channels_first(x), *weights], epsilon=layer.epsilon)
    return y, channels_first(x.rank)


def _affine(b, x, name, scale, shift, axes, hints=("scale", "shift")):
    """``name`` (a tensor of x's shape, held as x is) * scale + shift, the two constants'
    values spanning Keras ``axes`` of x in C order, repeated along the other axes."""
    shape = [x.shape[a] if a in axes else 1 for a in range(x.rank)]
    scale, shift = (b.broadcast(np.reshape(a, shape), x, hint)
                    for a, hint in zip((scale, shift), hints))
    return b.node("Add", [b.node("Mul", [name, scale]), shift]), x.perm


def layer_normalization(b, layer, x):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta, the biased statistics of each sample
    over the normalised axes, in whatever order x is held. gamma's values run over those axes
    in ascending order, as fastcnn's kernel reads them."""
    axes, _ = layer._axes(x.shape)
    held = [x.axis(a) for a in axes]
    centred = b.node("Sub", [x.name, b.reduce("ReduceMean", x.name, held)])
    variance = b.reduce("ReduceMean", b.node("Mul", [centred, centred]), held)
    inv_std = b.node("Reciprocal", [b.node("Sqrt", [b.node("Add", [variance,
                                                                     b.scalar(layer.epsilon)])])])
    return _affine(b, x, b.node("Mul", [centred, inv_std]), layer.gamma, layer.beta, axes,
                   ("gamma", "beta"))


def group_normalization(b, layer, x):
    """Each sample's group of adjacent channels normalised over its positions and channels:
    the channels-first tensor reshaped to (batch, groups, rest), ONNX's InstanceNormalization
    over rest, reshaped back, then gamma and beta per channel."""
    groups = layer._groups_for(x.shape)
    held = b.channels_first(x)
    grouped = b.node("Reshape", [held, b.ints([0, groups, -1], "grouped_shape")])
    ones, zeros = np.ones(groups, np.float32), np.zeros(groups, np.float32)
    normalised = b.node("InstanceNormalization",
                        [grouped, b.const(ones, "unit_scale"), b.const(zeros, "zero_shift")],
                        epsilon=layer.epsilon)
    restored = b.node("Reshape", [normalised, b.node("Shape", [held])])
    return _affine(b, Value(held, channels_first(x.rank), x.shape), restored, layer.gamma,
                   layer.beta, (x.rank - 1,), ("gamma", "beta"))


def normalization(b, layer, x):
    """(x - mean) / max(sqrt(variance), EPSILON) as ``x * scale + shift``, or its inverse
    ``x * std + mean``: the coefficients worked out as fastcnn's layer works them out, in
    float64, then stored in float32."""
    keep = layer._kept(x.shape)
    mean, variance = (np.asarray(a, np.float64) for a in layer._statistics())
    std = np.maximum(np.sqrt(variance), EPSILON)
    scale, shift = (std, mean) if layer.invert else (1.0 / std, -mean / std)
    return _affine(b, x, x.name, scale, shift, keep)


def rescaling(b, layer, x):
    """x * scale + offset, each a number or one value per channel."""
    per_channel = isinstance(layer.scale, list) or isinstance(layer.offset, list)
    channels = x.shape[-1] if per_channel else 1
    scale, offset = (np.broadcast_to(np.asarray(v, np.float64), (channels,))
                     for v in (layer.scale, layer.offset))
    return _affine(b, x, x.name, scale, offset, (x.rank - 1,) if per_channel else ())


CONVERTERS = {layers.BatchNormalization: batch_normalization,
              layers.LayerNormalization: layer_normalization,
              layers.GroupNormalization: group_normalization,
              layers.Normalization: normalization, layers.Rescaling: rescaling}
