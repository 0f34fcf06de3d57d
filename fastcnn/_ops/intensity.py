"""Pixel-value maps per image and channel (Rescaling, RandomBrightness, RandomContrast):
checked calls of ``_ext.intensity``. Arrays of any rank >= 2: the first axis holds the images,
the last the channels. ``scale``, ``shift`` and ``gain`` broadcast to (images, channels): a
number, one value per channel, or one per image as an (N, 1) column."""
import numpy as np

from .._ext import intensity as _intensity
from .checks import as_kernel_array, check_apart, out_buffer
from .threads import effective_n_threads


def _images(a, name):
    """``a`` as a kernel array and its (N, P, C) view."""
    a = as_kernel_array(a, name)
    if a.ndim < 2:
        raise ValueError(f"Expected {name} of rank 2 or more (batch, ..., channels), received "
                         f"shape {a.shape}")
    return a, a.reshape(a.shape[0], -1, a.shape[-1])


def _coefficients(value, shape, dtype, name):
    value = np.asarray(value)
    if value.dtype.kind not in "fiub":
        raise TypeError(f"Expected {name} to hold real numbers, received dtype {value.dtype}")
    try:
        value = np.broadcast_to(value.astype(dtype, copy=False), shape)
    except ValueError:
        raise ValueError(f"Expected {name} to broadcast to (images, channels) {shape}, received "
                         f"shape {value.shape}") from None
    if not np.all(np.isfinite(value)):
        raise ValueError(f"Expected {name} to be finite, received {value.ravel()[:4]}")
    return value


def _bounds(low, high):
    low, high = float(low), float(high)
    if not low <= high:
        raise ValueError(f"Expected low <= high, received low={low}, high={high}")
    return low, high


def intensity_forward(x, scale, shift, low=-np.inf, high=np.inf, out=None, n_threads=None):
    """clip(x * scale + shift, low, high) with scale and shift per image and channel."""
    n_threads = effective_n_threads(n_threads)
    x, x3 = _images(x, "x")
    nc = (x3.shape[0], x3.shape[2])
    scale = _coefficients(scale, nc, x.dtype, "scale")
    shift = _coefficients(shift, nc, x.dtype, "shift")
    low, high = _bounds(low, high)
    out = out_buffer(out, x.shape, x.dtype, "out")
    check_apart({"out": out}, {"x": x, "scale": scale, "shift": shift})
    _intensity.intensity_forward(x3, scale, shift, low, high, out.reshape(x3.shape), n_threads)
    return out


def intensity_backward(dy, x, scale, shift, low=-np.inf, high=np.inf, gain=None, out=None,
                       n_threads=None):
    """dy * gain where intensity_forward(x, ...) did not clip, else 0; gain defaults to scale
    (the gradient with respect to x)."""
    n_threads = effective_n_threads(n_threads)
    x, x3 = _images(x, "x")
    dy = as_kernel_array(dy, "dy", dtype=x.dtype, shape=x.shape)
    nc = (x3.shape[0], x3.shape[2])
    scale = _coefficients(scale, nc, x.dtype, "scale")
    shift = _coefficients(shift, nc, x.dtype, "shift")
    gain = scale if gain is None else _coefficients(gain, nc, x.dtype, "gain")
    low, high = _bounds(low, high)
    dx = out_buffer(out, x.shape, x.dtype, "out")
    check_apart({"out": dx}, {"dy": dy, "x": x, "scale": scale, "shift": shift, "gain": gain})
    _intensity.intensity_backward(dy.reshape(x3.shape), x3, scale, shift, low, high, gain,
                                  dx.reshape(x3.shape), n_threads)
    return dx


def channel_means(x, out=None, n_threads=None):
    """(N, C): the mean of each image's channel over every other axis."""
    n_threads = effective_n_threads(n_threads)
    x, x3 = _images(x, "x")
    if x3.shape[1] == 0:
        raise ValueError(f"Expected x with values to average in each image, received shape "
                         f"{x.shape}")
    out = out_buffer(out, (x3.shape[0], x3.shape[2]), x.dtype, "out")
    check_apart({"out": out}, {"x": x})
    _intensity.channel_means(x3, out, n_threads)
    return out
