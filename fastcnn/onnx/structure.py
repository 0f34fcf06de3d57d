"""Dense and the layers that reshape, reorder, pad, crop or merge tensors, as ONNX nodes.

Dense, Flatten and Reshape read their input in Keras's order of axes (a Flatten after
convolutions must see the channels-last order the Dense after it was trained on). Permute adds
no node: its output is its input held in another order. Padding, cropping and the merges work
in whatever order their inputs are held.
"""
import numpy as np

from .. import layers
from .activations import layer_activation
from .builder import Value, keras_order

_INT64_MAX = np.iinfo(np.int64).max


def dense(b, layer, x):
    """x @ kernel + bias on the last axis, any rank, then the activation."""
    y = b.node("MatMul", [b.keras(x), b.const(layer.kernel, "kernel")])
    if layer.bias is not None:
        y = b.node("Add", [y, b.const(layer.bias, "bias")])
    return layer_activation(b, layer, Value(y, keras_order(x.rank),
                                            layer.compute_output_shape(x.shape)))


def flatten(b, layer, x):
    if x.rank == 2:
        return x.name, x.perm
    return b.node("Flatten", [b.keras(x)], axis=1), keras_order(2)


def reshape(b, layer, x):
    """Each sample to ``target_shape`` in C order; 0 keeps the batch size."""
    shape = b.ints([0, *layer.target_shape], "target_shape")
    return b.node("Reshape", [b.keras(x), shape]), keras_order(len(layer.target_shape) + 1)


def permute(b, layer, x):
    """The same tensor: its axis held at i is the input's Keras axis x.perm[i], which is the
    output's axis dims.index(...) (with the batch axis as 0)."""
    order = (0, *layer.dims)
    return x.name, tuple(order.index(a) for a in x.perm)


def zero_padding2d(b, layer, x):
    (top, bottom), (left, right) = layer.padding
    begins, ends = [0] * x.rank, [0] * x.rank
    begins[x.axis(1)], ends[x.axis(1)] = top, bottom
    begins[x.axis(2)], ends[x.axis(2)] = left, right
    return b.node("Pad", [x.name, b.ints(begins + ends, "pads")]), x.perm


def crop(b, x, windows):
    """x cut to ``windows``: {Keras axis: (start, stop or None for the end)}."""
    axes = list(windows)
    starts = b.ints([windows[a][0] for a in axes], "starts")
    stops = b.ints([_INT64_MAX if windows[a][1] is None else windows[a][1] for a in axes],
                   "ends")
    return b.node("Slice", [x.name, starts, stops, b.ints([x.axis(a) for a in axes], "axes")])


def cropping2d(b, layer, x):
    (top, bottom), (left, right) = layer.cropping
    return crop(b, x, {1: (top, -bottom or None), 2: (left, -right or None)}), x.perm


def _aligned(b, inputs):
    """The inputs' names in one order of axes (the one most of them are held in), those of
    lower rank given axes of size 1 after the batch axis first, as fastcnn broadcasts them;
    and that order."""
    rank = max(v.rank for v in inputs)
    perms = [v.perm for v in inputs if v.rank == rank]
    perm = max(perms, key=perms.count)
    names = []
    for v in inputs:
        if v.rank == rank:
            names.append(b.held(v, perm))
        else:
            axes = b.ints(range(1, 1 + rank - v.rank), "unsqueeze_axes")
            widened = b.node("Unsqueeze", [b.keras(v), axes])
            names.append(widened if perm == keras_order(rank)
                         else b.transpose(widened, keras_order(rank), perm))
    return names, perm


def _folded(op_type):
    """A merge that folds ``op_type`` over its inputs left to right, as fastcnn does."""
    def merge(b, layer, inputs):
        names, perm = _aligned(b, inputs)
        y = names[0]
        for name in names[1:]:
            y = b.node(op_type, [y, name])
        return y, perm
    merge.__name__ = f"merge_{op_type.lower()}"
    return merge


def average(b, layer, inputs):
    """The sum, folded left to right, divided by the number of inputs."""
    total, perm = _folded("Add")(b, layer, inputs)
    return b.node("Div", [total, b.scalar(len(inputs))]), perm


def concatenate(b, layer, inputs):
    names, perm = _aligned(b, inputs)
    held = Value(names[0], perm, inputs[0].shape)
    return b.node("Concat", names, axis=held.axis(layer.axis)), perm


CONVERTERS = {layers.Dense: dense, layers.Flatten: flatten, layers.Reshape: reshape,
              layers.Permute: permute, layers.ZeroPadding2D: zero_padding2d,
              layers.Cropping2D: cropping2d, layers.Add: _folded("Add"),
              layers.Subtract: _folded("Sub"), layers.Multiply: _folded("Mul"),
              layers.Maximum: _folded("Max"), layers.Minimum: _folded("Min"),
              layers.Average: average, layers.Concatenate: concatenate}
