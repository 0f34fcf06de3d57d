"""Shape ops: NumPy views or single copies, each with the gradient that routes ``dy`` back to
the places its values came from (scatter-adds where a value is read several times)."""
import builtins
import numbers
import sys

import numpy as np

from ..engine.tensor import KerasTensor
from .._ops.checks import check_memory
from ..arguments import one_of, short_tuple
from .core import (Op, Spec, broadcast_shapes, fits_in_memory, normalize_axis, recordable,
                   spec_of)


def _known(shape, what):
    if None in shape:
        raise ValueError(f"{what} needs sizes known while tracing, received shape {shape}")
    return shape


ARRAY_OBJECT_BYTES = sys.getsizeof(np.empty(0))  # what each piece of a split costs at least


def _index_ok(n):
    return isinstance(n, (numbers.Integral, np.integer)) and not isinstance(n, bool)


class _Reshape(Op):
    """``new_shape``'s None on an axis stands for the input's size there (a symbolic batch),
    its -1 for what the other sizes leave."""

    def __init__(self, new_shape):
        self.new_shape = tuple(None if d is None else int(d) for d in new_shape)
        if self.new_shape.count(-1) > 1 or any(d is not None and d < -1 for d in self.new_shape):
            raise ValueError(f"Expected sizes >= 0, None or one -1 in the new shape, received "
                             f"{new_shape!r:.100}")

    def _copied(self, shape):
        """The axes whose None copies the input's size."""
        copied = [i for i, d in enumerate(self.new_shape) if d is None]
        if copied and copied[-1] >= len(shape):
            raise ValueError(f"Cannot reshape {shape} into {self.new_shape}: None stands for the "
                             "input's size on that axis")
        return copied

    def compute(self, x):
        shape = np.shape(x)
        copied = self._copied(shape)
        return np.reshape(x, tuple(shape[i] if i in copied else d
                                   for i, d in enumerate(self.new_shape)))

    def spec(self, x):
        copied = self._copied(x.shape)
        dims = [x.shape[i] if i in copied else d for i, d in enumerate(self.new_shape)]
        rest = [d for i, d in enumerate(x.shape) if i not in copied]
        given = [d for i, d in enumerate(self.new_shape) if i not in copied and d != -1]
        if None in rest:  # sizes not known while tracing: what -1 stands for is not either
            return Spec(tuple(None if d == -1 else d for d in dims), x.dtype)
        total, kept = int(np.prod(rest)), int(np.prod(given))
        if -1 in dims:
            if kept == 0 or total % kept:
                raise ValueError(f"Cannot reshape {x.shape} into {self.new_shape}")
            dims[dims.index(-1)] = total // kept
        elif total != kept:
            raise ValueError(f"Cannot reshape {x.shape} into {self.new_shape}")
        return Spec(tuple(dims), x.dtype)

    def gradients(self, dy, xs, y, needed):
        return [np.reshape(dy, np.shape(xs[0]))]


@recordable
def reshape(x, newshape):
    return _Reshape(newshape)(x)


class _Transpose(Op):
    def __init__(self, axes):
        self.axes = None if axes is None else short_tuple(axes, "axes")

    def _perm(self, ndim):
        perm = tuple(range(ndim))[::-1] if self.axes is None else self.axes
        if sorted(a % builtins.max(ndim, 1) for a in perm) != list(range(ndim)):
            raise ValueError(f"Expected axes to be a permutation of range({ndim}), received "
                             f"axes={self.axes!r}")
        return tuple(a % ndim for a in perm)

    def compute(self, x):
        return np.transpose(x, self._perm(np.ndim(x)))

    def spec(self, x):
        return Spec(tuple(x.shape[a] for a in self._perm(len(x.shape))), x.dtype)

    def gradients(self, dy, xs, y, needed):
        return [np.transpose(dy, np.argsort(self._perm(np.ndim(xs[0]))))]


@recordable
def transpose(x, axes=None):
    return _Transpose(axes)(x)


@recordable
def swapaxes(x, axis1, axis2):
    ndim = len(spec_of(x).shape)
    perm = list(range(ndim))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return transpose(x, perm)


class _Regroup(Op):
    """expand_dims or squeeze: ``fn(x, axes)``, the same data in ``target`` shape."""

    def __init__(self, fn, axes, target):
        self.fn, self.axes, self.target = fn, axes, target

    def compute(self, x):
        return self.fn(np.asarray(x), self.axes)

    def spec(self, x):
        return Spec(self.target, x.dtype)

    def gradients(self, dy, xs, y, needed):
        return [np.reshape(dy, np.shape(xs[0]))]


@recordable
def expand_dims(x, axis):
    shape = spec_of(x).shape
    count = 1 if _index_ok(axis) else len(axis)
    axes = normalize_axis(axis, len(shape) + count)
    out = list(shape)
    for a in axes:
        out.insert(a, 1)
    return _Regroup(np.expand_dims, axes, tuple(out))(x)


@recordable
def squeeze(x, axis=None):
    shape = spec_of(x).shape
    axes = normalize_axis(axis, len(shape)) if axis is not None else tuple(
        i for i, d in enumerate(shape) if d == 1)
    for a in axes:
        if shape[a] != 1:
            raise ValueError(f"Cannot squeeze axis {a} of size {shape[a]} in shape {shape}")
    return _Regroup(np.squeeze, axes, tuple(d for i, d in enumerate(shape) if i not in axes))(x)


class _Concatenate(Op):
    def __init__(self, axis):
        self.axis = axis

    def compute(self, *xs):
        return np.concatenate(xs, axis=self.axis)

    def spec(self, *specs):
        ndim = len(specs[0].shape)
        (a,) = normalize_axis(self.axis, ndim)
        out = list(specs[0].shape)
        for s in specs[1:]:
            if len(s.shape) != ndim or any(i != a and p is not None and q is not None and p != q
                                          for i, (p, q) in enumerate(zip(out, s.shape))):
                raise ValueError(f"Expected shapes equal but on axis {self.axis}, received "
                                 f"{[x.shape for x in specs]}")
        sizes = [s.shape[a] for s in specs]
        out[a] = None if None in sizes else builtins.sum(sizes)
        return Spec(tuple(out), np.result_type(*(s.dtype for s in specs)))

    def gradients(self, dy, xs, y, needed):
        a = self.axis % dy.ndim
        bounds = np.cumsum([np.shape(x)[a] for x in xs])[:-1]
        return np.split(dy, bounds, axis=a)


def _tensor_list(xs):
    """The tensors of ``xs`` (a list, or an array whose rows are unpacked as Keras's unstacks
    a tensor), checked before they are unpacked."""
    return fits_in_memory(xs) if isinstance(xs, np.ndarray) else xs


@recordable
def concatenate(xs, axis=0):
    return _Concatenate(axis)(*_tensor_list(xs))


class _Stack(Op):
    def __init__(self, axis):
        self.axis = axis

    def compute(self, *xs):
        return np.stack(xs, axis=self.axis)

    def spec(self, *specs):
        shape = specs[0].shape
        (a,) = normalize_axis(self.axis, len(shape) + 1)
        return Spec(shape[:a] + (len(specs),) + shape[a:],
                    np.result_type(*(s.dtype for s in specs)))

    def gradients(self, dy, xs, y, needed):
        a = self.axis % dy.ndim
        return [np.take(dy, i, axis=a) for i in range(len(xs))]


@recordable
def stack(x, axis=0):
    return _Stack(axis)(*_tensor_list(x))


class _Split(Op):
    def __init__(self, indices_or_sections, axis):
        self.sections, self.axis = indices_or_sections, axis

    def _bounds(self, size):
        if _index_ok(self.sections):
            if self.sections < 1:
                raise ValueError(f"Expected indices_or_sections to be a positive int or a list "
                                 f"of indices, received {self.sections}")
            if size is None or size % self.sections:
                raise ValueError(f"Expected a size divisible by {self.sections} on axis "
                                 f"{self.axis}, received {size}")
            # An empty axis splits into any number of empty pieces: each is an array object.
            check_memory([("the pieces", ARRAY_OBJECT_BYTES * self.sections)], "the split")
            step = size // self.sections
            return [step * i for i in range(1, self.sections)]
        check_memory([("the pieces", ARRAY_OBJECT_BYTES * (len(self.sections) + 1))], "the split")
        return list(self.sections)

    def compute(self, x):
        return np.split(x, self._bounds(np.shape(x)[self.axis]), axis=self.axis)

    def spec(self, x):
        (a,) = normalize_axis(self.axis, len(x.shape))
        size = x.shape[a]
        edges = [0, *self._bounds(size), size]
        return [Spec(x.shape[:a] + (None if size is None else builtins.min(end, size)
                                    - builtins.min(start, size),) + x.shape[a + 1:], x.dtype)
                for start, end in zip(edges[:-1], edges[1:])]

    def gradients(self, dy, xs, y, needed):
        return [np.concatenate(dy, axis=self.axis)]


@recordable
def split(x, indices_or_sections, axis=0):
    return _Split(indices_or_sections, axis)(x)


class _Tile(Op):
    def __init__(self, repeats):
        self.repeats = (repeats,) if _index_ok(repeats) else short_tuple(repeats, "repeats")

    def compute(self, x):
        return np.tile(x, self.repeats)

    def spec(self, x):
        ndim = builtins.max(len(x.shape), len(self.repeats))
        shape = (1,) * (ndim - len(x.shape)) + x.shape
        reps = (1,) * (ndim - len(self.repeats)) + self.repeats
        return Spec(tuple(None if d is None else d * r for d, r in zip(shape, reps)), x.dtype)

    def gradients(self, dy, xs, y, needed):
        x = np.asarray(xs[0])
        shape = (1,) * (dy.ndim - x.ndim) + x.shape
        reps = (1,) * (dy.ndim - len(self.repeats)) + self.repeats
        split_shape = [v for r, d in zip(reps, shape) for v in (r, d)]
        g = dy.reshape(split_shape).sum(axis=tuple(range(0, 2 * dy.ndim, 2)))
        return [g.reshape(x.shape)]


@recordable
def tile(x, repeats):
    return _Tile(repeats)(x)


class _Repeat(Op):
    def __init__(self, repeats, axis):
        self.repeats, self.axis = repeats, axis

    def compute(self, x):
        return np.repeat(x, self.repeats, axis=self.axis)

    def spec(self, x):
        if self.axis is None:
            n = None if None in x.shape else int(np.prod(x.shape))
            return Spec((None if n is None else
                         builtins.sum(np.broadcast_to(self.repeats, (n,))),), x.dtype)
        (a,) = normalize_axis(self.axis, len(x.shape))
        size = x.shape[a]
        total = None if size is None else int(np.sum(np.broadcast_to(self.repeats, (size,))))
        return Spec(x.shape[:a] + (total,) + x.shape[a + 1:], x.dtype)

    def gradients(self, dy, xs, y, needed):
        x = np.asarray(xs[0])
        axis = 0 if self.axis is None else self.axis % x.ndim
        size = x.size if self.axis is None else x.shape[axis]
        reps = np.broadcast_to(self.repeats, (size,))
        starts = np.concatenate([[0], np.cumsum(reps)[:-1]])
        g = np.add.reduceat(dy, starts, axis=axis) if dy.shape[axis] else np.zeros_like(x)
        g = np.where(np.expand_dims(reps, tuple(i for i in range(g.ndim) if i != axis))
                     == 0, 0, g) if g.size else g
        return [g.reshape(x.shape)]


@recordable
def repeat(x, repeats, axis=None):
    return _Repeat(repeats, axis)(x)


class _Pad(Op):
    def __init__(self, pad_width, mode, constant_values):
        self.pad_width, self.mode, self.constant_values = pad_width, mode, constant_values

    def _width(self, ndim):
        if np.size(self.pad_width) > 2 * max(ndim, 1):  # before a conversion of a vast view
            raise ValueError(f"Expected pad_width to hold at most one (before, after) pair per "
                             f"axis ({ndim}), received shape {np.shape(self.pad_width)}")
        return np.broadcast_to(np.asarray(self.pad_width, np.int64), (ndim, 2))

    def compute(self, x):
        kwargs = {"constant_values": self.constant_values} if self.mode == "constant" else {}
        return np.pad(x, self._width(np.ndim(x)), mode=self.mode, **kwargs)

    def spec(self, x):
        width = self._width(len(x.shape))
        return Spec(tuple(None if d is None else d + int(a) + int(b)
                          for d, (a, b) in zip(x.shape, width)), x.dtype)

    def gradients(self, dy, xs, y, needed):
        if self.mode != "constant":
            raise NotImplementedError(f"pad has a gradient in mode 'constant' only, received "
                                      f"mode={self.mode!r}")
        width = self._width(dy.ndim)
        return [dy[tuple(slice(int(a), dy.shape[i] - int(b)) for i, (a, b) in enumerate(width))]]


@recordable
def pad(x, pad_width, mode="constant", constant_values=None):
    one_of(mode, ("constant", "edge", "reflect", "symmetric"), "mode")
    if constant_values is not None and mode != "constant":
        raise ValueError("Expected constant_values only with mode='constant'")
    return _Pad(pad_width, mode, 0 if constant_values is None else constant_values)(x)


class _Cast(Op):
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def compute(self, x):
        return np.asarray(x).astype(self.dtype)

    def spec(self, x):
        return Spec(x.shape, self.dtype)

    def gradients(self, dy, xs, y, needed):
        if self.dtype.kind != "f":
            return [None]
        return [dy.astype(np.asarray(xs[0]).dtype)]


@recordable
def cast(x, dtype):
    return _Cast(dtype)(x)


def shape(x):
    """The shape as a tuple; None where a symbolic tensor's size is not known while tracing."""
    return tuple(spec_of(x).shape)


def ndim(x):
    return len(spec_of(x).shape)


def size(x):
    return int(np.prod(_known(spec_of(x).shape, "size")))


class _GetItem(Op):
    def __init__(self, key):
        self.key = key

    def compute(self, x):
        return np.array(np.asarray(x)[self.key])

    def spec(self, x):
        key = self.key if isinstance(self.key, tuple) else (self.key,)
        if builtins.any(isinstance(k, KerasTensor) for k in key):
            raise TypeError("Expected slicing by numbers, slices, None, Ellipsis or arrays: a "
                            "symbolic index cannot be traced; use ops.take")
        # Sizes known: index a stand-in array. Unknown sizes stay unknown where a full slice
        # keeps them, which a stand-in of size 1 on those axes tells.
        sample = np.zeros(tuple(1 if d is None else d for d in x.shape), np.int8)
        marker = np.zeros(tuple(2 if d is None else d for d in x.shape), np.int8)
        out1, out2 = sample[self.key].shape, marker[self.key].shape
        return Spec(tuple(None if a != b else a for a, b in zip(out1, out2)), x.dtype)

    def gradients(self, dy, xs, y, needed):
        x = np.asarray(xs[0])
        g = np.zeros(x.shape, dy.dtype)
        np.add.at(g, self.key, dy)
        return [g]


@recordable
def getitem(x, key):
    return _GetItem(key)(x)


class _Take(Op):
    def __init__(self, axis):
        self.axis = axis

    def compute(self, x, indices):
        return np.take(x, np.asarray(indices, np.int64), axis=self.axis)

    def spec(self, x, indices):
        if self.axis is None:
            return Spec(indices.shape, x.dtype)
        (a,) = normalize_axis(self.axis, len(x.shape))
        return Spec(x.shape[:a] + indices.shape + x.shape[a + 1:], x.dtype)

    def gradients(self, dy, xs, y, needed):
        x, indices = np.asarray(xs[0]), np.asarray(xs[1], np.int64)
        if self.axis is None:
            g = np.zeros(x.size, dy.dtype)
            np.add.at(g, indices.reshape(-1) % x.size, dy.reshape(-1))
            return [g.reshape(x.shape), None]
        a = self.axis % x.ndim
        g = np.zeros(x.shape, dy.dtype)
        moved = np.moveaxis(g, a, 0)
        dy_moved = dy.reshape(x.shape[:a] + (indices.size,) + x.shape[a + 1:])
        np.add.at(moved, indices.reshape(-1) % x.shape[a], np.moveaxis(dy_moved, a, 0))
        return [g, None]


@recordable
def take(x, indices, axis=None):
    return _Take(axis)(x, indices)


class _TakeAlongAxis(Op):
    def __init__(self, axis):
        self.axis = axis

    def compute(self, x, indices):
        return np.take_along_axis(np.asarray(x), np.asarray(indices, np.int64), axis=self.axis)

    def spec(self, x, indices):
        (a,) = normalize_axis(self.axis, len(x.shape))
        batch = broadcast_shapes(x.shape[:a] + (1,) + x.shape[a + 1:],
                                 indices.shape[:a] + (1,) + indices.shape[a + 1:])
        return Spec(batch[:a] + (indices.shape[a],) + batch[a + 1:], x.dtype)

    def gradients(self, dy, xs, y, needed):
        x, indices = np.asarray(xs[0]), np.asarray(xs[1], np.int64)
        a = self.axis % x.ndim
        index = list(np.ix_(*[np.arange(d) for d in dy.shape]))
        index[a] = np.broadcast_to(indices, dy.shape) % x.shape[a]
        g = np.zeros(np.broadcast_shapes(x.shape, dy.shape[:a] + (x.shape[a],)
                                         + dy.shape[a + 1:]), dy.dtype)
        np.add.at(g, tuple(index), dy)
        return [g, None]


@recordable
def take_along_axis(x, indices, axis=None):
    if not _index_ok(axis):
        raise ValueError(f"Expected an int axis for take_along_axis, received axis={axis!r:.100}")
    return _TakeAlongAxis(axis)(x, indices)


class _ZerosLike(Op):
    def __init__(self, fill, dtype):
        self.fill, self.dtype = fill, dtype

    def compute(self, x):
        return np.full(np.shape(x), self.fill, self.dtype or np.asarray(x).dtype)

    def spec(self, x):
        return Spec(x.shape, self.dtype or x.dtype)


@recordable
def zeros_like(x, dtype=None):
    return _ZerosLike(0, dtype)(x)


@recordable
def ones_like(x, dtype=None):
    return _ZerosLike(1, dtype)(x)


@recordable
def full_like(x, fill_value, dtype=None):
    return _ZerosLike(fill_value, dtype)(x)
