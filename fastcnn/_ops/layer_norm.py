"""Layer and group normalisation: checked calls of ``_ext.layer_norm``.

Layer normalisation normalises each sample over ``axes``: the kernels take rows of the
normalised values, so when ``axes`` are not the trailing axes the wrappers move them last in a
copy (and the results back), which the usual case, the last axis or the trailing ones, skips.
gamma and beta hold one value per normalised position, in the order of the sorted axes.
"""
import numbers

import numpy as np

from .._ext import layer_norm as _layer_norm
from .checks import as_kernel_array, check_apart, out_buffer, positive_int
from .rows import as_rows, from_rows, rows_buffer, rows_layout
from .threads import effective_n_threads

# The dgamma/dbeta column sums run over chunks of whole rows: short rows are grouped up to about
# LAYERNORM_CHUNK values a chunk, and long ones into at most LAYERNORM_MAX_CHUNKS chunks, which
# bounds the float64 scratch at that many pairs of rows.
LAYERNORM_CHUNK = 8192
LAYERNORM_MAX_CHUNKS = 64


def layernorm_partial_shape(rows, k):
    """The float64 scratch ``partial`` of layernorm_backward for ``rows`` rows of ``k`` values:
    fixed by the shape, so the column sums ignore the thread count."""
    per_chunk = max(LAYERNORM_CHUNK // max(k, 1), -(-rows // LAYERNORM_MAX_CHUNKS), 1)
    return (max(1, -(-rows // per_chunk)), 2, k)


def normalized_axes(axes, ndim):
    """``axes`` (an int or a sequence of ints, negative counting from the end) as a sorted
    tuple of distinct axes in [1, ndim): the batch axis is never normalised."""
    items = list(axes) if isinstance(axes, (list, tuple)) else [axes]
    if not items or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                            for a in items):
        raise ValueError(f"Expected axis to be an int or a non-empty list of ints, received "
                         f"axis={axes!r}")
    resolved = sorted({int(a) % ndim if -ndim <= a < ndim else -1 for a in items})
    if len(resolved) != len(items) or resolved[0] < 1:
        raise ValueError(f"Expected axis to name distinct axes other than the batch axis of "
                         f"inputs of rank {ndim} (in [1, {ndim}) or [-{ndim - 1}, 0)), received "
                         f"axis={axes!r}")
    return tuple(resolved)


def _layout(shape, axes):
    """(permutation moving ``axes`` last or None, R, K) for axes checked against ``shape``."""
    return rows_layout(shape, normalized_axes(axes, len(shape)))


def _per_position(a, k, dtype, name):
    """gamma or beta, of any shape of K values, flat."""
    a = as_kernel_array(a, name, dtype=dtype)
    if a.size != k:
        raise ValueError(f"Expected {name} with one value per normalised position ({k}), "
                         f"received shape {a.shape}")
    return a.reshape(-1)


def _per_position_out(a, k, dtype, name):
    """dgamma or dbeta, the exact buffer of any shape of K values, flat."""
    shape = a.shape if isinstance(a, np.ndarray) and a.size == k else (k,)
    return out_buffer(a, shape, dtype, name).reshape(-1)


def layernorm_forward(x, gamma, beta, axes, epsilon, out=None, mean=None, inv_std=None,
                      n_threads=None):
    """Normalise each sample of x over ``axes`` by its mean and biased variance, then scale by
    gamma and shift by beta (K values each, K the size of the normalised axes). Returns
    (out, mean, inv_std), the two per-row statistics for the backward pass."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x")
    perm, rows, k = _layout(x.shape, axes)
    gamma, beta = (_per_position(a, k, x.dtype, name) for a, name in ((gamma, "gamma"),
                                                                       (beta, "beta")))
    out = out_buffer(out, x.shape, x.dtype, "out")
    mean = out_buffer(mean, (rows,), x.dtype, "mean")
    inv_std = out_buffer(inv_std, (rows,), x.dtype, "inv_std")
    check_apart({"out": out, "mean": mean, "inv_std": inv_std},
                {"x": x, "gamma": gamma, "beta": beta})
    y = rows_buffer(out, perm, rows, k)
    _layer_norm.layernorm_forward(as_rows(x, perm, rows, k), gamma, beta, y, mean, inv_std,
                                  float(epsilon), n_threads)
    from_rows(y, perm, out)
    return out, mean, inv_std


def layernorm_backward(x, dy, gamma, mean, inv_std, axes, dgamma, dbeta, need_dx=True, out=None,
                       partial=None, n_threads=None):
    """Fill dgamma and dbeta (K values each); return dx (None unless need_dx)."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x")
    dy = as_kernel_array(dy, "dy", dtype=x.dtype, shape=x.shape)
    perm, rows, k = _layout(x.shape, axes)
    gamma = _per_position(gamma, k, x.dtype, "gamma")
    mean = as_kernel_array(mean, "mean", dtype=x.dtype, shape=(rows,))
    inv_std = as_kernel_array(inv_std, "inv_std", dtype=x.dtype, shape=(rows,))
    dgamma = _per_position_out(dgamma, k, x.dtype, "dgamma")
    dbeta = _per_position_out(dbeta, k, x.dtype, "dbeta")
    dx = out_buffer(out, x.shape, x.dtype, "dx") if need_dx else None
    partial = out_buffer(partial, layernorm_partial_shape(rows, k), np.float64, "partial")
    check_apart({"dx": dx, "dgamma": dgamma, "dbeta": dbeta, "partial": partial},
                {"x": x, "dy": dy, "gamma": gamma, "mean": mean, "inv_std": inv_std})
    dx_rows = None if dx is None else rows_buffer(dx, perm, rows, k)
    _layer_norm.layernorm_backward(as_rows(x, perm, rows, k), as_rows(dy, perm, rows, k), gamma,
                                   mean, inv_std, dx_rows, dgamma, dbeta, partial, n_threads)
    if dx is not None:
        from_rows(dx_rows, perm, dx)
    return dx


def _groups_layout(x, groups):
    """x (N, ..., C) viewed as (N, S, C), and the checked number of groups."""
    if x.ndim < 2:
        raise ValueError(f"Expected x of shape (batch, ..., channels), received shape {x.shape}")
    groups = positive_int(groups, "groups")
    c = x.shape[-1]
    if c % groups:
        raise ValueError(f"Expected groups to divide the {c} channels, received groups={groups}")
    return x.reshape(x.shape[0], -1, c), groups


def groupnorm_forward(x, gamma, beta, groups, epsilon, out=None, mean=None, inv_std=None,
                      partial=None, n_threads=None):
    """Normalise x (channels last) per sample and group of C / groups adjacent channels, over
    the positions and the group's channels; then scale and shift per channel. Returns
    (out, mean, inv_std), the (N, groups) statistics for the backward pass."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x")
    x3, groups = _groups_layout(x, groups)
    n, _, c = x3.shape
    gamma = as_kernel_array(gamma, "gamma", dtype=x.dtype, shape=(c,))
    beta = as_kernel_array(beta, "beta", dtype=x.dtype, shape=(c,))
    out = out_buffer(out, x.shape, x.dtype, "out")
    mean = out_buffer(mean, (n, groups), x.dtype, "mean")
    inv_std = out_buffer(inv_std, (n, groups), x.dtype, "inv_std")
    partial = out_buffer(partial, (n, 2, c), np.float64, "partial")
    check_apart({"out": out, "mean": mean, "inv_std": inv_std, "partial": partial},
                {"x": x, "gamma": gamma, "beta": beta})
    _layer_norm.groupnorm_forward(x3, gamma, beta, out.reshape(x3.shape), mean, inv_std, partial,
                                  groups, float(epsilon), n_threads)
    return out, mean, inv_std


def groupnorm_backward(x, dy, gamma, mean, inv_std, groups, dgamma, dbeta, need_dx=True,
                       out=None, partial=None, n_threads=None):
    """Fill dgamma and dbeta (per channel); return dx (None unless need_dx)."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x")
    dy = as_kernel_array(dy, "dy", dtype=x.dtype, shape=x.shape)
    x3, groups = _groups_layout(x, groups)
    n, _, c = x3.shape
    gamma = as_kernel_array(gamma, "gamma", dtype=x.dtype, shape=(c,))
    mean = as_kernel_array(mean, "mean", dtype=x.dtype, shape=(n, groups))
    inv_std = as_kernel_array(inv_std, "inv_std", dtype=x.dtype, shape=(n, groups))
    dgamma = out_buffer(dgamma, (c,), x.dtype, "dgamma")
    dbeta = out_buffer(dbeta, (c,), x.dtype, "dbeta")
    dx = out_buffer(out, x.shape, x.dtype, "dx") if need_dx else None
    partial = out_buffer(partial, (n, 2, c), np.float64, "partial")
    check_apart({"dx": dx, "dgamma": dgamma, "dbeta": dbeta, "partial": partial},
                {"x": x, "dy": dy, "gamma": gamma, "mean": mean, "inv_std": inv_std})
    _layer_norm.groupnorm_backward(x3, dy.reshape(x3.shape), gamma, mean, inv_std,
                                   None if dx is None else dx.reshape(x3.shape), dgamma, dbeta,
                                   partial, groups, n_threads)
    return dx
