"""The regularization kernels (axpy, chunk_sums) against their twins, and thread
independence."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import regularization


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size,chunks", [(1, 1), (10, 3), (100_003, 7)])
@pytest.mark.parametrize("absolute", [False, True])
def test_chunk_sums_match_reference(dtype, size, chunks, absolute, rng):
    x = rng.standard_normal(size).astype(dtype)
    partial, ref_partial = np.empty(chunks), np.empty(chunks)
    regularization.chunk_sums(x, partial, absolute, 2)
    ref.chunk_sums(x, ref_partial, absolute, 2)
    np.testing.assert_allclose(partial, ref_partial, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpy_matches_reference(dtype, rng):
    x, y = rng.standard_normal(70_000).astype(dtype), rng.standard_normal(70_000).astype(dtype)
    expected = y.copy()
    ref.axpy(x, expected, 0.3, 2)
    regularization.axpy(x, y, 0.3, 2)
    np.testing.assert_allclose(y, expected, rtol=1e-6 if dtype == np.float32 else 1e-15)
    regularization.axpy(y, y, -0.5, 2)  # x may be y: a rescaling
    np.testing.assert_allclose(y, expected * 0.5, rtol=1e-6 if dtype == np.float32 else 1e-15)


def test_axpy_threads_agree(rng):
    x, y = (rng.standard_normal(70_000).astype(np.float32) for _ in range(2))
    one, two = y.copy(), y.copy()
    regularization.axpy(x, one, 0.3, 1)
    regularization.axpy(x, two, 0.3, 2)
    assert np.array_equal(one, two)
