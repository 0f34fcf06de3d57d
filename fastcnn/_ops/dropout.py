"""Dropout: checked calls of the dropout kernels, and the check of the (seed, rate, first) mask
that the fused conv + pool step takes too. ``first`` is the index of x's first sample in the
batch the mask covers: a process training on a share of a batch draws that share of the whole
batch's mask (fastcnn.distributed)."""
import numbers

from .._ext import dropout as _dropout
from .checks import as_kernel_array, check_apart, out_buffer
from .threads import effective_n_threads


def dropout_args(dropout):
    """(seed, rate, first) checked, from a (seed, rate) or (seed, rate, first) tuple, or None
    (no dropout: rate 0)."""
    if dropout is None:
        return 0, 0.0, 0
    seed, rate, first = (*dropout, 0) if len(dropout) == 2 else dropout
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
        raise ValueError(f"Expected seed to be an int in [0, 2**64), received seed={seed!r}")
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise ValueError(f"Expected rate in [0, 1), received rate={rate!r}")
    if isinstance(first, bool) or not isinstance(first, numbers.Integral) or not 0 <= first < 2**40:
        raise ValueError(f"Expected first to be an int in [0, 2**40), received first={first!r}")
    return int(seed), float(rate), int(first)


def _dropout_operands(x, name, seed, rate, first, out):
    """The flat operands, the flat index of x's first element, and out; out may be x itself (the
    kernels draw each mask bit from its index)."""
    x = as_kernel_array(x, name)
    out = out_buffer(out, x.shape, x.dtype, "out")
    check_apart({"out": out}, {name: x}, may_equal={("out", name)})
    seed, rate, first = dropout_args((seed, rate, first))
    per_sample = x.size // x.shape[0] if x.ndim and x.shape[0] else 0
    return x.reshape(-1), seed, rate, out, first * per_sample


def dropout_forward(x, seed, rate, out=None, n_threads=None, first=0):
    """Zero each value with probability ``rate`` (a mask drawn from ``seed``), scale the rest."""
    n_threads = effective_n_threads(n_threads)
    x, seed, rate, out, offset = _dropout_operands(x, "x", seed, rate, first, out)
    _dropout.dropout_forward(x, seed, rate, out.reshape(-1), n_threads, offset)
    return out


def dropout_backward(dy, seed, rate, out=None, n_threads=None, first=0):
    """The gradient through dropout_forward with the same seed, rate and first."""
    n_threads = effective_n_threads(n_threads)
    dy, seed, rate, dx, offset = _dropout_operands(dy, "dy", seed, rate, first, out)
    _dropout.dropout_backward(dy, seed, rate, dx.reshape(-1), n_threads, offset)
    return dx
