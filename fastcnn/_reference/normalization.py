"""NumPy twins of ``fastcnn._ext.normalization``: batch normalisation of the columns of an (M, C)
matrix."""
import numpy as np


def batchnorm_forward_training(x__mc, gamma, beta, moving_mean, moving_var, y__mc, mean, inv_std,
                               partial__k2c, momentum, epsilon, n_threads):
    """Batch statistics (biased variance) normalise x and move the moving ones; ``partial`` is
    the kernel's scratch and is left alone here."""
    x = np.asarray(x__mc, np.float64)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    mean[...] = mu
    inv_std[...] = 1 / np.sqrt(var + epsilon)
    moving_mean[...] = moving_mean * momentum + mu * (1 - momentum)
    moving_var[...] = moving_var * momentum + var * (1 - momentum)
    y__mc[...] = (x - mu) / np.sqrt(var + epsilon) * gamma + beta

def batchnorm_forward_inference(x__mc, gamma, beta, moving_mean, moving_var, y__mc, inv_std,
                                epsilon, n_threads):
    s = 1 / np.sqrt(np.asarray(moving_var, np.float64) + epsilon)
    inv_std[...] = s
    y__mc[...] = (np.asarray(x__mc, np.float64) - moving_mean) * s * gamma + beta

def batchnorm_backward(x__mc, dy__mc, gamma, mean, inv_std, dx__mc, dgamma, dbeta, partial__k2c,
                       batch_stats, n_threads):
    xhat = (np.asarray(x__mc, np.float64) - mean) * inv_std
    dy = np.asarray(dy__mc, np.float64)
    dbeta[...] = dy.sum(axis=0)
    dgamma[...] = (dy * xhat).sum(axis=0)
    if dx__mc is None:
        return
    if batch_stats:
        dy = dy - dy.mean(axis=0) - xhat * (dy * xhat).mean(axis=0)
    dx__mc[...] = gamma * np.asarray(inv_std, np.float64) * dy
