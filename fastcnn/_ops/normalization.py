"""Batch normalisation: checked calls of ``_ext.normalization``."""
import functools
import math
from typing import NamedTuple

import numpy as np

from .._ext import normalization as _normalization
from . import partials
from .checks import as_kernel_array, check_apart, flag, out_buffer, real_number
from .threads import effective_n_threads

BATCHNORM_CHUNK = 8192  # values per partial column sum, at most where the shape allows


@functools.lru_cache(maxsize=256)
def _chunk_rows(sample_shape):
    c = max(sample_shape[-1], 1)
    rows = partials.GRAIN * max(math.prod(sample_shape[:-1]), 1)
    while rows % 2 == 0 and rows * c > BATCHNORM_CHUNK:
        rows //= 2
    return rows


def batchnorm_chunk_rows(x_shape):
    """Rows per chunk of the kernels' partial sums for inputs of ``x_shape`` (batch first,
    channels last): the rows of ``partials.GRAIN`` samples, halved while even and the chunk
    holds more than BATCHNORM_CHUNK values. A power of two of chunks then fills each
    GRAIN-sample unit, so fastcnn.distributed's shares of a batch are whole subtrees of the
    chunks' summation tree (synchronized batch normalisation sums them across processes). It
    depends on the sample's shape alone, never on the batch size or the thread count."""
    return _chunk_rows(tuple(int(d) for d in x_shape[1:]))


def batchnorm_partial_shape(x_shape):
    """The shape of the kernels' ``partial`` operand for inputs of ``x_shape`` (channels last):
    the float64 scratch they sum each chunk's column sums into. A layer that calls them every
    batch allocates it once from this."""
    rows = math.prod(int(d) for d in x_shape[:-1])
    return (-(-rows // batchnorm_chunk_rows(x_shape)), 2, x_shape[-1])


def _across_arg(x, across):
    """``across`` for the training kernels: None, or a callable when x may be a process's share
    of a batch (which may be empty); x has rows unless it is given."""
    if across is not None and not callable(across):
        raise TypeError(f"Expected across to be None or callable, received {across!r}")
    if across is None and x.size == 0:
        raise ValueError(f"Expected x with at least one value, received shape {x.shape}")
    return across


def _batchnorm_operands(x, written=(), **per_channel):
    """x as a kernel array in gamma's dtype, and its channel count (the last axis). The
    per-channel arrays are checked, never copied: the kernels read or write them in place, and
    those named in ``written`` must be writeable."""
    x = as_kernel_array(x, "x", dtype=getattr(per_channel["gamma"], "dtype", None))
    if x.ndim < 2:
        raise ValueError(f"Expected x of shape (batch, ..., channels), received shape {x.shape}")
    c = x.shape[-1]
    for name, a in per_channel.items():
        if not (isinstance(a, np.ndarray) and a.shape == (c,) and a.dtype == x.dtype
                and a.flags.c_contiguous):
            raise ValueError(f"Expected {name} to be a contiguous {x.dtype} array of shape ({c},), "
                             f"received {getattr(a, 'shape', None)} {getattr(a, 'dtype', type(a))}")
        if name in written and not a.flags.writeable:
            raise ValueError(f"Expected {name} to be writeable: the kernel updates it in place")
    return x, c


def _like_x(a, x, name):
    """``a`` (None, or an array of x's shape) as a kernel array of x's dtype."""
    if a is None:
        return None
    a = as_kernel_array(a, name, x.ndim, x.dtype)
    if a.shape != x.shape:
        raise ValueError(f"Expected {name} of shape {x.shape}, received {a.shape}")
    return a


class BatchNormInputGradient(NamedTuple):
    """What a conv's backward needs to make the input gradient of the training batch
    normalisation that read its output, from that normalisation's output gradient
    (conv.conv2d_backward): its forward's input (the conv's output), statistics and relu, its
    weights, and the means of the gradient sums that batchnorm_backward gave as
    ``grad_means``. ``g_given``: the conv gets the gradient of the normalised value instead
    (through the relu, with the gradient's parts added: batchnorm_backward's ``dres``)."""
    x: np.ndarray
    mean: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    grad_means: np.ndarray
    relu: bool
    relu_max: float = None
    g_given: bool = False

    def kernel_args(self, dtype, shape):
        """The checked trailing arguments of the conv kernels for a conv output of ``shape``
        and ``dtype``."""
        c = shape[-1]
        return (as_kernel_array(self.x, "x", dtype=dtype, shape=tuple(shape)),
                *_statistics_args(self, dtype, c),
                as_kernel_array(self.grad_means, "grad_means", dtype=np.float64, shape=(2, c)),
                flag(self.relu, "relu"), _relu_cap(self.relu_max), flag(self.g_given, "g_given"))


class InputBatchNorm(NamedTuple):
    """A training batch normalisation (and its relu) whose output a conv reads, which the conv
    applies to the normalisation's input as it loads each image (conv.conv2d_forward and
    conv2d_backward's ``input_batchnorm``), bit for bit batchnorm_apply: the statistics its
    forward returned, its weights and its relu. ``grad_partial``: None, or the float64 array of
    ``batchnorm_partial_shape`` of the input into which the conv's backward sums the
    normalisation's gradient sums as it writes dX (batchnorm_backward's ``sums_given``)."""
    mean: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    relu: bool
    relu_max: float = None
    grad_partial: np.ndarray = None

    def kernel_args(self, dtype, x_shape, backward=False):
        """The checked ``in_*`` keyword arguments of the conv kernels for an input of
        ``x_shape``; for the backward kernel, with grad_partial, also ``in_partial__k2c`` and
        ``in_chunk_rows``."""
        args = dict(zip(("in_mean", "in_inv_std", "in_gamma", "in_beta"),
                        _statistics_args(self, dtype, x_shape[-1])),
                    in_relu=flag(self.relu, "relu"), in_relu_max=_relu_cap(self.relu_max))
        if backward and self.grad_partial is not None:
            args["in_partial__k2c"] = out_buffer(self.grad_partial,
                                                 batchnorm_partial_shape(x_shape), np.float64,
                                                 "grad_partial")
            args["in_chunk_rows"] = batchnorm_chunk_rows(x_shape)
        return args


def _statistics_args(bn, dtype, c):
    """bn's mean, inv_std, gamma and beta as kernel arrays of ``dtype`` and c entries."""
    return tuple(as_kernel_array(getattr(bn, name), name, dtype=dtype, shape=(c,))
                 for name in ("mean", "inv_std", "gamma", "beta"))


def _relu_cap(relu_max):
    """The kernels' cap of the relu: +inf for none, else a positive number (relu6: 6)."""
    if relu_max is None:
        return np.inf
    cap = float(relu_max)
    if not cap > 0:
        raise ValueError(f"Expected relu_max to be a positive number or None, received "
                         f"{relu_max!r}")
    return cap


def _rows(a, c):
    return None if a is None else a.reshape(-1, c)


def batchnorm_forward_training(x, gamma, beta, moving_mean, moving_var, momentum, epsilon,
                               residual=None, relu=False, relu_max=None, out=None, mean=None,
                               inv_std=None, partial=None, across=None, moments_given=False,
                               normalise=True, n_threads=None):
    """Normalise each channel (the last axis) of x with the batch's mean and biased variance,
    add ``residual`` when given and apply relu (capped at ``relu_max`` unless None) when asked,
    and move the moving statistics in place. Returns (out, mean, inv_std) for the backward
    pass.

    Synchronized over processes: x is one process's share of a batch (no sample for a process
    without one), and ``across`` replaces a 1-D float64 array of per-channel sums and a row
    count, in place, by its total over the processes (see ``_ext.normalization``); the
    statistics are then the whole batch's.

    ``moments_given``: ``partial`` holds x's partial sums already, from the conv that made x
    (``conv.conv2d_forward``'s ``moments``), so that x is read once, to normalise.
    ``normalise=False``: the statistics (and moving ones) alone, and out None: a conv reading the
    output normalises x as it loads it (``InputBatchNorm``)."""
    n_threads = effective_n_threads(n_threads)
    x, c = _batchnorm_operands(x, ("moving_mean", "moving_var"), gamma=gamma, beta=beta,
                               moving_mean=moving_mean, moving_var=moving_var)
    momentum, epsilon = real_number(momentum, "momentum"), real_number(epsilon, "epsilon")
    residual = _like_x(residual, x, "residual")
    out = out_buffer(out, x.shape, x.dtype, "out") if flag(normalise, "normalise") else None
    mean = out_buffer(mean, (c,), x.dtype, "mean")
    inv_std = out_buffer(inv_std, (c,), x.dtype, "inv_std")
    moments_given = flag(moments_given, "moments_given")
    if moments_given and partial is None:
        raise ValueError("Expected partial with moments_given=True: the sums it holds")
    partial = out_buffer(partial, batchnorm_partial_shape(x.shape), np.float64, "partial")
    across = _across_arg(x, across)
    check_apart({"out": out, "mean": mean, "inv_std": inv_std, "partial": partial,
                 "moving_mean": moving_mean, "moving_var": moving_var},
                {"x": x, "residual": residual, "gamma": gamma, "beta": beta})
    _normalization.batchnorm_forward_training(
        x.reshape(-1, c), _rows(residual, c), gamma, beta, moving_mean, moving_var,
        _rows(out, c), mean, inv_std, partial, batchnorm_chunk_rows(x.shape),
        moments_given, across, momentum, epsilon, flag(relu, "relu"), _relu_cap(relu_max),
        n_threads)
    return out, mean, inv_std


def batchnorm_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon, residual=None,
                                relu=False, relu_max=None, out=None, inv_std=None,
                                n_threads=None):
    """Normalise each channel of x with the moving statistics, add ``residual`` when given and
    apply relu (capped at ``relu_max`` unless None) when asked. Returns (out, inv_std)."""
    n_threads = effective_n_threads(n_threads)
    x, c = _batchnorm_operands(x, gamma=gamma, beta=beta, moving_mean=moving_mean,
                               moving_var=moving_var)
    residual = _like_x(residual, x, "residual")
    out = out_buffer(out, x.shape, x.dtype, "out")
    inv_std = out_buffer(inv_std, (c,), x.dtype, "inv_std")
    check_apart({"out": out, "inv_std": inv_std},
                {"x": x, "residual": residual, "gamma": gamma, "beta": beta,
                 "moving_mean": moving_mean, "moving_var": moving_var})
    _normalization.batchnorm_forward_inference(
        x.reshape(-1, c), _rows(residual, c), gamma, beta, moving_mean, moving_var,
        out.reshape(-1, c), inv_std, real_number(epsilon, "epsilon"), flag(relu, "relu"),
        _relu_cap(relu_max), n_threads)
    return out, inv_std


def batchnorm_apply(x, gamma, beta, mean, inv_std, residual=None, relu=False, relu_max=None,
                    out=None, n_threads=None):
    """act((x - mean) * inv_std * gamma + beta [+ residual]) with the ``mean`` and ``inv_std``
    that a forward call returned for x: that call's output again, bit for bit (same x, residual,
    gamma, beta and activation), so that a backward pass may recompute it rather than keep it."""
    n_threads = effective_n_threads(n_threads)
    x, c = _batchnorm_operands(x, gamma=gamma, beta=beta, mean=mean, inv_std=inv_std)
    residual = _like_x(residual, x, "residual")
    out = out_buffer(out, x.shape, x.dtype, "out")
    check_apart({"out": out}, {"x": x, "residual": residual, "gamma": gamma, "beta": beta,
                               "mean": mean, "inv_std": inv_std})
    _normalization.batchnorm_apply(x.reshape(-1, c), _rows(residual, c), gamma, beta, mean,
                                   inv_std, out.reshape(-1, c), flag(relu, "relu"),
                                   _relu_cap(relu_max), n_threads)
    return out


def batchnorm_backward(x, dy, gamma, beta, mean, inv_std, batch_stats, dgamma, dbeta,
                       residual=None, relu=False, relu_max=None, need_dx=True, need_dres=False,
                       out=None, dres=None, partial=None, dy2=None, across=None,
                       grad_means=None, sums_given=False, n_threads=None):
    """Fill dgamma and dbeta; return (dx, dres): dx None unless need_dx, and dres, the gradient
    of the residual (dy through the relu), None unless need_dres. ``batch_stats`` says whether
    the forward pass normalised with the batch's statistics or with constant moving ones;
    ``residual``, ``relu`` and ``relu_max`` are the forward's. ``dy2``: a second part of the output's
    gradient, which the kernel adds to dy (dy + dy2 in float, as merge.add_forward adds).
    ``across``: the forward's (batch_stats only); dgamma and dbeta are then the whole batch's.
    ``grad_means`` (2, C) float64 receives the means dx is made with (BatchNormInputGradient).
    ``sums_given``: ``partial`` holds the sums of each chunk already, from the conv that read
    the output (InputBatchNorm's ``grad_partial``), so that dy is not read for them."""
    n_threads = effective_n_threads(n_threads)
    x, c = _batchnorm_operands(x, ("dgamma", "dbeta"), gamma=gamma, beta=beta, mean=mean,
                               inv_std=inv_std, dgamma=dgamma, dbeta=dbeta)
    dy = _like_x(dy, x, "dy")
    dy2 = _like_x(dy2, x, "dy2")
    residual = _like_x(residual, x, "residual")
    dx = out_buffer(out, x.shape, x.dtype, "dx") if need_dx else None
    dres = out_buffer(dres, x.shape, x.dtype, "dres") if need_dres else None
    sums_given = flag(sums_given, "sums_given")
    if sums_given and partial is None:
        raise ValueError("Expected partial with sums_given=True: the sums it holds")
    partial = out_buffer(partial, batchnorm_partial_shape(x.shape), np.float64, "partial")
    if grad_means is not None:
        grad_means = out_buffer(grad_means, (2, c), np.float64, "grad_means")
    batch_stats = flag(batch_stats, "batch_stats")
    if across is not None and not batch_stats:
        raise ValueError("Expected across=None with batch_stats=False: the moving statistics "
                         "are the same on every process")
    across = _across_arg(x, across)
    check_apart({"dx": dx, "dres": dres, "dgamma": dgamma, "dbeta": dbeta, "partial": partial,
                 "grad_means": grad_means},
                {"x": x, "dy": dy, "dy2": dy2, "residual": residual, "gamma": gamma,
                 "beta": beta, "mean": mean, "inv_std": inv_std})
    _normalization.batchnorm_backward(
        x.reshape(-1, c), dy.reshape(-1, c), _rows(dy2, c), _rows(residual, c), gamma, beta, mean, inv_std,
        _rows(dx, c), dgamma, dbeta, _rows(dres, c), partial, batchnorm_chunk_rows(x.shape),
        across, flag(relu, "relu"), _relu_cap(relu_max), batch_stats, n_threads, grad_means,
        sums_given)
    return dx, dres


def batchnorm_fold(kernel, bias, gamma, beta, moving_mean, moving_var, epsilon, out_kernel=None,
                   out_bias=None, n_threads=None):
    """(kernel, bias) of a conv or dense layer (the last axis of its kernel: its outputs)
    followed by inference-mode batch normalisation, folded into one: with s = gamma /
    sqrt(moving_var + epsilon), kernel * s and (bias - moving_mean) * s + beta. ``bias`` None
    counts as zeros."""
    n_threads = effective_n_threads(n_threads)
    kernel, c = _batchnorm_operands(kernel, gamma=gamma, beta=beta, moving_mean=moving_mean,
                                    moving_var=moving_var)
    if bias is not None:
        _batchnorm_operands(kernel, gamma=gamma, bias=bias)
    out_kernel = out_buffer(out_kernel, kernel.shape, kernel.dtype, "out_kernel")
    out_bias = out_buffer(out_bias, (c,), kernel.dtype, "out_bias")
    check_apart({"out_kernel": out_kernel, "out_bias": out_bias},
                {"kernel": kernel, "bias": bias, "gamma": gamma, "beta": beta,
                 "moving_mean": moving_mean, "moving_var": moving_var})
    _normalization.batchnorm_fold(kernel.reshape(-1, c), bias, gamma, beta, moving_mean,
                                  moving_var, out_kernel.reshape(-1, c), out_bias, epsilon,
                                  n_threads)
    return out_kernel, out_bias
