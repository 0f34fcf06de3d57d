"""The layers that resample images: UpSampling2D, Resizing, CenterCrop and RandomCrop (which at
inference resizes as CenterCrop does when it cannot crop).

fastcnn resizes as TensorFlow does (see ``_ops.resize``), each output row reading one or two
input rows with weights worked out in float32 from (i + 0.5) * (H / OH). ONNX's Resize works
its source coordinates out as (i + 0.5) / (OH / H), which rounds otherwise for most sizes: the
bilinear weights differ in their last bits, and a nearest row can land on the next one. So a
resize is written as fastcnn's own taps and weights (``_ops.resize.resize_maps``, for the
input's size, which must be known): per axis, a Gather of the rows each output row reads,
times their weights, summed. Those taps also carry Resizing's crop_to_aspect_ratio, and its
pad_to_aspect_ratio through one fill cell padded before the axis.

UpSampling2D runs as ONNX's Resize where that is exact, for any input size: "nearest" by whole
factors (the cell floor(i / factor), "asymmetric" with "floor"), and "bilinear" by powers of two,
whose source coordinates (i + 0.5) / factor - 0.5 both compute exactly.
"""
import numpy as np

from .. import layers
from .._ops.resize import resize_maps
from .builder import channels_first
from .structure import crop


def _known_size(layer, x):
    height, width = x.shape[1:3]
    if height is None or width is None:
        raise ValueError(f"{type(layer).__name__} {layer.name!r}: exporting it to ONNX needs "
                         f"the input's height and width known, received input shape {x.shape}")
    return height, width


def _resample_axis(b, name, axis, rank, axis_map, fill_value):
    """Tensor ``name`` resampled along ONNX ``axis`` by one ``resize.AxisMap``: the sum over
    its taps t of weights[:, t] * name[taps[:, t]] (tap -1: the fill value)."""
    taps, weights = axis_map.taps, axis_map.weights[np.dtype(np.float32)]
    if np.any(taps < 0):
        pads = [0] * (2 * rank)
        pads[axis] = 1
        name = b.node("Pad", [name, b.ints(pads, "fill_cell"), b.scalar(fill_value)])
        taps = taps + 1
    total = None
    broadcast = (-1,) + (1,) * (rank - 1 - axis)
    for t in range(taps.shape[1]):
        term = b.node("Gather", [name, b.ints(taps[:, t], "taps")], axis=axis)
        if np.any(weights[:, t] != 1):
            term = b.node("Mul", [term, b.const(weights[:, t].reshape(broadcast), "weights")])
        total = term if total is None else b.node("Add", [total, term])
    return total


def resize(b, layer, x, size, interpolation, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_value=0.0):
    """``layer``'s input x resized to ``size`` as ``_ops.resize.resize2d_forward`` resizes it,
    in x's order of axes: rows, then columns."""
    rows, cols = resize_maps(_known_size(layer, x), tuple(size), interpolation,
                             crop_to_aspect_ratio, pad_to_aspect_ratio)
    y = x.name
    for keras_axis, axis_map in ((1, rows), (2, cols)):
        y = _resample_axis(b, y, x.axis(keras_axis), x.rank, axis_map, fill_value)
    return y, x.perm


def up_sampling2d(b, layer, x):
    if layer.interpolation == "nearest":
        attributes = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                      "nearest_mode": "floor"}
    elif all(s & (s - 1) == 0 for s in layer.size):
        attributes = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    else:
        height, width = _known_size(layer, x)
        return resize(b, layer, x, (height * layer.size[0], width * layer.size[1]), "bilinear")
    scales = b.const([1.0, 1.0, *layer.size], "scales")
    return b.node("Resize", [b.channels_first(x), "", scales], **attributes), \
        channels_first(x.rank)


def resizing(b, layer, x):
    return resize(b, layer, x, (layer.height, layer.width), layer.interpolation,
                  layer.crop_to_aspect_ratio, layer.pad_to_aspect_ratio, layer.fill_value)


def _smart_resize(b, layer, x):
    """Keras's smart_resize: the largest centred window of the target's aspect ratio, resized
    bilinearly."""
    return resize(b, layer, x, (layer.height, layer.width), "bilinear", crop_to_aspect_ratio=True)


def center_crop(b, layer, x):
    """The centred window when the image is at least that large, else smart_resize; which one
    depends on the input's size, so that size must be known."""
    height, width = _known_size(layer, x)
    if height < layer.height or width < layer.width:
        return _smart_resize(b, layer, x)
    top, left = (height - layer.height) // 2, (width - layer.width) // 2
    return crop(b, x, {1: (top, top + layer.height), 2: (left, left + layer.width)}), x.perm


def random_crop(b, layer, x):
    """At inference fastcnn's RandomCrop always smart-resizes."""
    return _smart_resize(b, layer, x)


CONVERTERS = {layers.UpSampling2D: up_sampling2d, layers.Resizing: resizing,
              layers.CenterCrop: center_crop, layers.RandomCrop: random_crop}
