"""Merges: checked calls of the kernels that add arrays elementwise (the engine's sum of a
tensor's gradients), merge broadcast arrays elementwise (Add, Subtract, Multiply, Average,
Maximum, Minimum), transpose an array (Permute: the elementwise kernel's strided copy) and
concatenate arrays along an axis (Concatenate)."""
import math
import numbers

import numpy as np

from .._ext import merge as _merge
from .checks import (as_kernel_array, check_apart, check_array, check_index_range, choice_arg,
                     memoized, out_buffer, shape_arg)
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


ELEMENTWISE_OPS = ("add", "subtract", "multiply", "average", "maximum", "minimum", "divide")


def _c_strides(shape):
    """The element strides of a C-contiguous array of ``shape``."""
    return [math.prod(shape[d + 1:]) for d in range(len(shape))]


def _collapsed(shape, strides):
    """(shape, strides) with the axes of size 1 dropped and neighbouring axes merged wherever
    every input steps through them as through one axis, so that the kernels' last axis is as
    long as it can be (the whole array when no input is broadcast): (r,) and (k, r) intp
    arrays, r >= 1."""
    axes = [d for d, size in enumerate(shape) if size != 1] or [len(shape) - 1]
    dims, steps = [shape[axes[0]]], [[st[axes[0]]] for st in strides]
    for d in axes[1:]:
        if all(s[-1] == st[d] * shape[d] for s, st in zip(steps, strides)):
            dims[-1] *= shape[d]
            for s, st in zip(steps, strides):
                s[-1] = st[d]
        else:
            dims.append(shape[d])
            for s, st in zip(steps, strides):
                s.append(st[d])
    return _frozen(dims), _frozen(steps).reshape(len(strides), len(dims))


def _frozen(values):
    """values as a read-only intp array, which memoized layouts share between calls."""
    a = np.array(values, np.intp)
    a.setflags(write=False)
    return a


@memoized
def broadcast_layout(shapes):
    """(output shape, collapsed shape, strides) of arrays of ``shapes`` (a tuple of shapes)
    broadcast together by NumPy's rules (aligned on their last axes; a size of 1 repeats): the
    kernels' layout, each input C-contiguous and read with stride 0 along the axes it is
    broadcast along. The arrays are shared between calls: read only."""
    # An array would be iterated row by row (a broadcast view of billions of rows, forever).
    if not isinstance(shapes, (tuple, list)) or not all(isinstance(s, (tuple, list))
                                                         for s in shapes):
        raise TypeError(f"Expected shapes to be a tuple of shape tuples, received "
                        f"{type(shapes).__name__}")
    try:
        out_shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"Expected inputs whose shapes broadcast together, received shapes "
                         f"{[tuple(s) for s in shapes]}") from None
    strides = []
    for shape in shapes:
        padded = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
        strides.append([0 if size == 1 else st for size, st in zip(padded, _c_strides(padded))])
    if not out_shape:  # scalars
        return out_shape, _frozen([1]), _frozen([[0]] * len(shapes))
    return (out_shape, *_collapsed(out_shape, strides))


def _elementwise_args(op, inputs):
    choice_arg(op, ELEMENTWISE_OPS, "op")
    arrays = _array_list(inputs, "inputs")
    if op in ("subtract", "divide") and len(arrays) != 2:
        raise ValueError(f"Expected inputs to hold exactly two arrays for op {op!r}, "
                         f"received {len(arrays)}")
    out_shape, shape, strides = broadcast_layout(tuple(a.shape for a in arrays))
    check_index_range(out_shape, "the output", batch_axis=False)
    return arrays, out_shape, shape, strides


def elementwise_forward(op, inputs, out=None, n_threads=None):
    """``op`` of the inputs broadcast together (NumPy's rules), folded left to right as Keras's
    merging layers do: "add", "subtract" (two inputs), "multiply", "average" (the sum over the
    count), "maximum" or "minimum" (NaN wins, as in NumPy), or "divide" (two inputs)."""
    arrays, out_shape, shape, strides = _elementwise_args(op, inputs)
    if op == "add" and all(a.shape == out_shape for a in arrays):
        return add_forward(arrays, out, n_threads)  # the engine's sum, which skips the strides
    n_threads = effective_n_threads(n_threads)
    dtype = _common_float(arrays)
    out = out_buffer(out, out_shape, dtype, "out")
    flat = [as_kernel_array(a, f"inputs[{i}]", dtype=dtype).reshape(-1) for i, a in enumerate(arrays)]
    flat = [x.copy() if np.may_share_memory(x, out) else x for x in flat]
    _merge.elementwise_forward(op, flat, shape, strides, out.reshape(-1), n_threads)
    return out


def elementwise_backward(op, dy, inputs, index, out=None, n_threads=None):
    """The gradient of elementwise_forward's ``inputs[index]``, of that input's shape: dy times
    the derivative, summed over the axes the input was broadcast along. Maximum and Minimum send
    each element's gradient to the first input that holds the extreme value, as TensorFlow's
    gradient of Keras's left-to-right fold does."""
    n_threads = effective_n_threads(n_threads)
    arrays, out_shape, shape, strides = _elementwise_args(op, inputs)
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not (
            0 <= index < len(arrays)):
        raise ValueError(f"Expected index to be an int in [0, {len(arrays)}), received "
                         f"index={index!r}")
    dy = check_array(dy, "dy")
    if dy.shape != out_shape:
        raise ValueError(f"Expected dy of the output's shape {out_shape}, received {dy.shape}")
    dtype = _common_float([dy, *arrays])
    dy = as_kernel_array(dy, "dy", dtype=dtype)
    out = out_buffer(out, arrays[index].shape, dtype, "out")
    flat = [as_kernel_array(a, f"inputs[{i}]", dtype=dtype).reshape(-1) for i, a in enumerate(arrays)]
    flat = [x.copy() if np.may_share_memory(x, out) else x for x in [dy, *flat]]
    _merge.elementwise_backward(op, flat[0].reshape(-1), flat[1:], shape, strides, int(index),
                                out.reshape(-1), n_threads)
    return out


def transpose(x, axes, out=None, n_threads=None):
    """x with its axes reordered as ``axes`` (a permutation of range(x.ndim)), copied into a
    C-contiguous array: the elementwise kernel's strided copy."""
    n_threads = effective_n_threads(n_threads)
    x = check_array(x, "x")
    if (not isinstance(axes, (list, tuple)) or sorted(axes) != list(range(x.ndim))
            or any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes)):
        raise ValueError(f"Expected axes to be a permutation of range({x.ndim}) for x of shape "
                         f"{x.shape}, received axes={axes!r:.200}")
    x = as_kernel_array(x, "x")
    out_shape = tuple(x.shape[a] for a in axes)
    out = out_buffer(out, out_shape, x.dtype, "out")
    check_apart({"out": out}, {"x": x})
    if not out_shape:
        out[...] = x
        return out
    _merge.elementwise_forward("copy", [x.reshape(-1)], *_transpose_layout(x.shape, tuple(axes)),
                               out.reshape(-1), n_threads)
    return out


@memoized
def _transpose_layout(shape, axes):
    """The kernels' (shape, strides) of a C-contiguous array of ``shape`` read as transposed by
    ``axes``; shared between calls: read only."""
    steps = _c_strides(shape)
    return _collapsed(tuple(shape[a] for a in axes), [[steps[a] for a in axes]])
