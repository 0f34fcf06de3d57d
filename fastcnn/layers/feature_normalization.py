"""Normalization: Keras's preprocessing layer that standardises features with a mean and
variance given, or learned from data by ``adapt``.

The map is one affine per kept position, ``(x - mean) / max(sqrt(variance), 1e-7)`` (or its
inverse, ``mean + x * max(sqrt(variance), 1e-7)``), run by the intensity kernel (the per-channel
``x * scale + shift`` of Rescaling): the input is viewed so that the kept axes, a contiguous
block from the first kept axis to the last, become the kernel's channels (when nothing follows
them) or its images (one coefficient each).

``adapt`` streams: each batch's count, mean and sum of squared deviations are computed in
float64 and merged into the running ones with Chan's parallel update, so the data need not fit
in memory (an array is read in chunks, a uint8 array or a memmap is never copied whole).
"""
import math
import numbers

import numpy as np

from .._ops import intensity
from ..arguments import short_tuple
from ..config import EPSILON
from .base import Layer

ADAPT_CHUNK = 1 << 22  # values per chunk when adapting to one array


def _axis_arg(axis):
    if axis is None:
        return ()
    items = (axis,) if isinstance(axis, numbers.Integral) else axis
    try:
        items = short_tuple(items, "axis")
    except TypeError:
        items = None
    if items is None or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                                for a in items):
        raise ValueError(f"Expected axis to be an int, a tuple of ints or None, received "
                         f"axis={axis!r}")
    return tuple(int(a) for a in items)


def _batch_moments(x, reduce):
    """(count, mean, sum of squared deviations) of x over the axes ``reduce``, in float64."""
    count = math.prod(x.shape[d] for d in reduce)
    mean = np.mean(x, axis=reduce, dtype=np.float64, keepdims=True)
    m2 = np.sum(np.square(x - mean), axis=reduce, dtype=np.float64)
    return count, mean.reshape(m2.shape), m2


def _merge(state, batch):
    """Chan's parallel update of (count, mean, M2) with a batch's."""
    if state is None or state[0] == 0:
        return batch
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = state, batch
    if n_b == 0:
        return state
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + np.square(delta) * (n_a * n_b / n)


def _x_of(batch):
    """The inputs of a batch: x of (x, y) or (x, y, sample_weight)."""
    if not isinstance(batch, tuple):
        return batch
    if not batch:
        raise ValueError("Expected batches x, (x, y) or (x, y, sample_weight), received ()")
    return batch[0]


class Normalization(Layer):
    """Standardise inputs per index of the ``axis`` axes (None: one mean and variance for
    everything), as keras.layers.Normalization does. ``mean`` and ``variance``, given together,
    broadcast to the kept axes (aligned from the right); otherwise ``adapt(data)`` learns them
    into the non-trainable weights ``mean``, ``variance`` (and ``count``, kept for Keras's weight
    list). ``invert=True`` maps normalised values back."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axis_arg(axis)
        if (mean is None) != (variance is None):
            raise ValueError(f"Expected mean and variance to be given together, received "
                             f"mean={mean!r:.100} and variance={variance!r:.100}")
        if mean is not None:
            for name, value in (("mean", mean), ("variance", variance)):
                a = np.asarray(value)
                if a.dtype.kind not in "fiu" or not np.all(np.isfinite(a)):
                    raise ValueError(f"Expected {name} to hold finite numbers, received "
                                     f"{value!r:.100}")
            if np.shape(mean) != np.shape(variance):
                raise ValueError(f"Expected mean and variance of one shape, received shapes "
                                 f"{np.shape(mean)} and {np.shape(variance)}")
            if np.ndim(mean) > len(self.axis):
                raise ValueError(f"Expected mean of rank at most {len(self.axis)} (the number "
                                 f"of axes in axis={self.axis}), received shape "
                                 f"{np.shape(mean)}")
            if np.any(np.asarray(variance) < 0):
                raise ValueError("Expected variance >= 0")
        self.input_mean = mean
        self.input_variance = variance
        self.invert = bool(invert)

    # -- shapes ----------------------------------------------------------------------------
    def _kept(self, input_shape):
        """The kept axes (sorted, non-negative) of inputs of ``input_shape``, with known sizes."""
        rank = len(input_shape)
        if any(not -rank <= a < rank for a in self.axis):
            raise ValueError(f"Normalization {self.name!r}: expected axis values in "
                             f"[-{rank}, {rank}) for inputs of shape {tuple(input_shape)}, "
                             f"received axis={self.axis}")
        keep = tuple(sorted({a % rank for a in self.axis}))
        if any(input_shape[d] is None for d in keep):
            raise ValueError(f"Normalization {self.name!r}: expected the kept axes {keep} of "
                             f"the inputs to have known sizes, received {tuple(input_shape)}")
        return keep

    def compute_output_shape(self, input_shape):
        keep = self._kept(input_shape)
        if self.built:
            built = self._build_shape
            if keep and (len(input_shape) != len(built)
                         or any(input_shape[d] != built[d] for d in keep)):
                raise ValueError(f"Normalization {self.name!r} was built for inputs of shape "
                                 f"{tuple(built)} (axis={self.axis}), received "
                                 f"{tuple(input_shape)}")
        return input_shape

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        keep = self._kept(input_shape)
        shape = tuple(input_shape[d] for d in keep)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(shape, "zeros", trainable=False, name="mean")
            self.adapt_variance = self.add_weight(shape, "ones", trainable=False, name="variance")
            self.count = self.add_weight((), "zeros", trainable=False, name="count")
            return
        pair = []
        for name, value in (("mean", self.input_mean), ("variance", self.input_variance)):
            a = np.asarray(value, np.float32)
            try:
                pair.append(np.broadcast_to(a.reshape((1,) * (len(shape) - a.ndim) + a.shape),
                                            shape).copy())
            except ValueError:
                raise ValueError(f"Normalization {self.name!r}: expected {name} to broadcast "
                                 f"to the kept axes' shape {shape}, received shape "
                                 f"{a.shape}") from None
        self.fixed_mean, self.fixed_variance = pair

    # -- the affine map --------------------------------------------------------------------
    def _statistics(self):
        if self.input_mean is None:
            return self.adapt_mean, self.adapt_variance
        return self.fixed_mean, self.fixed_variance

    def _layout(self, shape):
        """(x's kernel view shape, and the kernel's (images, channels) coefficient shape, and
        how many times the kept block repeats along the images)."""
        keep = self._kept(shape)
        if not keep:
            return (1, math.prod(shape), 1), None
        lo, hi = keep[0], keep[-1]
        before, block, after = (math.prod(shape[:lo]), math.prod(shape[lo:hi + 1]),
                                math.prod(shape[hi + 1:]))
        if after == 1:
            return (1, before, block), None
        return (before * block, after, 1), before

    def _coefficients(self, shape):
        """(view shape, scale, shift) of the kernel call for inputs of ``shape``."""
        self.compute_output_shape(shape)
        keep = self._kept(shape)
        mean, variance = (a.astype(np.float64) for a in self._statistics())
        std = np.maximum(np.sqrt(variance), EPSILON)
        scale, shift = (std, mean) if self.invert else (1.0 / std, -mean / std)
        view, repeats = self._layout(shape)
        if keep:
            # The kept block from the first kept axis to the last, with any axes between them
            # that are not kept broadcast.
            lo, hi = keep[0], keep[-1]
            block = tuple(shape[d] if d in keep else 1 for d in range(lo, hi + 1))
            scale, shift = (np.broadcast_to(a.reshape(block), shape[lo:hi + 1]).ravel()
                            for a in (scale, shift))
        scale, shift = (np.asarray(a, np.float32).reshape(1, -1) for a in (scale, shift))
        if repeats is not None:
            scale, shift = (np.tile(a, repeats).reshape(-1, 1) for a in (scale, shift))
        return view, scale, shift

    def forward(self, x, ctx, training):
        view, scale, shift = self._coefficients(x.shape)
        ctx.view, ctx.scale = view, scale
        out = ctx.buffer("y", x.shape)
        intensity.intensity_forward(x.reshape(view), scale, shift, out=out.reshape(view))
        return out

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        dx = ctx.buffer("dx", dy.shape)
        intensity.intensity_forward(dy.reshape(ctx.view), ctx.scale, 0.0,
                                    out=dx.reshape(ctx.view))
        return dx

    # -- adapt -----------------------------------------------------------------------------
    def _batches(self, data):
        """The input batches of ``data``: an array (read in chunks along its first axis unless
        that axis is kept), a Dataset or PyDataset, or an iterable of batches."""
        from ..utils.dataset import Dataset
        from ..utils.py_dataset import PyDataset
        if isinstance(data, np.ndarray):
            keep = self._kept(data.shape)
            if data.ndim == 0 or 0 in keep:
                yield data
                return
            rows = max(1, ADAPT_CHUNK // max(1, math.prod(data.shape[1:])))
            for start in range(0, len(data), rows):
                yield data[start:start + rows]
            return
        if isinstance(data, Dataset) and data.batch_size is None:
            data = data.batch(128)
        if isinstance(data, PyDataset):
            for i in range(len(data)):
                yield _x_of(data[i])
            return
        if isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
            raise TypeError(f"Expected adapt data to be an array, a Dataset or PyDataset, or an "
                            f"iterable of batches, received {type(data).__name__}")
        for batch in data:
            yield _x_of(batch)

    def adapt(self, data):
        """Learn the mean and variance of ``data`` over every axis but ``axis`` (see
        _batches for what ``data`` may be; each element of a dataset or iterable is a batch)."""
        if self.input_mean is not None:
            raise ValueError(f"Normalization {self.name!r} was given mean and variance; adapt() "
                             f"learns them only for a layer made without")
        state, reduce = None, None
        for batch in self._batches(data):
            x = np.asarray(batch)
            if x.dtype.kind not in "fiub":
                raise TypeError(f"Expected batches of real numbers to adapt to, received dtype "
                                f"{x.dtype}")
            if reduce is None:
                if not self.built:
                    self.build(x.shape)
                keep = self._kept(x.shape)
                reduce = tuple(d for d in range(x.ndim) if d not in keep)
            self.compute_output_shape(x.shape)
            state = _merge(state, _batch_moments(x, reduce))
        if state is None or state[0] == 0:
            raise ValueError(f"Expected data with at least one sample to adapt to, received "
                             f"{type(data).__name__} with none")
        count, mean, m2 = state
        self.adapt_mean[...] = mean
        self.adapt_variance[...] = m2 / count

    def get_config(self):
        def listed(value):
            return None if value is None else np.asarray(value).tolist()
        return {**super().get_config(), "axis": list(self.axis), "invert": self.invert,
                "mean": listed(self.input_mean), "variance": listed(self.input_variance)}
