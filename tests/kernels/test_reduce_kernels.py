"""The reduce kernels (fastcnn.ops' sum, mean, max, min and prod) through their wrapper: against
NumPy over axes in one block or apart, bitwise the same for any thread count, and the lane sums
and products bitwise the twin's on every SIMD path."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import reduce as _ext_reduce
from fastcnn._ops import reduce

AXES = [(0,), (1,), (2,), (0, 1), (1, 2), (0, 2), (0, 1, 2)]


@pytest.mark.parametrize("op", reduce.REDUCTIONS)
@pytest.mark.parametrize("axes", AXES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reduce_matches_numpy(op, axes, dtype, rng):
    x = rng.normal(size=(5, 6, 70)).astype(dtype)
    want = getattr(np, op)(x.astype(np.float64), axis=axes)
    got = reduce.reduce_forward(op, x, axes)
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("axes", AXES, ids=str)
def test_extreme_backward_splits_ties_evenly(op, axes, rng):
    x = rng.integers(-2, 3, (4, 5, 6)).astype(np.float64)
    y = getattr(np, op)(x, axis=axes)
    dy = rng.normal(size=y.shape)
    hits = x == np.expand_dims(y, axes)
    want = np.where(hits, np.expand_dims(dy / hits.sum(axis=axes), axes), 0)
    np.testing.assert_array_equal(reduce.extreme_backward(x, y, dy, axes), want)


def test_reduce_refuses_bad_arguments(rng):
    x = rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match="Expected op"):
        reduce.reduce_forward("median", x, (0,))
    with pytest.raises(ValueError, match="Expected axes"):
        reduce.reduce_forward("sum", x, (1, 0))
    with pytest.raises(ValueError, match="empty axis"):
        reduce.reduce_forward("max", np.zeros((3, 0)), (1,))
    np.testing.assert_array_equal(reduce.reduce_forward("sum", np.zeros((3, 0)), (1,)),
                                  np.zeros(3))


@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (0, 2)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reduce_is_bitwise_the_same_for_any_thread_count(axes, dtype, rng):
    x = rng.normal(size=(40, 30, 50)).astype(dtype) * 1e3
    x[..., 7] = 1.0  # ties for the backward
    for op in reduce.REDUCTIONS:
        results = [reduce.reduce_forward(op, x, axes, n_threads=t) for t in (1, 2, 3)]
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0])
    y = reduce.reduce_forward("max", x, axes)
    dy = rng.normal(size=y.shape).astype(dtype)
    grads = [reduce.extreme_backward(x, y, dy, axes, n_threads=t) for t in (1, 2, 3)]
    for g in grads[1:]:
        np.testing.assert_array_equal(g, grads[0])


@pytest.mark.parametrize("op", ["sum", "mean", "prod"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lane_reductions_match_the_twin_bit_for_bit_on_every_simd_path(op, dtype, simd_path,
                                                                       rng):
    # runs of 1 to 300 values (shorter and longer than the lanes, with a partial last round),
    # products near 1 so that they stay finite
    for n in (1, 7, 16, 17, 45, 300):
        x = (1 + rng.normal(size=(6, n, 1)) / 8).astype(dtype)
        x[0, 0, 0] = -0.0
        got = np.empty((6, 1), dtype)
        _ext_reduce.reduce_forward(op, x, got, 1)
        want = np.empty_like(got)
        ref.reduce_forward(op, x, want, 1)
        np.testing.assert_array_equal(got.view(f"u{got.itemsize}"),
                                      want.view(f"u{want.itemsize}"))


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cumsum_matches_numpy_forward_and_from_the_end(axis, dtype, rng):
    x = rng.normal(size=(5, 6, 300)).astype(dtype)
    exact = np.cumsum(x.astype(np.float64), axis=axis)
    from_end = np.flip(np.cumsum(np.flip(x.astype(np.float64), axis), axis=axis), axis)
    for reverse, want in [(False, exact), (True, from_end)]:
        got = reduce.cumsum(x, axis, reverse)
        assert got.dtype == dtype and got.shape == x.shape
        np.testing.assert_array_equal(got, want.astype(dtype))  # in double, rounded once
    signed = np.array([[-0.0, -0.0], [1.0, -0.0]], dtype)
    np.testing.assert_array_equal(np.signbit(reduce.cumsum(signed, 1)), np.signbit(
        np.cumsum(signed, axis=1)))


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cumsum_is_bitwise_the_same_for_any_thread_count(axis, dtype, rng):
    x = rng.normal(size=(40, 30, 50)).astype(dtype) * 1e3
    for reverse in (False, True):
        results = [reduce.cumsum(x, axis, reverse, n_threads=t) for t in (1, 2, 3)]
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0])


def test_cumsum_refuses_bad_arguments(rng):
    x = rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match="Expected axes"):
        reduce.cumsum(x, 2)
    with pytest.raises(TypeError, match="reverse"):
        reduce.cumsum(x, 0, reverse=np.ones(2))
    with pytest.raises(ValueError, match="out"):
        reduce.cumsum(x, 0, out=np.empty((4, 3)))
    assert reduce.cumsum(np.zeros((0, 3)), 0).shape == (0, 3)
