"""The batch-normalisation kernels against their twins, the moving statistics, float64 gradient
checks, thread independence and shape checks."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import normalization
from conftest import bn_params, numeric_grad

BN_SHAPES = [(1, 3), (7, 5), (300, 17)]  # (rows M, channels C)


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
