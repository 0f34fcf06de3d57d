"""Spatial dropout and Gaussian noise ops: the distribution of the noise (bounds from the sample
size: five standard errors), whole channels dropped, Dropout's mask, seeds, in-place calls and
results bitwise independent of the thread count."""
import math

import numpy as np
import pytest

from fastcnn._ops import dropout, noise

SIGMAS = 5  # each statistical check allows five standard errors of its estimate


def assert_normal(z, mean, std):
    """z's sample mean, variance and share within one standard deviation of the mean against a
    normal distribution's, each within SIGMAS standard errors for z.size samples."""
    n = z.size
    assert abs(z.mean() - mean) < SIGMAS * std / math.sqrt(n)
    assert abs(z.var() - std**2) < SIGMAS * std**2 * math.sqrt(2 / (n - 1))
    inside, p = np.mean(np.abs(z - mean) < std), math.erf(1 / math.sqrt(2))
    assert abs(inside - p) < SIGMAS * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("stddev", [0.1, 1.0])
def test_gaussian_noise_is_normal_with_stddev(stddev, rng):
    x = rng.standard_normal(200_000).astype(np.float64)
    y = noise.gaussian_noise_forward(x, 12345, stddev)
    assert_normal(y - x, 0.0, stddev)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_gaussian_dropout_factors_have_mean_one_and_dropouts_variance(rate):
    std = math.sqrt(rate / (1 - rate))
    factors = noise.gaussian_dropout_forward(np.ones(200_000), 77, std)
    assert_normal(factors, 1.0, std)


def test_gaussian_noise_of_neighbouring_elements_and_seeds_is_uncorrelated():
    n = 200_000
    a = noise.gaussian_noise_forward(np.zeros(n), 5, 1.0)
    b = noise.gaussian_noise_forward(np.zeros(n), 6, 1.0)
    bound = SIGMAS / math.sqrt(n)  # the standard error of a correlation near 0
    assert abs(np.corrcoef(a, b)[0, 1]) < bound
    assert abs(np.corrcoef(a[1:], a[:-1])[0, 1]) < bound


def test_gaussian_dropout_backward_applies_the_forwards_factors(rng):
    x, dy = rng.standard_normal((2, 1000))
    y = noise.gaussian_dropout_forward(x, 9, 0.5)
    np.testing.assert_allclose(noise.gaussian_dropout_backward(dy, 9, 0.5), dy * y / x,
                               rtol=1e-10)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_spatial_dropout_drops_whole_channels_at_rate(rate, rng):
    x = rng.uniform(1, 2, (64, 3, 4, 50)).astype(np.float32)
    y, keep = noise.spatial_dropout_forward(x, 2**63 + 1, rate)
    dropped = y == 0
    assert np.array_equal(dropped, np.broadcast_to(keep[:, None, None, :] == 0, x.shape))
    np.testing.assert_allclose(y, x * keep[:, None, None, :], rtol=0)
    np.testing.assert_allclose(keep[keep != 0], 1 / (1 - rate), rtol=1e-7)
    share, n = np.mean(keep == 0), keep.size
    assert abs(share - rate) < SIGMAS * math.sqrt(rate * (1 - rate) / n)


def test_spatial_dropout_keeps_what_dropout_keeps_of_an_image_per_channel():
    """Channel c of image n is kept as Dropout keeps element (n, c) of an (N, C) array."""
    keep = noise.spatial_dropout_forward(np.ones((8, 2, 2, 40)), 31, 0.5)[1]
    mask = dropout.dropout_forward(np.ones((8, 40)), 31, 0.5)
    assert np.array_equal(keep, mask)


def test_spatial_dropout_backward_applies_keep(rng):
    dy = rng.standard_normal((3, 4, 5, 6))
    keep = np.where(rng.random((3, 6)) < 0.5, 2.0, 0.0)
    np.testing.assert_array_equal(noise.spatial_dropout_backward(dy, keep),
                                  dy * keep[:, None, None, :])


def test_noise_depends_on_the_seed_and_works_in_place(rng):
    x = rng.standard_normal((4, 6, 6, 8))
    for forward, arg in ((noise.gaussian_noise_forward, 0.5),
                         (noise.gaussian_dropout_forward, 0.5)):
        a, b = forward(x, 3, arg), forward(x, 4, arg)
        assert np.array_equal(a, forward(x, 3, arg)) and not np.array_equal(a, b)
        inplace = x.copy()
        assert forward(inplace, 3, arg, out=inplace) is inplace
        assert np.array_equal(inplace, a)
    inplace = x.copy()
    want = noise.spatial_dropout_forward(x, 3, 0.5)[0]
    assert np.array_equal(noise.spatial_dropout_forward(inplace, 3, 0.5, out=inplace)[0], want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_noise_does_not_depend_on_the_thread_count(dtype, rng):
    x = rng.standard_normal((6, 30, 30, 16)).astype(dtype)  # above the one-thread threshold
    runs = []
    for threads in (1, 2, 3):
        y, keep = noise.spatial_dropout_forward(x, 11, 0.4, n_threads=threads)
        runs.append([y, keep, noise.spatial_dropout_backward(x, keep, n_threads=threads),
                     noise.gaussian_noise_forward(x, 11, 0.3, n_threads=threads),
                     noise.gaussian_dropout_forward(x, 11, 0.3, n_threads=threads),
                     noise.gaussian_dropout_backward(x, 11, 0.3, n_threads=threads)])
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("call,fragment", [
    (lambda: noise.spatial_dropout_forward(np.ones((2, 3, 3, 2)), 0, 1.0), "rate"),
    (lambda: noise.spatial_dropout_forward(np.ones((2, 3, 3, 2)), 0, -0.1), "rate"),
    (lambda: noise.spatial_dropout_forward(np.ones(3), 0, 0.5), "x"),
    (lambda: noise.gaussian_noise_forward(np.ones(3), -1, 0.5), "seed"),
    (lambda: noise.gaussian_noise_forward(np.ones(3), 0, -0.5), "stddev"),
    (lambda: noise.gaussian_dropout_forward(np.ones(3), 0, float("nan")), "stddev"),
    (lambda: noise.spatial_dropout_backward(np.ones((2, 3, 3, 2)), np.ones((2, 3))), "keep")])
def test_noise_ops_refuse_bad_arguments(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()
