"""Per-image index maps (flips, translations, zero padding) and per-image affine resampling
(rotations, zooms, fractional shifts): checked calls of ``_ext.remap``."""
import numpy as np

from .._ext import remap as _remap
from .checks import (as_kernel_array, check_apart, check_index_range, choice_arg, distinct_view,
                     out_buffer, real_number, scatter_backward_args)
from .threads import effective_n_threads


def _index_map(index, name, n, size, positions=None):
    """A (n, positions) int32 index map of an axis of ``size`` pixels: each entry -1 (fill) or
    in [0, size). The range is checked before the cast, which would wrap a wider integer into
    range; a broadcast view stays a view."""
    index = np.asarray(index)
    if index.dtype.kind not in "iu":
        raise TypeError(f"Expected {name} to hold integers, received dtype {index.dtype}")
    if index.ndim != 2 or index.shape[0] != n or positions not in (None, index.shape[1]):
        expected = f"({n}, {'positions' if positions is None else positions})"
        raise ValueError(f"Expected {name} of shape {expected} (batch, positions), received "
                         f"shape {index.shape}")
    check_index_range(index.shape, name)
    values = distinct_view(index)
    outside = (values < -1) | (values >= size)
    if outside.any():
        b, i = np.argwhere(outside)[0]
        raise ValueError(f"Expected {name} to hold -1 or indices in [0, {size}): {name}[{b}, {i}] "
                         f"= {values[b, i]} is outside [-1, {size})")
    return index.astype(np.int32, copy=False)


def remap2d_forward(x, rows, cols, fill_value=0.0, out=None, n_threads=None):
    """out[b, i, j] = x[b, rows[b, i], cols[b, j]] for NHWC x, or fill_value where an index is
    -1. The (N, OH) and (N, OW) int32 index maps may be broadcast views."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x", 4)
    fill_value = real_number(fill_value, "fill_value")
    rows = _index_map(rows, "rows", x.shape[0], x.shape[1])
    cols = _index_map(cols, "cols", x.shape[0], x.shape[2])
    shape = (x.shape[0], rows.shape[1], cols.shape[1], x.shape[3])
    check_index_range(shape, "out")
    out = out_buffer(out, shape, x.dtype, "out")
    check_apart({"out": out}, {"x": x, "rows": rows, "cols": cols})
    _remap.remap2d_forward(x, rows, cols, fill_value, out, n_threads)
    return out


def remap2d_backward(dy, rows, cols, input_shape, out=None, n_threads=None):
    """The adjoint of remap2d_forward: each gradient goes back to the pixel it was read from."""
    n_threads = effective_n_threads(n_threads)
    input_shape, dy = scatter_backward_args(dy, input_shape)
    rows = _index_map(rows, "rows", input_shape[0], input_shape[1], dy.shape[1])
    cols = _index_map(cols, "cols", input_shape[0], input_shape[2], dy.shape[2])
    dx = out_buffer(out, input_shape, dy.dtype, "out")
    check_apart({"out": dx}, {"dy": dy, "rows": rows, "cols": cols})
    _remap.remap2d_backward(dy, rows, cols, dx, n_threads)
    return dx


FILL_MODES = ("constant", "nearest", "reflect", "wrap")  # in the order of the kernels' codes
AFFINE_INTERPOLATIONS = ("nearest", "bilinear")
# Transform coefficients beyond this would carry coordinates past what the kernels' int64 pixel
# indices hold exactly; no augmentation comes near it.
TRANSFORM_LIMIT = 1e6


def _affine_args(transforms, n, fill_mode, interpolation):
    """(transforms as (n, 6) float64, fill mode code, bilinear): each row a0 a1 a2 b0 b1 b2 maps
    output (row i, column j) to input column a0*j + a1*i + a2 and row b0*j + b1*i + b2."""
    choice_arg(fill_mode, FILL_MODES, "fill_mode")
    choice_arg(interpolation, AFFINE_INTERPOLATIONS, "interpolation")
    transforms = np.asarray(transforms)
    if transforms.dtype.kind not in "fiu" or transforms.shape != (n, 6):
        raise ValueError(f"Expected transforms of shape ({n}, 6) holding real numbers, received "
                         f"shape {transforms.shape} and dtype {transforms.dtype}")
    transforms = transforms.astype(np.float64, copy=False)
    if not np.all(np.abs(transforms) <= TRANSFORM_LIMIT):  # also refuses NaN
        raise ValueError(f"Expected finite transforms within +-{TRANSFORM_LIMIT:g}, received "
                         f"{transforms[~(np.abs(transforms) <= TRANSFORM_LIMIT)][:3]}")
    return transforms, FILL_MODES.index(fill_mode), interpolation == "bilinear"


def affine2d_forward(x, transforms, fill_mode="reflect", interpolation="bilinear", fill_value=0.0,
                     out=None, n_threads=None):
    """Each NHWC image x[b] resampled through the affine map transforms[b] (see _affine_args),
    as keras.ops.image.affine_transform does with TensorFlow; out has x's shape."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x", 4)
    transforms, mode, bilinear = _affine_args(transforms, x.shape[0], fill_mode, interpolation)
    fill_value = real_number(fill_value, "fill_value")
    out = out_buffer(out, x.shape, x.dtype, "out")
    check_apart({"out": out}, {"x": x, "transforms": transforms})
    _remap.affine2d_forward(x, transforms, mode, bilinear, fill_value, out, n_threads)
    return out


def affine2d_backward(dy, transforms, fill_mode="reflect", interpolation="bilinear", out=None,
                      n_threads=None):
    """The adjoint of affine2d_forward: the gradient with respect to x."""
    n_threads = effective_n_threads(n_threads)
    dy = as_kernel_array(dy, "dy", 4)
    transforms, mode, bilinear = _affine_args(transforms, dy.shape[0], fill_mode, interpolation)
    dx = out_buffer(out, dy.shape, dy.dtype, "out")
    check_apart({"out": dx}, {"dy": dy, "transforms": transforms})
    _remap.affine2d_backward(dy, transforms, mode, bilinear, dx, n_threads)
    return dx
