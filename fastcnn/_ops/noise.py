"""Spatial dropout and Gaussian noise: checked calls of ``_ext.noise``."""
import numbers
import sys

from .._ext import noise as _noise
from .checks import as_kernel_array, check_apart, out_buffer
from .dropout import dropout_args
from .threads import effective_n_threads


def _channels(x, name):
    """x (N, ..., C) as (N, S, C)."""
    if x.ndim < 2:
        raise ValueError(f"Expected {name} of shape (batch, ..., channels), received shape "
                         f"{x.shape}")
    return x.reshape(x.shape[0], -1, x.shape[-1])


def spatial_dropout_forward(x, seed, rate, out=None, keep=None, n_threads=None):
    """Drop whole channels (the last axis) of each sample with probability ``rate`` (a mask
    drawn from ``seed``) and scale the rest by 1 / (1 - rate). Returns (out, keep), keep the
    (N, C) factors for the backward pass. ``out`` may be x itself."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x")
    x3 = _channels(x, "x")
    seed, rate, _ = dropout_args((seed, rate))
    out = out_buffer(out, x.shape, x.dtype, "out")
    keep = out_buffer(keep, (x3.shape[0], x3.shape[2]), x.dtype, "keep")
    check_apart({"out": out, "keep": keep}, {"x": x}, may_equal={("out", "x")})
    _noise.spatial_dropout_forward(x3, seed, rate, out.reshape(x3.shape), keep, n_threads)
    return out, keep


def spatial_dropout_backward(dy, keep, out=None, n_threads=None):
    """dy times the forward's per-(sample, channel) factors ``keep``."""
    n_threads = effective_n_threads(n_threads)
    dy = as_kernel_array(dy, "dy")
    dy3 = _channels(dy, "dy")
    keep = as_kernel_array(keep, "keep", dtype=dy.dtype, shape=(dy3.shape[0], dy3.shape[2]))
    dx = out_buffer(out, dy.shape, dy.dtype, "out")
    check_apart({"out": dx}, {"dy": dy, "keep": keep}, may_equal={("out", "dy")})
    _noise.spatial_dropout_backward(dy3, keep, dx.reshape(dy3.shape), n_threads)
    return dx


def _noise_operands(x, name, seed, stddev, out):
    """The flat operands of a Gaussian kernel; out may be x itself."""
    x = as_kernel_array(x, name)
    seed, _, _ = dropout_args((seed, 0.0))
    # written so that NaN, the infinities and ints beyond a float fail
    if (isinstance(stddev, bool) or not isinstance(stddev, numbers.Real)
            or not 0 <= stddev <= sys.float_info.max):
        raise ValueError(f"Expected stddev to be a finite number >= 0, received stddev={stddev!r}")
    out = out_buffer(out, x.shape, x.dtype, "out")
    check_apart({"out": out}, {name: x}, may_equal={("out", name)})
    return x.reshape(-1), seed, float(stddev), out


def gaussian_noise_forward(x, seed, stddev, out=None, n_threads=None):
    """x plus normal noise of standard deviation ``stddev`` drawn from ``seed``. The gradient
    through it is dy itself."""
    n_threads = effective_n_threads(n_threads)
    x, seed, stddev, out = _noise_operands(x, "x", seed, stddev, out)
    _noise.gaussian_noise_forward(x, seed, stddev, out.reshape(-1), n_threads)
    return out


def gaussian_dropout_forward(x, seed, stddev, out=None, n_threads=None):
    """x times normal noise of mean 1 and standard deviation ``stddev`` drawn from ``seed``."""
    n_threads = effective_n_threads(n_threads)
    x, seed, stddev, out = _noise_operands(x, "x", seed, stddev, out)
    _noise.gaussian_dropout_forward(x, seed, stddev, out.reshape(-1), n_threads)
    return out


def gaussian_dropout_backward(dy, seed, stddev, out=None, n_threads=None):
    """The gradient through gaussian_dropout_forward with the same seed and stddev."""
    n_threads = effective_n_threads(n_threads)
    dy, seed, stddev, dx = _noise_operands(dy, "dy", seed, stddev, out)
    _noise.gaussian_dropout_backward(dy, seed, stddev, dx.reshape(-1), n_threads)
    return dx
