"""Sum and global pooling, batch normalisation and index-map (remap) kernels: against their
NumPy twins, float64 central-difference gradients, and thread independence."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ops import normalization as normalization_ops
from fastcnn._ops import pool as pool_ops
from fastcnn.layers import preprocessing
from fastcnn._ops import remap as remap_ops
from fastcnn._ext import normalization, pool, remap
from conftest import numeric_grad
from test_pool_kernels import CASES, geometry

TOL = {np.float32: 1e-5, np.float64: 1e-12}


# ---- sum pooling -----------------------------------------------------------------------------

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


# ---- global pooling (the windowed kernels with one whole-image window) -----------------------

@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 4, 6), (2, 7, 1, 3)])
def test_global_pooling_matches_numpy(shape, rng):
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(pool_ops.global_avgpool2d_forward(x), x.mean(axis=(1, 2)), rtol=1e-14)
    out, argmax = pool_ops.global_maxpool2d_forward(x)
    np.testing.assert_array_equal(out, x.max(axis=(1, 2)))
    n, c = out.shape
    flat = x.reshape(n, -1, c).argmax(axis=1)  # numpy keeps the first maximum too
    np.testing.assert_array_equal(argmax, flat * c + np.arange(c))

    dy = rng.standard_normal((n, c))
    expected = np.zeros_like(x).reshape(n, -1, c)
    expected[np.arange(n)[:, None], flat, np.arange(c)] = dy
    np.testing.assert_array_equal(pool_ops.global_maxpool2d_backward(dy, argmax, x.shape),
                                  expected.reshape(x.shape))
    np.testing.assert_allclose(pool_ops.global_avgpool2d_backward(dy, x.shape),
                               np.broadcast_to(dy[:, None, None, :] / (shape[1] * shape[2]), shape),
                               rtol=1e-14)


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_global_pooling_gradient_finite_differences(kind, rng):
    x = rng.standard_normal((2, 3, 4, 3))
    probe = rng.standard_normal((2, 3))
    if kind == "avg":
        loss = lambda: float((pool_ops.global_avgpool2d_forward(x) * probe).sum())
        dx = pool_ops.global_avgpool2d_backward(probe, x.shape)
    else:
        loss = lambda: float((pool_ops.global_maxpool2d_forward(x)[0] * probe).sum())
        dx = pool_ops.global_maxpool2d_backward(probe, pool_ops.global_maxpool2d_forward(x)[1], x.shape)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


# ---- batch normalisation ---------------------------------------------------------------------

BN_SHAPES = [(1, 3), (7, 5), (300, 17)]  # (rows M, channels C)


def bn_params(rng, c, dtype):
    gamma = (1 + 0.3 * rng.standard_normal(c)).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    moving_mean = rng.standard_normal(c).astype(dtype)
    moving_var = rng.uniform(0.5, 2, c).astype(dtype)
    return gamma, beta, moving_mean, moving_var


def bn_train(module, x, gamma, beta, moving_mean, moving_var, n_chunks=3, threads=2,
             momentum=0.9, epsilon=1e-3):
    """(y, mean, inv_std, moving_mean', moving_var'), leaving the inputs untouched."""
    m, c = x.shape
    mm, mv = moving_mean.copy(), moving_var.copy()
    y, mean, inv_std = np.empty_like(x), np.empty(c, x.dtype), np.empty(c, x.dtype)
    module.batchnorm_forward_training(x, gamma, beta, mm, mv, y, mean, inv_std,
                                      np.empty((n_chunks, 2, c)), momentum, epsilon, threads)
    return y, mean, inv_std, mm, mv


def bn_infer(module, x, gamma, beta, moving_mean, moving_var, threads=2, epsilon=1e-3):
    y, inv_std = np.empty_like(x), np.empty(x.shape[1], x.dtype)
    module.batchnorm_forward_inference(x, gamma, beta, moving_mean, moving_var, y, inv_std,
                                       epsilon, threads)
    return y, inv_std


def bn_back(module, x, dy, gamma, mean, inv_std, batch_stats, n_chunks=3, threads=2, want_dx=True):
    c = x.shape[1]
    dx = np.empty_like(x) if want_dx else None
    dgamma, dbeta = np.empty(c, x.dtype), np.empty(c, x.dtype)
    module.batchnorm_backward(x, dy, gamma, mean, inv_std, dx, dgamma, dbeta,
                              np.empty((n_chunks, 2, c)), batch_stats, threads)
    return dx, dgamma, dbeta


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_chunks", [1, 4, 400])  # 400 > M leaves chunks empty
def test_batchnorm_matches_reference(shape, dtype, n_chunks, rng):
    x = (3 + 2 * rng.standard_normal(shape)).astype(dtype)
    params = bn_params(rng, shape[1], dtype)
    # Column sums of M rows in double, in other orders: M eps64; y's float32 operations and the
    # roundings of the outputs: 8 eps of the dtype.
    bound = 8 * np.finfo(dtype).eps + shape[0] * np.finfo(np.float64).eps
    tol = dict(rtol=bound, atol=bound)
    got = bn_train(normalization, x, *params, n_chunks=n_chunks)
    for a, b in zip(got, bn_train(ref, x, *params)):
        np.testing.assert_allclose(a, b, **tol)
    for a, b in zip(bn_infer(normalization, x, *params), bn_infer(ref, x, *params)):
        np.testing.assert_allclose(a, b, **tol)

    dy = rng.standard_normal(shape).astype(dtype)
    gamma, mean, inv_std = params[0], got[1], got[2]
    for batch_stats in (True, False):
        for want_dx in (True, False):
            expected = bn_back(ref, x, dy, gamma, mean, inv_std, batch_stats, want_dx=want_dx)
            actual = bn_back(normalization, x, dy, gamma, mean, inv_std, batch_stats, n_chunks,
                             want_dx=want_dx)
            for a, b in zip(actual, expected):
                if b is None:
                    assert a is None
                else:
                    np.testing.assert_allclose(a, b, **tol)


def test_batchnorm_moving_statistics_formula(rng):
    x = rng.standard_normal((50, 4)) * 3 + 1
    gamma, beta, moving_mean, moving_var = bn_params(rng, 4, np.float64)
    _, _, _, mm, mv = bn_train(normalization, x, gamma, beta, moving_mean, moving_var, momentum=0.8)
    np.testing.assert_allclose(mm, moving_mean * 0.8 + x.mean(axis=0) * 0.2, rtol=1e-13)
    np.testing.assert_allclose(mv, moving_var * 0.8 + x.var(axis=0) * 0.2, rtol=1e-13)  # biased


@pytest.mark.parametrize("batch_stats", [True, False])
def test_batchnorm_gradient_finite_differences(batch_stats, rng):
    x = rng.standard_normal((6, 3)) * 2 + 1
    gamma, beta, moving_mean, moving_var = bn_params(rng, 3, np.float64)
    probe = rng.standard_normal(x.shape)

    def loss():
        if batch_stats:
            y = bn_train(normalization, x, gamma, beta, moving_mean, moving_var)[0]
        else:
            y = bn_infer(normalization, x, gamma, beta, moving_mean, moving_var)[0]
        return float((y * probe).sum())

    if batch_stats:
        _, mean, inv_std, _, _ = bn_train(normalization, x, gamma, beta, moving_mean, moving_var)
    else:
        mean, inv_std = moving_mean, bn_infer(normalization, x, gamma, beta, moving_mean, moving_var)[1]
    dx, dgamma, dbeta = bn_back(normalization, x, probe, gamma, mean, inv_std, batch_stats)
    for analytic, wrt in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        np.testing.assert_allclose(analytic, numeric_grad(loss, wrt), rtol=1e-6, atol=1e-8)


def test_batchnorm_threads_bitwise_equal(rng):
    x = (rng.standard_normal((4096, 16)) * 2 + 5).astype(np.float32)  # enough work to thread
    params = bn_params(rng, 16, np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    one = bn_train(normalization, x, *params, n_chunks=8, threads=1)
    two = bn_train(normalization, x, *params, n_chunks=8, threads=2)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)
    for batch_stats in (True, False):
        back_one = bn_back(normalization, x, dy, params[0], one[1], one[2], batch_stats, 8, 1)
        back_two = bn_back(normalization, x, dy, params[0], one[1], one[2], batch_stats, 8, 2)
        for a, b in zip(back_one, back_two):
            assert np.array_equal(a, b)


def test_batchnorm_ops_ignore_thread_count(rng):
    """Through the ops room, whose chunking depends on the shape only."""
    x = rng.standard_normal((64, 9, 9, 8)).astype(np.float32)
    results = []
    for threads in (1, 2):
        gamma, beta, mm, mv = bn_params(np.random.default_rng(0), 8, np.float32)
        y, mean, inv_std = normalization_ops.batchnorm_forward_training(
            x, gamma, beta, mm, mv, 0.99, 1e-3, n_threads=threads)
        dgamma, dbeta = np.empty(8, np.float32), np.empty(8, np.float32)
        dx = normalization_ops.batchnorm_backward(x, y, gamma, mean, inv_std, True, dgamma, dbeta,
                                                  n_threads=threads)
        results.append((y, mm, mv, dx, dgamma, dbeta))
    for a, b in zip(*results):
        assert np.array_equal(a, b)


def test_batchnorm_kernel_rejects_inconsistent_shapes(rng):
    x = rng.standard_normal((5, 3))
    gamma, beta, mm, mv = bn_params(rng, 3, np.float64)
    with pytest.raises(ValueError, match="partial"):
        normalization.batchnorm_forward_training(x, gamma, beta, mm, mv, np.empty_like(x),
                                                 np.empty(3), np.empty(3), np.empty((2, 2, 4)),
                                                 0.9, 1e-3, 1)
    with pytest.raises(ValueError, match="inconsistent"):
        normalization.batchnorm_forward_inference(x, gamma[:2], beta, mm, mv, np.empty_like(x),
                                                  np.empty(3), 1e-3, 1)
    x32, gamma, beta, mm, mv = (a.astype(np.float32) for a in (x, gamma, beta, mm, mv))
    with pytest.raises(ValueError, match=r"gamma to be a contiguous float32 array of shape \(3,\)"):
        normalization_ops.batchnorm_forward_training(x32, gamma[:2], beta, mm, mv, 0.9, 1e-3)
    with pytest.raises(ValueError, match="moving_var .* float64"):  # updated in place: no copies
        normalization_ops.batchnorm_forward_training(x32, gamma, beta, mm, mv.astype(np.float64), 0.9, 1e-3)


# ---- index maps ------------------------------------------------------------------------------

def random_maps(rng, n, out_size, size, fill_fraction=0.3):
    index = rng.integers(0, size, (n, out_size)).astype(np.int32)
    index[rng.random((n, out_size)) < fill_fraction] = -1
    return index


def run_remap(module, x, rows, cols, fill_value=1.5, threads=2):
    out = np.full((x.shape[0], rows.shape[1], cols.shape[1], x.shape[3]), np.nan, x.dtype)
    module.remap2d_forward(x, rows, cols, fill_value, out, threads)
    return out


def run_remap_back(module, dy, rows, cols, x_shape, threads=2):
    dx = np.full(x_shape, np.nan, dy.dtype)
    module.remap2d_backward(dy, rows, cols, dx, threads)
    return dx


@pytest.mark.parametrize("shape,out_hw", [((2, 5, 6, 3), (7, 4)), ((1, 1, 1, 1), (3, 2)),
                                          ((4, 8, 8, 1), (8, 8))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_remap_matches_reference(shape, out_hw, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    rows = random_maps(rng, shape[0], out_hw[0], shape[1])
    cols = random_maps(rng, shape[0], out_hw[1], shape[2])
    out = run_remap(remap, x, rows, cols)
    np.testing.assert_array_equal(out, run_remap(ref, x, rows, cols))
    dy = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_allclose(run_remap_back(remap, dy, rows, cols, shape),
                               run_remap_back(ref, dy, rows, cols, shape),
                               rtol=TOL[dtype], atol=TOL[dtype])


def test_remap_backward_is_the_adjoint(rng):
    """<remap(x), dy> == <x, remap_backward(dy)> with zero fill, even where maps repeat pixels."""
    x = rng.standard_normal((3, 6, 5, 2))
    rows = random_maps(rng, 3, 9, 6)
    cols = random_maps(rng, 3, 4, 5)
    dy = rng.standard_normal((3, 9, 4, 2))
    lhs = (run_remap(remap, x, rows, cols, fill_value=0.0) * dy).sum()
    rhs = (x * run_remap_back(remap, dy, rows, cols, x.shape)).sum()
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_remap_gradient_finite_differences(rng):
    x = rng.standard_normal((2, 4, 3, 2))
    rows, cols = random_maps(rng, 2, 5, 4), random_maps(rng, 2, 4, 3)
    probe = rng.standard_normal((2, 5, 4, 2))
    loss = lambda: float((run_remap(remap, x, rows, cols) * probe).sum())
    np.testing.assert_allclose(run_remap_back(remap, probe, rows, cols, x.shape),
                               numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


def test_remap_threads_and_broadcast_maps(rng):
    x = rng.standard_normal((32, 28, 28, 4)).astype(np.float32)
    rows = random_maps(rng, 32, 30, 28)
    cols = random_maps(rng, 32, 28, 28)
    assert np.array_equal(run_remap(remap, x, rows, cols, threads=1),
                          run_remap(remap, x, rows, cols, threads=2))
    dy = rng.standard_normal((32, 30, 28, 4)).astype(np.float32)
    assert np.array_equal(run_remap_back(remap, dy, rows, cols, x.shape, threads=1),
                          run_remap_back(remap, dy, rows, cols, x.shape, threads=2))
    # one map for every image, as a stride-0 view, equals the map repeated
    shared = np.broadcast_to(rows[:1], rows.shape)
    np.testing.assert_array_equal(run_remap(remap, x, shared, cols),
                                  run_remap(remap, x, np.repeat(rows[:1], 32, axis=0), cols))


@pytest.mark.parametrize("bad,message", [(3, r"rows\[1, 2\] = 3 is outside \[-1, 3\)"),
                                         (-2, r"rows\[1, 2\] = -2")])
def test_remap_rejects_indices_outside_the_image(bad, message):
    x = np.zeros((2, 3, 3, 1), np.float32)
    rows = np.zeros((2, 3), np.int32)
    rows[1, 2] = bad
    with pytest.raises(ValueError, match=message):
        remap_ops.remap2d_forward(x, rows, np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError, match=message):
        remap_ops.remap2d_backward(x, rows, np.zeros((2, 3), np.int32), x.shape)


def test_source_index_fill_modes():
    coords = np.arange(-5, 9)  # an axis of 4 cells: a b c d at 0..3
    expected = {
        "constant": [-1, -1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, -1],
        "nearest": [0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 3],
        "reflect": [3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0],  # (d c b a | a b c d | d c b a)
        "wrap": [3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0],     # (a b c d | a b c d | a b c d)
    }
    for mode, index in expected.items():
        got = preprocessing.source_index(coords, 4, mode)
        assert got.dtype == np.int32 and got.tolist() == index, mode
    with pytest.raises(ValueError, match="fill_mode='mirror'"):
        preprocessing.source_index(coords, 4, "mirror")
