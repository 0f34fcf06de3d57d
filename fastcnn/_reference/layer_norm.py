"""NumPy twins of ``fastcnn._ext.layer_norm``."""
import numpy as np


def _normalized(x, axes):
    """(xhat, mean, inv_std) of x over ``axes``, in float64 (epsilon added by the callers)."""
    x = x.astype(np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    return x - mean, mean, ((x - mean) ** 2).mean(axis=axes, keepdims=True)


def layernorm_forward(x__rk, gamma, beta, y__rk, mean, inv_std, epsilon, n_threads):
    """Each row normalised by its own mean and biased variance, then scaled and shifted."""
    centred, m, var = _normalized(x__rk, 1)
    s = 1 / np.sqrt(var + epsilon)
    y__rk[...] = centred * s * gamma + beta
    mean[...], inv_std[...] = m[:, 0], s[:, 0]


def layernorm_backward(x__rk, dy__rk, gamma, mean, inv_std, dx__rk, dgamma, dbeta, partial__k2c,
                       n_threads):
    """dbeta and dgamma summed over rows; dx through each row's statistics."""
    dy = dy__rk.astype(np.float64)
    s = inv_std.astype(np.float64)[:, None]
    xhat = (x__rk - mean.astype(np.float64)[:, None]) * s
    dbeta[...], dgamma[...] = dy.sum(axis=0), (dy * xhat).sum(axis=0)
    if dx__rk is not None:
        g = dy * gamma
        dx__rk[...] = s * (g - g.mean(axis=1, keepdims=True)
                           - xhat * (g * xhat).mean(axis=1, keepdims=True))


def _grouped(a, groups):
    """(N, S, C) as (N, S, G, C / G)."""
    n, s, c = a.shape
    return a.reshape(n, s, groups, c // groups)


def groupnorm_forward(x__nsc, gamma, beta, y__nsc, mean__ng, inv_std__ng, partial__n2c, groups,
                      epsilon, n_threads):
    """Each (sample, group) normalised by its mean and biased variance over positions and the
    group's channels, then scaled and shifted per channel."""
    centred, m, var = _normalized(_grouped(x__nsc, groups), (1, 3))
    s = 1 / np.sqrt(var + epsilon)
    y__nsc[...] = (centred * s).reshape(x__nsc.shape) * gamma + beta
    mean__ng[...], inv_std__ng[...] = m[:, 0, :, 0], s[:, 0, :, 0]


def groupnorm_backward(x__nsc, dy__nsc, gamma, mean__ng, inv_std__ng, dx__nsc, dgamma, dbeta,
                       partial__n2c, groups, n_threads):
    """dbeta and dgamma summed over samples and positions; dx through each group's
    statistics."""
    s = inv_std__ng.astype(np.float64)[:, None, :, None]
    xhat = (_grouped(x__nsc, groups) - mean__ng.astype(np.float64)[:, None, :, None]) * s
    dy = _grouped(dy__nsc.astype(np.float64), groups)
    dbeta[...] = dy.sum(axis=(0, 1)).reshape(-1)
    dgamma[...] = (dy * xhat).sum(axis=(0, 1)).reshape(-1)
    if dx__nsc is not None:
        g = dy * _grouped(gamma.reshape(1, 1, -1), groups)
        dx__nsc[...] = (s * (g - g.mean(axis=(1, 3), keepdims=True)
                             - xhat * (g * xhat).mean(axis=(1, 3), keepdims=True))
                        ).reshape(x__nsc.shape)
