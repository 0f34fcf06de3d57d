"""Batch normalisation: checked calls of ``_ext.normalization``."""
import numpy as np

from .._ext import normalization as _normalization
from .checks import as_kernel_array, check_apart, out_buffer
from .threads import effective_n_threads

BATCHNORM_CHUNK = 8192  # values per partial column sum; fixed, so sums ignore the thread count


def batchnorm_partial_shape(x_shape):
    """The shape of the kernels' ``partial`` operand for inputs of ``x_shape`` (channels last):
    the float64 scratch they sum each chunk's column sums into. A layer that calls them every
    batch allocates it once from this."""
    c = x_shape[-1]
    rows = int(np.prod(x_shape[:-1], dtype=np.int64))
    return (max(1, -(-rows // max(1, BATCHNORM_CHUNK // max(c, 1)))), 2, c)


def _batchnorm_operands(x, **per_channel):
    """x as a kernel array in gamma's dtype, and its channel count (the last axis). The
    per-channel arrays are checked, never copied: the kernels read or write them in place."""
    x = as_kernel_array(x, "x", dtype=getattr(per_channel["gamma"], "dtype", None))
    if x.ndim < 2:
        raise ValueError(f"Expected x of shape (batch, ..., channels), received shape {x.shape}")
    c = x.shape[-1]
    for name, a in per_channel.items():
        if not (isinstance(a, np.ndarray) and a.shape == (c,) and a.dtype == x.dtype
                and a.flags.c_contiguous):
            raise ValueError(f"Expected {name} to be a contiguous {x.dtype} array of shape ({c},), "
                             f"received {getattr(a, 'shape', None)} {getattr(a, 'dtype', type(a))}")
    return x, c


def batchnorm_forward_training(x, gamma, beta, moving_mean, moving_var, momentum, epsilon,
                               out=None, mean=None, inv_std=None, partial=None, n_threads=None):
    """Normalise each channel (the last axis) of x with the batch's mean and biased variance,
    and move the moving statistics in place. Returns (out, mean, inv_std) for the backward pass.
    """
    n_threads = effective_n_threads(n_threads)
    x, c = _batchnorm_operands(x, gamma=gamma, beta=beta, moving_mean=moving_mean,
                               moving_var=moving_var)
    out = out_buffer(out, x.shape, x.dtype, "out")
    mean = out_buffer(mean, (c,), x.dtype, "mean")
    inv_std = out_buffer(inv_std, (c,), x.dtype, "inv_std")
    partial = out_buffer(partial, batchnorm_partial_shape(x.shape), np.float64, "partial")
    check_apart({"out": out, "mean": mean, "inv_std": inv_std, "partial": partial,
                 "moving_mean": moving_mean, "moving_var": moving_var},
                {"x": x, "gamma": gamma, "beta": beta})
    _normalization.batchnorm_forward_training(
        x.reshape(-1, c), gamma, beta, moving_mean, moving_var, out.reshape(-1, c), mean, inv_std,
        partial, momentum, epsilon, n_threads)
    return out, mean, inv_std


def batchnorm_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon, out=None,
                                inv_std=None, n_threads=None):
    """Normalise each channel of x with the moving statistics. Returns (out, inv_std)."""
    n_threads = effective_n_threads(n_threads)
    x, c = _batchnorm_operands(x, gamma=gamma, beta=beta, moving_mean=moving_mean,
                               moving_var=moving_var)
    out = out_buffer(out, x.shape, x.dtype, "out")
    inv_std = out_buffer(inv_std, (c,), x.dtype, "inv_std")
    check_apart({"out": out, "inv_std": inv_std}, {"x": x, "gamma": gamma, "beta": beta,
                                                   "moving_mean": moving_mean,
                                                   "moving_var": moving_var})
    _normalization.batchnorm_forward_inference(x.reshape(-1, c), gamma, beta, moving_mean,
                                               moving_var, out.reshape(-1, c), inv_std, epsilon,
                                               n_threads)
    return out, inv_std


def batchnorm_backward(x, dy, gamma, mean, inv_std, batch_stats, dgamma, dbeta, need_dx=True,
                       out=None, partial=None, n_threads=None):
    """Fill dgamma and dbeta; return dx (None unless need_dx). ``batch_stats`` says whether the
    forward pass normalised with the batch's statistics or with constant moving ones."""
    n_threads = effective_n_threads(n_threads)
    x, c = _batchnorm_operands(x, gamma=gamma, mean=mean, inv_std=inv_std, dgamma=dgamma,
                               dbeta=dbeta)
    dy = as_kernel_array(dy, "dy", x.ndim, x.dtype)
    if dy.shape != x.shape:
        raise ValueError(f"Expected dy of shape {x.shape}, received {dy.shape}")
    dx = out_buffer(out, x.shape, x.dtype, "dx") if need_dx else None
    partial = out_buffer(partial, batchnorm_partial_shape(x.shape), np.float64, "partial")
    check_apart({"dx": dx, "dgamma": dgamma, "dbeta": dbeta, "partial": partial},
                {"x": x, "dy": dy, "gamma": gamma, "mean": mean, "inv_std": inv_std})
    _normalization.batchnorm_backward(x.reshape(-1, c), dy.reshape(-1, c), gamma, mean, inv_std,
                                      None if dx is None else dx.reshape(-1, c), dgamma, dbeta,
                                      partial, batch_stats, n_threads)
    return dx
