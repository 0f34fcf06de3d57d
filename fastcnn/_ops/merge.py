"""Merges: checked calls of the kernels that add arrays elementwise and concatenate them along
an axis (the Add and Concatenate layers, and the engine's sum of a tensor's gradients)."""
import math
import numbers

import numpy as np

from .._ext import merge as _merge
from .checks import as_kernel_array, check_apart, check_array, out_buffer, shape_arg
from .threads import effective_n_threads


def _array_list(arrays, name):
    """The arrays of a non-empty list or tuple, checked but not yet converted."""
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(f"Expected {name} to be a list of arrays, received {type(arrays).__name__}")
    if not arrays:
        raise ValueError(f"Expected {name} to hold at least one array, received none")
    return [check_array(a, f"{name}[{i}]") for i, a in enumerate(arrays)]


def _common_float(arrays):
    """float64 when any array is float64, else float32 (the dtype that holds them all exactly,
    as NumPy would promote them, among the kernels' two)."""
    return np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32


def _apart_from(x, out):
    """x, or a copy of it when it overlaps out other than element for element: the kernels read
    each element before writing the one at its place, and no other."""
    if (np.may_share_memory(x, out) and not (x.shape == out.shape and
                                             x.ctypes.data == out.ctypes.data)):
        return x.copy()
    return x


def _axis_arg(axis, ndim):
    """axis as an index in [0, ndim); negative values count from the end."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or not -ndim <= axis < ndim:
        raise ValueError(f"Expected axis to be an int in [{-ndim}, {ndim}) for arrays of rank "
                         f"{ndim}, received axis={axis!r}")
    return int(axis) % ndim


def add_forward(inputs, out=None, n_threads=None):
    """inputs[0] + inputs[1] + ..., elementwise in that order, for arrays of one shape. out may
    be inputs[0] itself (to accumulate)."""
    n_threads = effective_n_threads(n_threads)
    arrays = _array_list(inputs, "inputs")
    shapes = [a.shape for a in arrays]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"Expected inputs of one shape, received shapes {shapes}")
    dtype = _common_float(arrays)
    out = out_buffer(out, shapes[0], dtype, "out")
    flat = [_apart_from(as_kernel_array(a, f"inputs[{i}]", dtype=dtype), out).reshape(-1)
            for i, a in enumerate(arrays)]
    _merge.add_forward(flat, out.reshape(-1), n_threads)
    return out


def _columns(shape, axis):
    """(outer, width): an array of ``shape`` as the rows the kernels concatenate along ``axis``."""
    return math.prod(shape[:axis]), math.prod(shape[axis:])


def concatenate_forward(inputs, axis=-1, out=None, n_threads=None):
    """The inputs joined along ``axis``: arrays of one rank whose other axes agree."""
    n_threads = effective_n_threads(n_threads)
    arrays = _array_list(inputs, "inputs")
    shapes = [a.shape for a in arrays]
    if any(len(s) != len(shapes[0]) for s in shapes) or not shapes[0]:
        raise ValueError(f"Expected inputs of one rank, at least 1, received shapes {shapes}")
    axis = _axis_arg(axis, len(shapes[0]))
    if any(s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:] for s in shapes):
        raise ValueError(f"Expected inputs whose shapes agree except along axis {axis}, received "
                         f"shapes {shapes}")
    dtype = _common_float(arrays)
    out_shape = (*shapes[0][:axis], sum(s[axis] for s in shapes), *shapes[0][axis + 1:])
    out = out_buffer(out, out_shape, dtype, "out")
    parts = [_apart_from(as_kernel_array(a, f"inputs[{i}]", dtype=dtype), out)
             .reshape(_columns(a.shape, axis)) for i, a in enumerate(arrays)]
    _merge.concatenate_forward(parts, out.reshape(_columns(out_shape, axis)), n_threads)
    return out


def concatenate_backward(dy, sizes, axis=-1, outs=None, n_threads=None):
    """The gradients of concatenate_forward's inputs, whose sizes along ``axis`` were ``sizes``:
    dy split along ``axis``, a list of C-contiguous arrays (``outs`` when given)."""
    n_threads = effective_n_threads(n_threads)
    dy = check_array(dy, "dy")
    if dy.ndim < 1:
        raise ValueError(f"Expected dy of rank at least 1, received shape {dy.shape}")
    dy = as_kernel_array(dy, "dy")
    axis = _axis_arg(axis, dy.ndim)
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise ValueError(f"Expected sizes to be a non-empty list of ints, received "
                         f"sizes={sizes!r:.200}")
    sizes = shape_arg(sizes, "sizes", len(sizes))
    if sum(sizes) != dy.shape[axis]:
        raise ValueError(f"Expected sizes that add up to dy's {dy.shape[axis]} along axis {axis}, "
                         f"received sizes={sizes}")
    shapes = [(*dy.shape[:axis], size, *dy.shape[axis + 1:]) for size in sizes]
    if outs is None:
        outs = [None] * len(sizes)
    elif not isinstance(outs, (list, tuple)):
        raise TypeError(f"Expected outs to be None or a list of arrays, received "
                        f"{type(outs).__name__}")
    elif len(outs) != len(sizes):
        raise ValueError(f"Expected outs to hold {len(sizes)} arrays, one per size, received "
                         f"{len(outs)}")
    outs = [out_buffer(o, s, dy.dtype, f"outs[{i}]") for i, (o, s) in enumerate(zip(outs, shapes))]
    check_apart({f"outs[{i}]": o for i, o in enumerate(outs)}, {})
    if any(np.may_share_memory(dy, o) for o in outs):
        dy = dy.copy()
    _merge.concatenate_backward(dy.reshape(_columns(dy.shape, axis)),
                                [o.reshape(_columns(o.shape, axis)) for o in outs], n_threads)
    return outs
