"""Resizing NHWC images as Keras does: checked calls of ``_ext.resize`` and their geometry.

Keras 3 (TensorFlow backend) resizes with ``tf.image.resize(antialias=False)``: half-pixel
centres, with the arithmetic in float32. Output row i of a resize from H to OH rows reads
- bilinear: source y = (i + 0.5) * (H / OH) - 0.5, the rows max(floor(y), 0) and
  min(ceil(y), H - 1) with weights 1 - (y - floor(y)) and y - floor(y);
- nearest: the row min(floor((i + 0.5) * (H / OH)), H - 1) (TensorFlow's HalfPixelScalerForNN,
  also torch's "nearest-exact"), so an integer upsampling factor repeats each row.
``crop_to_aspect_ratio`` first takes the centred window of the target's aspect ratio, and
``pad_to_aspect_ratio`` first pads with ``fill_value`` to it, both with Keras's rounding.

The weights of each geometry are worked out once (memoized), with the transposed maps the
backward pass gathers through.
"""
from typing import NamedTuple

import numpy as np

from .._ext import resize as _resize
from .checks import (as_kernel_array, check_apart, check_index_range, choice_arg, input_shape_arg,
                     memoized, out_buffer, positive_int, real_number)
from .threads import effective_n_threads

INTERPOLATIONS = ("bilinear", "nearest")


class AxisMap(NamedTuple):
    """One axis of a resize: taps (out, T) into the input (-1: the fill value), their weights,
    and the transposed map (CSR): input r is read by outputs sources[starts[r]:starts[r + 1]]
    with the weights shares[...]. Weights are kept per dtype: {np.float32: ..., np.float64: ...}."""
    taps: np.ndarray
    weights: dict
    starts: np.ndarray
    sources: np.ndarray
    shares: dict


def _frozen(a):
    a.setflags(write=False)
    return a


def _by_dtype(weights32):
    return {np.dtype(np.float32): _frozen(weights32),
            np.dtype(np.float64): _frozen(weights32.astype(np.float64))}


def _axis_map(size, out_size, interpolation, start, length, pad):
    """The taps of an axis that resamples the ``length`` cells from ``start``, with ``pad``
    fill cells on each side, to ``out_size`` cells."""
    virtual = length + 2 * pad
    scale = np.float32(virtual) / np.float32(out_size)
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale
    if interpolation == "nearest":
        cells = np.minimum(np.floor(centres), virtual - 1).astype(np.int64)[:, None]
        weights = np.ones((out_size, 1), np.float32)
    else:
        source = centres - np.float32(0.5)
        below = np.floor(source)
        lerp = source - below
        cells = np.stack([np.maximum(below, 0), np.minimum(np.ceil(source), virtual - 1)],
                         axis=1).astype(np.int64)
        weights = np.stack([np.float32(1) - lerp, lerp], axis=1).astype(np.float32)
    inside = (cells >= pad) & (cells < pad + length)
    taps = np.where(inside, cells - pad + start, -1).astype(np.int32)
    # The transposed map: every (input cell, output, weight) that passes a gradient, by cell
    # then output, so that the backward kernel sums each cell's terms in a fixed order.
    outputs = np.broadcast_to(np.arange(out_size)[:, None], taps.shape).ravel()
    keep = (taps.ravel() >= 0) & (weights.ravel() != 0)
    cells_kept, outputs_kept = taps.ravel()[keep], outputs[keep]
    order = np.lexsort((outputs_kept, cells_kept))
    starts = np.zeros(size + 1, np.int32)
    np.cumsum(np.bincount(cells_kept, minlength=size), out=starts[1:])
    return AxisMap(_frozen(np.ascontiguousarray(taps)), _by_dtype(np.ascontiguousarray(weights)),
                   _frozen(starts), _frozen(outputs_kept[order].astype(np.int32)),
                   _by_dtype(weights.ravel()[keep][order]))


def _aspect_window(height, width, target_h, target_w, crop, pad):
    """(start, length, pad) of each axis: Keras's centred crop to, or padding to, the target's
    aspect ratio (float32 arithmetic, truncated as Keras's TensorFlow backend does)."""
    f32 = np.float32
    if crop:
        crop_h = max(min(height, int(f32(width * target_h) / f32(target_w))), 1)
        crop_w = max(min(width, int(f32(height * target_w) / f32(target_h))), 1)
        return ((int(f32(height - crop_h) / f32(2)), crop_h, 0),
                (int(f32(width - crop_w) / f32(2)), crop_w, 0))
    if pad:
        pad_h = max(height, int(f32(width * target_h) / f32(target_w)))
        pad_w = max(width, int(f32(height * target_w) / f32(target_h)))
        return ((0, height, int(f32(pad_h - height) / f32(2))),
                (0, width, int(f32(pad_w - width) / f32(2))))
    return (0, height, 0), (0, width, 0)


@memoized
def resize_maps(input_hw, size, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio):
    """(rows, cols): the AxisMaps of a resize of images of ``input_hw`` to ``size``."""
    choice_arg(interpolation, INTERPOLATIONS, "interpolation")
    if not isinstance(size, tuple) or len(size) != 2:
        raise ValueError(f"Expected size to be a pair (height, width), received size={size!r}")
    target_h, target_w = positive_int(size[0], "height"), positive_int(size[1], "width")
    height = positive_int(input_hw[0], "input height")
    width = positive_int(input_hw[1], "input width")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Expected at most one of crop_to_aspect_ratio and pad_to_aspect_ratio "
                         "to be True, received both")
    (top, rows, pad_h), (left, cols, pad_w) = _aspect_window(
        height, width, target_h, target_w, bool(crop_to_aspect_ratio), bool(pad_to_aspect_ratio))
    return (_axis_map(height, target_h, interpolation, top, rows, pad_h),
            _axis_map(width, target_w, interpolation, left, cols, pad_w))


def resize2d_forward(x, size, interpolation="bilinear", crop_to_aspect_ratio=False,
                     pad_to_aspect_ratio=False, fill_value=0.0, out=None, n_threads=None):
    """NHWC images x resized to ``size`` = (height, width) as keras.ops.image.resize does (with
    antialias=False); ``fill_value`` fills the padding of pad_to_aspect_ratio."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x", 4)
    fill_value = real_number(fill_value, "fill_value")
    size = tuple(size) if isinstance(size, (tuple, list)) else size
    rows, cols = resize_maps(x.shape[1:3], size, interpolation, crop_to_aspect_ratio,
                             pad_to_aspect_ratio)
    shape = (x.shape[0], len(rows.taps), len(cols.taps), x.shape[3])
    check_index_range(shape, "out")
    out = out_buffer(out, shape, x.dtype, "out")
    check_apart({"out": out}, {"x": x})
    _resize.resize2d_forward(x, rows.taps, rows.weights[x.dtype], cols.taps, cols.weights[x.dtype],
                             fill_value, out, n_threads)
    return out


def resize2d_backward(dy, input_shape, size, interpolation="bilinear", crop_to_aspect_ratio=False,
                      pad_to_aspect_ratio=False, out=None, n_threads=None):
    """The gradient of resize2d_forward with respect to x, of NHWC ``input_shape``."""
    n_threads = effective_n_threads(n_threads)
    input_shape = input_shape_arg(input_shape)
    dy = as_kernel_array(dy, "dy", 4)
    size = tuple(size) if isinstance(size, (tuple, list)) else size
    rows, cols = resize_maps(input_shape[1:3], size, interpolation, crop_to_aspect_ratio,
                             pad_to_aspect_ratio)
    expected = (input_shape[0], len(rows.taps), len(cols.taps), input_shape[3])
    if dy.shape != expected:
        raise ValueError(f"Expected dy of shape {expected} (the resized input_shape), received "
                         f"{dy.shape}")
    dx = out_buffer(out, input_shape, dy.dtype, "out")
    check_apart({"out": dx}, {"dy": dy})
    _resize.resize2d_backward(dy, rows.starts, rows.sources, rows.shares[dy.dtype], cols.starts,
                              cols.sources, cols.shares[dy.dtype], dx, n_threads)
    return dx
