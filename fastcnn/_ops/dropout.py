"""Dropout: checked calls of the dropout kernels, and the check of the (seed, rate) pair that
the fused conv + pool step takes too."""
import numbers

from .._ext import dropout as _dropout
from .checks import as_kernel_array, check_apart, out_buffer
from .threads import effective_n_threads


def dropout_args(dropout):
    """(seed, rate) checked, from a (seed, rate) pair or None (no dropout: rate 0)."""
    if dropout is None:
        return 0, 0.0
    seed, rate = dropout
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
        raise ValueError(f"Expected seed to be an int in [0, 2**64), received seed={seed!r}")
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise ValueError(f"Expected rate in [0, 1), received rate={rate!r}")
    return int(seed), float(rate)


def _dropout_operands(x, name, seed, rate, out):
    """The flat operands; out may be x itself (the kernels draw each mask bit from its index)."""
    x = as_kernel_array(x, name)
    out = out_buffer(out, x.shape, x.dtype, "out")
    check_apart({"out": out}, {name: x}, may_equal={("out", name)})
    return (x.reshape(-1), *dropout_args((seed, rate)), out)


def dropout_forward(x, seed, rate, out=None, n_threads=None):
    """Zero each value with probability ``rate`` (a mask drawn from ``seed``), scale the rest."""
    n_threads = effective_n_threads(n_threads)
    x, seed, rate, out = _dropout_operands(x, "x", seed, rate, out)
    _dropout.dropout_forward(x, seed, rate, out.reshape(-1), n_threads)
    return out


def dropout_backward(dy, seed, rate, out=None, n_threads=None):
    """The gradient through dropout_forward with the same seed and rate."""
    n_threads = effective_n_threads(n_threads)
    dy, seed, rate, dx = _dropout_operands(dy, "dy", seed, rate, out)
    _dropout.dropout_backward(dy, seed, rate, dx.reshape(-1), n_threads)
    return dx
