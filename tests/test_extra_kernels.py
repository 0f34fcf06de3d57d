"""Sum pooling kernels against their twins, float64 gradient checks, thread independence."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import pool
from conftest import numeric_grad
from test_pool_kernels import CASES, geometry

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def run_sum(module, x, pool_size, strides, padding, threads=2):
    out_shape, top, left = geometry(x.shape, pool_size, strides, padding)
    out = np.zeros(out_shape, x.dtype)
    module.sumpool2d_forward(x, out, *pool_size, *strides, top, left, threads)
    return out


def sum_backward(module, dy, x_shape, pool_size, strides, padding, threads=2):
    _, top, left = geometry(x_shape, pool_size, strides, padding)
    dx = np.full(x_shape, np.nan, dy.dtype)
    module.sumpool2d_backward(dy, dx, *pool_size, *strides, top, left, threads)
    return dx


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sumpool_matches_reference(case, dtype, rng):
    n, h, w, c, pool_size, strides, padding = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    out = run_sum(pool, x, pool_size, strides, padding)
    tol = TOL[dtype]
    np.testing.assert_allclose(out, run_sum(ref, x, pool_size, strides, padding), rtol=tol, atol=tol)
    dy = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_allclose(sum_backward(pool, dy, x.shape, pool_size, strides, padding),
                               sum_backward(ref, dy, x.shape, pool_size, strides, padding),
                               rtol=tol, atol=tol)


def test_sumpool_is_average_times_window_count(rng):
    x = rng.standard_normal((2, 6, 6, 3))
    avg = np.zeros((2, 3, 3, 3))
    pool.avgpool2d_forward(x, avg, 2, 2, 2, 2, 0, 0, 1)
    np.testing.assert_allclose(run_sum(pool, x, (2, 2), (2, 2), "valid"), 4 * avg, rtol=1e-14)


@pytest.mark.parametrize("case", [CASES[2], CASES[4], CASES[5]])
def test_sumpool_gradient_finite_differences(case, rng):
    n, h, w, c, pool_size, strides, padding = case
    x = rng.standard_normal((n, h, w, c))
    out_shape, _, _ = geometry(x.shape, pool_size, strides, padding)
    probe = rng.standard_normal(out_shape)
    loss = lambda: float((run_sum(pool, x, pool_size, strides, padding) * probe).sum())
    dx = sum_backward(pool, probe, x.shape, pool_size, strides, padding)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


def test_sumpool_threads_agree(rng):
    x = rng.standard_normal((16, 13, 13, 32)).astype(np.float32)
    assert np.array_equal(run_sum(pool, x, (3, 3), (2, 2), "same", 1),
                          run_sum(pool, x, (3, 3), (2, 2), "same", 2))
