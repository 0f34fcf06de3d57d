"""The batch-normalisation kernels against their twins, the moving statistics, float64 gradient
checks, thread independence, shape checks, and shares of a batch totalled through ``across``
(synchronized batch normalisation) against the whole batch."""
import threading

import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import normalization
from conftest import bn_params, numeric_grad

BN_SHAPES = [(1, 3), (7, 5), (300, 17), (64, 70)]  # (rows M, channels C); 70: blocks of 32 + 6


def relu_args(relu):
    """The kernels' (relu, relu_max) for ``relu``: False, True, or a number, the relu's cap."""
    return relu is not False, np.inf if isinstance(relu, bool) else relu


def partial(x, chunk_rows):
    """The kernels' scratch for chunks of ``chunk_rows`` rows of x."""
    return np.empty((-(-len(x) // chunk_rows), 2, x.shape[1]))


def bn_train(module, x, gamma, beta, moving_mean, moving_var, chunk_rows=3, threads=2,
             momentum=0.9, epsilon=1e-3, residual=None, relu=False, across=None):
    """(y, mean, inv_std, moving_mean', moving_var'), leaving the inputs untouched."""
    m, c = x.shape
    mm, mv = moving_mean.copy(), moving_var.copy()
    y, mean, inv_std = np.empty_like(x), np.empty(c, x.dtype), np.empty(c, x.dtype)
    module.batchnorm_forward_training(x, residual, gamma, beta, mm, mv, y, mean, inv_std,
                                      partial(x, chunk_rows), chunk_rows, False, across, momentum,
                                      epsilon, *relu_args(relu), threads)
    return y, mean, inv_std, mm, mv


def bn_infer(module, x, gamma, beta, moving_mean, moving_var, threads=2, epsilon=1e-3,
             residual=None, relu=False):
    y, inv_std = np.empty_like(x), np.empty(x.shape[1], x.dtype)
    module.batchnorm_forward_inference(x, residual, gamma, beta, moving_mean, moving_var, y,
                                       inv_std, epsilon, *relu_args(relu), threads)
    return y, inv_std


def bn_back(module, x, dy, gamma, beta, mean, inv_std, batch_stats, chunk_rows=3, threads=2,
            want_dx=True, residual=None, relu=False, want_dres=False, dy2=None, across=None):
    """(dx, dgamma, dbeta, dres), dx and dres None unless wanted."""
    c = x.shape[1]
    dx = np.empty_like(x) if want_dx else None
    dres = np.empty_like(x) if want_dres else None
    dgamma, dbeta = np.empty(c, x.dtype), np.empty(c, x.dtype)
    module.batchnorm_backward(x, dy, dy2, residual, gamma, beta, mean, inv_std, dx, dgamma, dbeta,
                              dres, partial(x, chunk_rows), chunk_rows, across, *relu_args(relu),
                              batch_stats, threads)
    return dx, dgamma, dbeta, dres


# What follows the normalisation in one pass: (a residual added, relu: False, True or its cap,
# as relu6's 6, here 1.5 so that about a tenth of the values reach it).
FUSIONS = [(False, False), (True, False), (False, True), (True, True), (False, 1.5), (True, 1.5)]


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunk_rows", [1, 4, 400])  # 400 > M: one chunk
@pytest.mark.parametrize("with_residual,relu", FUSIONS)
def test_batchnorm_matches_reference(shape, dtype, chunk_rows, with_residual, relu, rng):
    x = (3 + 2 * rng.standard_normal(shape)).astype(dtype)
    params = bn_params(rng, shape[1], dtype)
    res = rng.standard_normal(shape).astype(dtype) if with_residual else None
    fused = dict(residual=res, relu=relu)
    # Column sums of M rows in double, in other orders: M eps64; y's float32 operations and the
    # roundings of the outputs: 8 eps of the dtype.
    bound = 8 * np.finfo(dtype).eps + shape[0] * np.finfo(np.float64).eps
    tol = dict(rtol=bound, atol=bound)
    got = bn_train(normalization, x, *params, chunk_rows=chunk_rows, **fused)
    for a, b in zip(got, bn_train(ref, x, *params, **fused)):
        np.testing.assert_allclose(a, b, **tol)
    for a, b in zip(bn_infer(normalization, x, *params, **fused),
                    bn_infer(ref, x, *params, **fused)):
        np.testing.assert_allclose(a, b, **tol)

    dy, dy2 = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    gamma, beta, mean, inv_std = params[0], params[1], got[1], got[2]
    for batch_stats, two_parts in ((True, False), (False, False), (True, True)):
        for want_dx, want_dres in ((True, True), (True, False), (False, False), (False, True)):
            options = dict(want_dx=want_dx, want_dres=want_dres, dy2=dy2 if two_parts else None,
                           **fused)
            expected = bn_back(ref, x, dy, gamma, beta, mean, inv_std, batch_stats, **options)
            actual = bn_back(normalization, x, dy, gamma, beta, mean, inv_std, batch_stats,
                             chunk_rows, **options)
            for a, b in zip(actual, expected):
                if b is None:
                    assert a is None
                else:
                    np.testing.assert_allclose(a, b, **tol)


def test_batchnorm_statistics_stay_accurate_far_from_zero(rng):
    """A mean 1e4 times the spread: the per-chunk deviations keep the variance to float64
    round-off, where sum(x^2) - M mean^2 would lose it entirely in float32 terms."""
    x = 1e4 + rng.standard_normal((3000, 4))
    _, mean, inv_std, _, _ = bn_train(normalization, x, *bn_params(rng, 4, np.float64),
                                      chunk_rows=500, epsilon=1e-12)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(1 / inv_std ** 2, x.var(axis=0), rtol=1e-9)


@pytest.mark.parametrize("channels", [5, 31, 32, 33, 70, 144])  # the kernel sums 32 at a time
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_chunk_moments_sum_the_rows_in_order(channels, dtype, rng):
    """Each chunk's mean and squared deviations are its rows added one after another in double
    (a sequential cumsum, not NumPy's pairwise sum), whatever the channel count: the bits of
    the statistics, and so of training, do not depend on how the kernel blocks the channels."""
    x = (3 + 2 * rng.standard_normal((40, channels))).astype(dtype)
    part = partial(x, 8)
    normalization.batchnorm_forward_training(
        x, None, *bn_params(rng, channels, dtype), np.empty_like(x), np.empty(channels, dtype),
        np.empty(channels, dtype), part, 8, False, None, 0.9, 1e-3, False, np.inf, 2)
    for k in range(5):
        rows = x[8 * k:8 * k + 8].astype(np.float64)
        mean = np.cumsum(rows, axis=0)[-1] / 8
        deviation = rows - mean
        assert np.array_equal(part[k, 0], mean)
        assert np.array_equal(part[k, 1], np.cumsum(deviation * deviation, axis=0)[-1])


def test_batchnorm_moving_statistics_formula(rng):
    x = rng.standard_normal((50, 4)) * 3 + 1
    gamma, beta, moving_mean, moving_var = bn_params(rng, 4, np.float64)
    _, _, _, mm, mv = bn_train(normalization, x, gamma, beta, moving_mean, moving_var, momentum=0.8)
    np.testing.assert_allclose(mm, moving_mean * 0.8 + x.mean(axis=0) * 0.2, rtol=1e-13)
    np.testing.assert_allclose(mv, moving_var * 0.8 + x.var(axis=0) * 0.2, rtol=1e-13)  # biased


@pytest.mark.parametrize("batch_stats", [True, False])
@pytest.mark.parametrize("with_residual,relu", FUSIONS)
def test_batchnorm_gradient_finite_differences(batch_stats, with_residual, relu, rng):
    x = rng.standard_normal((6, 3)) * 2 + 1
    gamma, beta, moving_mean, moving_var = bn_params(rng, 3, np.float64)
    res = rng.standard_normal(x.shape) if with_residual else np.zeros(x.shape)
    probe = rng.standard_normal(x.shape)
    fused = dict(residual=res if with_residual else None, relu=relu)

    def loss():
        if batch_stats:
            y = bn_train(normalization, x, gamma, beta, moving_mean, moving_var, **fused)[0]
        else:
            y = bn_infer(normalization, x, gamma, beta, moving_mean, moving_var, **fused)[0]
        return float((y * probe).sum())

    if batch_stats:
        _, mean, inv_std, _, _ = bn_train(normalization, x, gamma, beta, moving_mean, moving_var)
    else:
        mean, inv_std = moving_mean, bn_infer(normalization, x, gamma, beta, moving_mean, moving_var)[1]
    dx, dgamma, dbeta, dres = bn_back(normalization, x, probe, gamma, beta, mean, inv_std,
                                      batch_stats, want_dres=True, **fused)
    checks = [(dx, x), (dgamma, gamma), (dbeta, beta)]
    if with_residual:
        checks.append((dres, res))
    for analytic, wrt in checks:
        np.testing.assert_allclose(analytic, numeric_grad(loss, wrt), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("with_residual,relu", FUSIONS)
def test_batchnorm_threads_bitwise_equal(with_residual, relu, rng):
    x = (rng.standard_normal((4096, 16)) * 2 + 5).astype(np.float32)  # enough work to thread
    params = bn_params(rng, 16, np.float32)
    res = rng.standard_normal(x.shape).astype(np.float32) if with_residual else None
    fused = dict(residual=res, relu=relu)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    runs = [bn_train(normalization, x, *params, chunk_rows=512, threads=t, **fused)
            for t in (1, 2, 3)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert np.array_equal(a, b)
    mean, inv_std = runs[0][1], runs[0][2]
    for batch_stats in (True, False):
        back = [bn_back(normalization, x, dy, params[0], params[1], mean, inv_std, batch_stats, 512,
                        t, want_dres=True, **fused) for t in (1, 2, 3)]
        for other in back[1:]:
            for a, b in zip(back[0], other):
                assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_residual,relu", FUSIONS)
def test_batchnorm_apply_is_the_forward_output_bitwise(dtype, with_residual, relu, rng):
    """From the mean and inv_std a forward returned (training or inference), the output again,
    bit for bit, for any thread count: what the engine recomputes in backward."""
    x = (rng.standard_normal((4096, 16)) * 2 + 5).astype(dtype)
    gamma, beta, moving_mean, moving_var = bn_params(rng, 16, dtype)
    res = rng.standard_normal(x.shape).astype(dtype) if with_residual else None
    y, mean, inv_std = bn_train(normalization, x, gamma, beta, moving_mean, moving_var,
                                chunk_rows=512, residual=res, relu=relu)[:3]
    y_inf, inv_inf = bn_infer(normalization, x, gamma, beta, moving_mean, moving_var,
                              residual=res, relu=relu)
    for forward, centre, inv in ((y, mean, inv_std), (y_inf, moving_mean, inv_inf)):
        for threads in (1, 2, 3):
            again = np.full_like(x, np.nan)
            normalization.batchnorm_apply(x, res, gamma, beta, centre, inv, again,
                                          *relu_args(relu), threads)
            assert np.array_equal(again, forward)


@pytest.mark.parametrize("with_residual", [False, True])
def test_batchnorm_backward_mask_is_the_forward_relu(with_residual, rng):
    """The backward recomputes the relu's mask from x: it must be exactly where the forward's
    output is positive, values at the edge included (x chosen so that many land on 0)."""
    c = 8
    x = rng.integers(-3, 4, (2048, c)).astype(np.float32)
    gamma, beta, mm, mv = bn_params(rng, c, np.float32)
    res = rng.integers(-2, 3, x.shape).astype(np.float32) if with_residual else None
    y, mean, inv_std, _, _ = bn_train(normalization, x, gamma, beta, mm, mv, residual=res,
                                      relu=True)
    assert (y == 0).mean() > 0.3
    dy = np.ones_like(x)
    _, _, _, dres = bn_back(normalization, x, dy, gamma, beta, mean, inv_std, True,
                            want_dres=True, residual=res, relu=True)
    assert np.array_equal(dres, (y > 0).astype(np.float32))


@pytest.mark.parametrize("path", ["scalar", "avx2", "avx512"])
def test_batchnorm_simd_paths_agree_bitwise(path, rng):
    """Every path rounds x * scale + shift twice (no FMA), so all give the same bits."""
    x = (rng.standard_normal((999, 13)) * 2 + 1).astype(np.float32)
    params = bn_params(rng, 13, np.float32)
    res, dy = (rng.standard_normal(x.shape).astype(np.float32) for _ in range(2))
    fused = dict(residual=res, relu=True)
    best = normalization.simd_path()
    try:
        forward = bn_train(normalization, x, *params, **fused)
        back = bn_back(normalization, x, dy, *params[:2], *forward[1:3], True, want_dres=True,
                       **fused)
        normalization._set_simd_path(path)
        lower = bn_train(normalization, x, *params, **fused)
        lower_back = bn_back(normalization, x, dy, *params[:2], *lower[1:3], True, want_dres=True,
                             **fused)
    finally:
        normalization._set_simd_path(best)
    for a, b in zip(forward + back, lower + lower_back):
        assert np.array_equal(a, b)


def test_batchnorm_kernel_rejects_inconsistent_shapes(rng):
    x = rng.standard_normal((5, 3))
    gamma, beta, mm, mv = bn_params(rng, 3, np.float64)
    with pytest.raises(ValueError, match="partial"):
        normalization.batchnorm_forward_training(x, None, gamma, beta, mm, mv, np.empty_like(x),
                                                 np.empty(3), np.empty(3), np.empty((2, 2, 4)),
                                                 3, False, None, 0.9, 1e-3, False, np.inf,
                                                 1)
    with pytest.raises(ValueError, match="inconsistent"):
        normalization.batchnorm_forward_inference(x, None, gamma[:2], beta, mm, mv,
                                                  np.empty_like(x), np.empty(3), 1e-3, False,
                                                  np.inf, 1)
    with pytest.raises(ValueError, match="residual"):
        normalization.batchnorm_forward_inference(x, x[:4], gamma, beta, mm, mv,
                                                  np.empty_like(x), np.empty(3), 1e-3, True,
                                                  np.inf, 1)


@pytest.mark.parametrize("with_residual,relu", FUSIONS)
def test_batchnorm_backward_of_two_parts_is_that_of_their_float_sum(with_residual, relu, rng):
    """dy given as dy + dy2 (the engine's two readers) gives bitwise the gradients of the
    float32 sum, as merge.add_forward would have made it."""
    x = (rng.standard_normal((500, 6)) * 2 + 1).astype(np.float32)
    params = bn_params(rng, 6, np.float32)
    res = rng.standard_normal(x.shape).astype(np.float32) if with_residual else None
    _, mean, inv_std, _, _ = bn_train(normalization, x, *params, residual=res, relu=relu)
    dy, dy2 = (rng.standard_normal(x.shape).astype(np.float32) for _ in range(2))
    options = dict(residual=res, relu=relu, want_dres=True)
    parts = bn_back(normalization, x, dy, *params[:2], mean, inv_std, True, dy2=dy2, **options)
    summed = bn_back(normalization, x, dy + dy2, *params[:2], mean, inv_std, True, **options)
    for a, b in zip(parts, summed):
        np.testing.assert_array_equal(a, b)


def _in_processes(work, shares):
    """work(share, across) on a thread per share (two), the threads standing in for processes:
    each call of ``across`` waits for both threads' call, then gives each the total. The kernels
    release the GIL between calls."""
    barrier = threading.Barrier(len(shares))
    sent, results = [None] * len(shares), [None] * len(shares)

    def run(k):
        def across(sums):
            sums = np.asarray(sums)
            sent[k] = sums.copy()
            barrier.wait()
            sums[...] = sent[0] + sent[1]
            barrier.wait()
        results[k] = work(shares[k], across)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(shares))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("cut", [256, 300])  # a subtree of 16 of the 19 chunks; all (one empty)
@pytest.mark.parametrize("with_residual,relu", [(False, False), (True, 1.5)])
def test_batchnorm_across_shares_gives_the_whole_batch_bitwise(cut, with_residual, relu, rng):
    """Two shares of one batch cut at a subtree of its chunks, their sums totalled through
    ``across``: each gets the whole batch's statistics, moving statistics, dgamma and dbeta,
    and its rows of y and dx, bitwise as one call on the whole batch. In float64, where the
    sums round (float32 values summed in double mostly do not), so that another order of
    additions would show."""
    rows = 16
    x = rng.standard_normal((300, 5)) * 2 + 3
    dy = rng.standard_normal(x.shape)
    res = rng.standard_normal(x.shape) if with_residual else None
    params = bn_params(rng, 5, np.float64)
    fused = dict(relu=relu)

    def both(share, across=None):
        part = lambda a: None if a is None else a[share]  # noqa: E731
        y, mean, inv_std, mm, mv = bn_train(normalization, x[share], *params, rows,
                                            residual=part(res), across=across, **fused)
        back = bn_back(normalization, x[share], dy[share], *params[:2], mean, inv_std, True,
                       rows, residual=part(res), want_dres=with_residual, across=across,
                       **fused)
        return y, mean, inv_std, mm, mv, *back

    whole = both(slice(None))
    shares = _in_processes(both, [slice(0, cut), slice(cut, None)])
    for k, (a, b) in enumerate(zip(whole, zip(*shares))):
        if a is None:
            continue
        per_row = a.shape == x.shape  # y, dx, dres: each share has its rows
        got = np.concatenate(b) if per_row else b
        for g in ([got] if per_row else got):
            assert np.array_equal(g, a), k
