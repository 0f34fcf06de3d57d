"""The pooling kernels (max, average, sum) against their NumPy twins, float64 gradient checks,
thread independence, and every SIMD path of the max-pool core."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ops import checks
from fastcnn._ext import pool
from conftest import numeric_grad


CASES = [  # (N, H, W, C, pool, strides, padding)
    (2, 6, 6, 3, (2, 2), (2, 2), "valid"),
    (1, 7, 5, 1, (2, 2), (2, 2), "valid"),
    (1, 7, 5, 1, (2, 2), (2, 2), "same"),
    (3, 9, 8, 4, (3, 3), (1, 1), "valid"),
    (2, 9, 8, 4, (3, 3), (2, 2), "same"),
    (1, 11, 7, 2, (2, 3), (3, 2), "same"),
    (1, 5, 5, 3, (5, 5), (3, 3), "same"),
    (2, 6, 7, 5, (1, 1), (3, 3), "valid"),
]


def geometry(shape, pool_size, strides, padding):
    (oh, ow), (top, left) = checks.window_output_shape(shape[1:3], pool_size, strides, padding)
    return (shape[0], oh, ow, shape[3]), top, left


def run_max(module, x, pool_size, strides, padding, threads=2):
    out_shape, top, left = geometry(x.shape, pool_size, strides, padding)
    out = np.zeros(out_shape, x.dtype)
    argmax = np.zeros(out_shape, np.int32)
    module.maxpool2d_forward(x, out, argmax, *pool_size, *strides, top, left, threads)
    return out, argmax


def run_window(module, kind, x, pool_size, strides, padding, threads=2):
    """Average or sum (kind "avg" or "sum") pooling of x."""
    out_shape, top, left = geometry(x.shape, pool_size, strides, padding)
    out = np.zeros(out_shape, x.dtype)
    getattr(module, f"{kind}pool2d_forward")(x, out, *pool_size, *strides, top, left, threads)
    return out


def window_backward(module, kind, dy, x_shape, pool_size, strides, padding, threads=2):
    _, top, left = geometry(x_shape, pool_size, strides, padding)
    dx = np.full(x_shape, np.nan, dy.dtype)
    getattr(module, f"{kind}pool2d_backward")(dy, dx, *pool_size, *strides, top, left, threads)
    return dx


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maxpool_matches_reference(case, dtype, rng):
    n, h, w, c, pool_size, strides, padding = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    out, argmax = run_max(pool, x, pool_size, strides, padding)
    ref_out, ref_argmax = run_max(ref, x, pool_size, strides, padding)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_argmax)
    # the argmax points at the maximum it reports
    np.testing.assert_array_equal(x.reshape(n, -1)[np.arange(n)[:, None], argmax.reshape(n, -1)],
                                  out.reshape(n, -1))

    dy = rng.standard_normal(out.shape).astype(dtype)
    dx, ref_dx = np.zeros_like(x), np.zeros_like(x)
    pool.maxpool2d_backward(dy, argmax, dx, 2)
    ref.maxpool2d_backward(dy, argmax, ref_dx, 2)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-6, atol=1e-6)


def test_maxpool_ties_keep_first():
    x = np.ones((1, 2, 2, 1), np.float32)
    _, argmax = run_max(pool, x, (2, 2), (2, 2), "valid")
    assert argmax.ravel().tolist() == [0]


@pytest.mark.parametrize("kind", ["avg", "sum"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_and_sum_pool_match_reference(kind, case, dtype, rng):
    n, h, w, c, pool_size, strides, padding = case
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else {"avg": 1e-6, "sum": 1e-5}[kind]  # sums grow
    out = run_window(pool, kind, x, pool_size, strides, padding)
    np.testing.assert_allclose(out, run_window(ref, kind, x, pool_size, strides, padding),
                               rtol=tol, atol=tol)
    dy = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_allclose(window_backward(pool, kind, dy, x.shape, pool_size, strides, padding),
                               window_backward(ref, kind, dy, x.shape, pool_size, strides, padding),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", [CASES[2], CASES[4], CASES[5]])
def test_pool_gradient_finite_differences(kind, case, rng):
    n, h, w, c, pool_size, strides, padding = case
    x = rng.standard_normal((n, h, w, c))
    out_shape, top, left = geometry(x.shape, pool_size, strides, padding)
    probe = rng.standard_normal(out_shape)
    if kind == "max":
        loss = lambda: float((run_max(pool, x, pool_size, strides, padding)[0] * probe).sum())
        _, argmax = run_max(pool, x, pool_size, strides, padding)
        dx = np.zeros_like(x)
        pool.maxpool2d_backward(probe, argmax, dx, 2)
    else:
        loss = lambda: float((run_window(pool, "avg", x, pool_size, strides, padding) * probe).sum())
        dx = np.zeros_like(x)
        pool.avgpool2d_backward(probe, dx, *pool_size, *strides, top, left, 2)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


def test_pool_threads_agree(rng):
    x = rng.standard_normal((16, 13, 13, 32)).astype(np.float32)
    one, a1 = run_max(pool, x, (2, 2), (2, 2), "valid", threads=1)
    two, a2 = run_max(pool, x, (2, 2), (2, 2), "valid", threads=2)
    assert np.array_equal(one, two) and np.array_equal(a1, a2)
    assert np.array_equal(run_window(pool, "avg", x, (3, 3), (2, 2), "same", 1),
                          run_window(pool, "avg", x, (3, 3), (2, 2), "same", 2))


@pytest.mark.parametrize("case", CASES)
def test_maxpool_relu_backward_equals_pool_then_relu_backward(case, rng):
    """The fused kernel is bitwise the two-pass result: relu backward after the scatter."""
    from fastcnn._ext import activation
    n, h, w, c, pool_size, strides, padding = case
    y = np.maximum(rng.standard_normal((n, h, w, c)), 0).astype(np.float32)  # a relu's output
    out, argmax = run_max(pool, y, pool_size, strides, padding)
    dy = rng.standard_normal(out.shape).astype(np.float32)
    fused, ref_fused, two_pass = (np.empty_like(y) for _ in range(3))
    pool.maxpool2d_relu_backward(dy, out, argmax, fused, 2)
    ref.maxpool2d_relu_backward(dy, out, argmax, ref_fused, 2)
    pool.maxpool2d_backward(dy, argmax, two_pass, 2)
    activation.relu_backward(y.reshape(-1), two_pass.reshape(-1), two_pass.reshape(-1), 1)
    np.testing.assert_array_equal(fused, two_pass)
    np.testing.assert_allclose(fused, ref_fused, rtol=1e-6, atol=1e-6)  # the twin sums in float64


def first_strict_maximum(x, pool_size, strides, top, left, out_shape):
    """Max pooling cell by cell: a window's first cell inside the image, then each later cell
    that is strictly greater. So ties keep the first, a NaN never wins over the running maximum,
    and a NaN that comes first stays."""
    n, h, w, c = x.shape
    out = np.zeros(out_shape, x.dtype)
    argmax = np.zeros(out_shape, np.int32)
    for b, i, j, k in np.ndindex(*out_shape):
        cells = [(r, s) for r in range(i * strides[0] - top, i * strides[0] - top + pool_size[0])
                 for s in range(j * strides[1] - left, j * strides[1] - left + pool_size[1])
                 if 0 <= r < h and 0 <= s < w]
        best, where = x[b, cells[0][0], cells[0][1], k], cells[0]
        for r, s in cells[1:]:
            if x[b, r, s, k] > best:
                best, where = x[b, r, s, k], (r, s)
        out[b, i, j, k] = best
        argmax[b, i, j, k] = (where[0] * w + where[1]) * c + k
    return out, argmax


@pytest.mark.parametrize("channels", [3, 8, 16, 19, 37])
@pytest.mark.parametrize("case", [((2, 2), (2, 2), "valid"), ((2, 2), (2, 2), "same"),
                                  ((3, 3), (2, 2), "same"), ((3, 2), (1, 2), "valid")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maxpool_every_simd_path_keeps_the_first_strict_maximum(channels, case, dtype,
                                                                simd_path, rng):
    """Every code path of the max-pool core, channel tails included, with padding, ties (values
    on a coarse grid) and NaN."""
    pool_size, strides, padding = case
    x = rng.integers(-3, 4, (2, 7, 6, channels)).astype(dtype)
    x[rng.random(x.shape) < 0.1] = np.nan
    out_shape, top, left = geometry(x.shape, pool_size, strides, padding)
    out, argmax = run_max(pool, x, pool_size, strides, padding)
    want_out, want_argmax = first_strict_maximum(x, pool_size, strides, top, left, out_shape)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(argmax, want_argmax)


def test_sumpool_is_average_times_window_count(rng):
    x = rng.standard_normal((2, 6, 6, 3))
    avg = np.zeros((2, 3, 3, 3))
    pool.avgpool2d_forward(x, avg, 2, 2, 2, 2, 0, 0, 1)
    np.testing.assert_allclose(run_window(pool, "sum", x, (2, 2), (2, 2), "valid"), 4 * avg, rtol=1e-14)


@pytest.mark.parametrize("case", [CASES[2], CASES[4], CASES[5]])
def test_sumpool_gradient_finite_differences(case, rng):
    n, h, w, c, pool_size, strides, padding = case
    x = rng.standard_normal((n, h, w, c))
    out_shape, _, _ = geometry(x.shape, pool_size, strides, padding)
    probe = rng.standard_normal(out_shape)
    loss = lambda: float((run_window(pool, "sum", x, pool_size, strides, padding) * probe).sum())
    dx = window_backward(pool, "sum", probe, x.shape, pool_size, strides, padding)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


def test_sumpool_threads_agree(rng):
    x = rng.standard_normal((16, 13, 13, 32)).astype(np.float32)
    assert np.array_equal(run_window(pool, "sum", x, (3, 3), (2, 2), "same", 1),
                          run_window(pool, "sum", x, (3, 3), (2, 2), "same", 2))
