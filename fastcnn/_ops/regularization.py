"""Weight penalties: checked calls of the regularization kernels."""
import numpy as np

from .._ext import regularization as _regularization
from .checks import as_kernel_array, check_apart, in_place, real_number
from .threads import effective_n_threads

SUM_CHUNK = 16384  # elements per partial sum in sum_of_squares and sum_of_abs


def axpy(alpha, x, y, n_threads=None):
    """y += alpha * x in place; x may be y itself."""
    n_threads = effective_n_threads(n_threads)
    y = in_place(y, "y")
    x = as_kernel_array(x, "x", dtype=y.dtype, shape=y.shape)
    check_apart({"y": y}, {"x": x}, may_equal={("y", "x")})
    _regularization.axpy(x.reshape(-1), y.reshape(-1), real_number(alpha, "alpha"), n_threads)


def add_sign(alpha, x, y, n_threads=None):
    """y += alpha * sign(x) in place (sign(0) = 0)."""
    n_threads = effective_n_threads(n_threads)
    y = in_place(y, "y")
    x = as_kernel_array(x, "x", dtype=y.dtype, shape=y.shape)
    check_apart({"y": y}, {"x": x}, may_equal={("y", "x")})
    _regularization.add_sign(x.reshape(-1), y.reshape(-1), real_number(alpha, "alpha"),
                              n_threads)


def _chunked_sum(x, absolute, n_threads):
    """The total of |x| or x**2 over x, in float64, the same for any thread count."""
    x = as_kernel_array(x, "x").reshape(-1)
    partial = np.empty(max(1, -(-x.size // SUM_CHUNK)))
    _regularization.chunk_sums(x, partial, absolute, effective_n_threads(n_threads))
    return float(partial.sum())


def sum_of_squares(x, n_threads=None):
    """sum(x**2), accumulated in float64 and the same for any thread count."""
    return _chunked_sum(x, False, n_threads)


def sum_of_abs(x, n_threads=None):
    """sum(|x|), accumulated in float64 and the same for any thread count."""
    return _chunked_sum(x, True, n_threads)
