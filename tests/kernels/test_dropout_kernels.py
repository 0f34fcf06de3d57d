"""The dropout kernels against their twins: masks that depend on the seed alone, whatever the
thread count, the length or the output (x itself, as in the fused conv step)."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import dropout


@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_matches_reference(rate, dtype, rng):
    x = rng.standard_normal(100_000).astype(dtype)
    seed = 2**63 + 12345  # the full uint64 range is valid
    out, ref_out = np.empty_like(x), np.empty_like(x)
    dropout.dropout_forward(x, seed, rate, out, 2)
    ref.dropout_forward(x, seed, rate, ref_out, 2)
    np.testing.assert_allclose(out, ref_out, rtol=1e-6)
    dropped = np.count_nonzero(out == 0) / x.size
    assert abs(dropped - rate) < 0.01  # the draws are uniform
    dx, ref_dx = np.empty_like(x), np.empty_like(x)
    dropout.dropout_backward(x, seed, rate, dx, 2)
    ref.dropout_backward(x, seed, rate, ref_dx, 2)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-6)
    assert np.array_equal(dx == 0, out == 0)  # backward recomputes the forward's mask


def test_dropout_masks_depend_on_seed_not_threads(rng):
    x = rng.standard_normal(100_000).astype(np.float32)
    one, two, other = (np.empty_like(x) for _ in range(3))
    dropout.dropout_forward(x, 7, 0.5, one, 1)
    dropout.dropout_forward(x, 7, 0.5, two, 2)
    dropout.dropout_forward(x, 8, 0.5, other, 2)
    assert np.array_equal(one, two) and not np.array_equal(one, other)


@pytest.mark.parametrize("seed", [0, 7, 2**32 - 1, 2**63])
def test_dropout_masks_of_neighbouring_seeds_are_independent(seed):
    # The hash keys one 32-bit mixer with the seed; a weak keying would make neighbouring seeds'
    # masks shifted or flipped copies of each other, so that both keep far more or far less than
    # a quarter of the elements at rate 0.5 (the standard error here is 0.0014).
    n = 100_000
    a, b = ref.dropout_keep(seed, n, 0.5), ref.dropout_keep(seed + 1, n, 0.5)
    assert abs(np.count_nonzero(a & b) / n - 0.25) < 0.01
    assert abs(np.count_nonzero(a[1:] & a[:-1]) / n - 0.25) < 0.01  # and neighbouring elements
    # elements j and j + 16 of a block of 32 take the two halves of one hash
    first, second = a.reshape(-1, 2, 16)[:, 0], a.reshape(-1, 2, 16)[:, 1]
    assert abs(np.count_nonzero(first & second) / first.size - 0.25) < 0.01


@pytest.mark.parametrize("n", [1, 31, 32, 33, 1000, 4096 * 3 + 17])
def test_dropout_in_place_and_ragged_lengths(n, rng):
    """Lengths around the blocks of 32 that share hashes, and out being x itself, as in the
    fused conv step."""
    x = rng.standard_normal(n).astype(np.float32)
    want = np.empty_like(x)
    ref.dropout_forward(x, 99, 0.3, want, 2)
    dropout.dropout_forward(x, 99, 0.3, x, 2)
    np.testing.assert_allclose(x, want, rtol=1e-6)
