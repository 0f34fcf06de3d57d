"""The distance kernels (pairwise distances, k smallest) against their NumPy twins, on every SIMD
path and thread count."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import distance


# (n, d, m): spans the 64 x 256 x 256 tiles, the 4-row groups, odd depths and single samples.
SHAPES = [(1, 1, 1), (3, 5, 7), (67, 300, 517), (130, 513, 260), (5, 2, 1000)]


@pytest.mark.parametrize("n,d,m", SHAPES)
@pytest.mark.parametrize("l1", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_distances_match_reference(n, d, m, l1, dtype, simd_path, rng):
    x = rng.standard_normal((n, d)).astype(dtype)
    yt = rng.standard_normal((d, m)).astype(dtype)
    out, expected = np.full((n, m), np.nan, dtype), np.zeros((n, m), dtype)
    distance.pairwise_distances(x, yt, out, l1, 2)
    ref.pairwise_distances(x, yt, expected, l1, 2)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * d)
    # Every element is owned by one thread and summed in feature order.
    single = np.empty_like(out)
    distance.pairwise_distances(x, yt, single, l1, 1)
    np.testing.assert_array_equal(out, single)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_k_smallest_matches_stable_sort(dtype, rng):
    # Small integers force many ties; NaN must sort last.
    dist = rng.integers(0, 6, (37, 300)).astype(dtype)
    dist[3, ::7] = np.nan
    dist[4] = np.nan
    for k in (1, 5, 300):
        index, values = np.empty((37, k), np.intp), np.empty((37, k), dtype)
        ref_index, ref_values = np.empty_like(index), np.empty_like(values)
        distance.k_smallest(dist, index, values, 2)
        ref.k_smallest(dist, ref_index, ref_values, 2)
        np.testing.assert_array_equal(index, ref_index)
        np.testing.assert_array_equal(values, ref_values)


def test_kernels_reject_mismatched_shapes():
    x, yt = np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="Expected x"):
        distance.pairwise_distances(x, yt, np.zeros((2, 5), np.float32), True, 1)
    with pytest.raises(ValueError, match="k <= 5"):
        distance.k_smallest(np.zeros((2, 5), np.float32), np.zeros((2, 6), np.intp),
                            np.zeros((2, 6), np.float32), 1)
