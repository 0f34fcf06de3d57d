"""NumPy twins of ``fastcnn._ext.noise``."""
import numpy as np

from .dropout import dropout_keep, splitmix64


def standard_normal(seed, n):
    """The kernels' z_i for i < n: Box-Muller of the two 32-bit halves of splitmix64(seed, i),
    u1 = (high + 1) / 2**32 and u2 = low / 2**32, z = sqrt(-2 log u1) * cos(2 pi u2)."""
    h = splitmix64(seed, np.arange(n, dtype=np.uint64))
    u1 = ((h >> np.uint64(32)).astype(np.float64) + 1) / 2**32
    u2 = (h & np.uint64(0xFFFFFFFF)).astype(np.float64) / 2**32
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


def spatial_dropout_forward(x__nsc, seed, rate, out__nsc, keep__nc, n_threads):
    """keep[n, c] = 1 / (1 - rate) where Dropout's mask of an (N, C) array keeps (n, c), else
    0; out = x * keep over every position."""
    n, _, c = x__nsc.shape
    keep__nc[...] = np.where(dropout_keep(seed, n * c, rate).reshape(n, c), 1 / (1 - rate), 0)
    out__nsc[...] = x__nsc * keep__nc[:, None, :]


def spatial_dropout_backward(dy__nsc, keep__nc, dx__nsc, n_threads):
    """dx = dy * keep over every position."""
    dx__nsc[...] = dy__nsc * keep__nc[:, None, :]


def gaussian_noise_forward(x, seed, stddev, out, n_threads):
    """out = x + stddev * z."""
    out[...] = x + stddev * standard_normal(seed, x.size)


def gaussian_dropout_forward(x, seed, stddev, out, n_threads):
    """out = x * (1 + stddev * z)."""
    out[...] = x * (1 + stddev * standard_normal(seed, x.size))


def gaussian_dropout_backward(dy, seed, stddev, dx, n_threads):
    """dx = dy * (1 + stddev * z), the forward's factors."""
    gaussian_dropout_forward(dy, seed, stddev, dx, n_threads)
