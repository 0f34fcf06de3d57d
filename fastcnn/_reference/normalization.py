"""NumPy twins of ``fastcnn._ext.normalization``: batch normalisation of the columns of an (M, C)
matrix, with the relu and residual that may follow it."""
import numpy as np


def _activate(z, residual, relu, relu_max=np.inf):
    """act(z [+ residual]) in float64, act relu capped at relu_max or the identity."""
    if residual is not None:
        z = z + residual
    return np.clip(z, 0, relu_max) if relu else z


def _total(sums, rows, across):
    """(sums, rows), or their totals over the processes through ``across`` (which takes the
    sums followed by the rows, as from the kernel)."""
    both = np.append(sums, rows)
    if across is not None:
        across(both)
    return both[:-1], both[-1]


def _chunk_rows(m, chunk_rows):
    """The number of rows of each chunk of an (m, C) matrix."""
    return np.minimum(chunk_rows, m - chunk_rows * np.arange(-(-m // chunk_rows)))


def _chunk_moments(x__mc, chunk_rows):
    """(K, 2, C): each chunk's column means and sums of squared deviations from them."""
    x = np.asarray(x__mc, np.float64)
    chunks = [x[k:k + chunk_rows] for k in range(0, len(x), chunk_rows)]
    return np.array([[c.mean(axis=0), ((c - c.mean(axis=0)) ** 2).sum(axis=0)] for c in chunks]
                    ).reshape(len(chunks), 2, x.shape[1])


def chunk_grad_sums(x__mc, dy__mc, gamma, beta, mean, inv_std, relu, relu_max, chunk_rows):
    """(K, 2, C): each chunk's column sums of g (dy through the relu) and of g * xhat."""
    g = _masked(x__mc, dy__mc, None, gamma, beta, mean, inv_std, relu, relu_max)
    gx = g * (np.asarray(x__mc, np.float64) - mean) * inv_std
    return np.array([[g[k:k + chunk_rows].sum(axis=0), gx[k:k + chunk_rows].sum(axis=0)]
                     for k in range(0, len(g), chunk_rows)]).reshape(-1, 2, g.shape[1])


def batchnorm_forward_training(x__mc, residual__mc, gamma, beta, moving_mean, moving_var, y__mc,
                               mean, inv_std, partial__k2c, chunk_rows, moments_given, across,
                               momentum, epsilon, relu, relu_max, n_threads):
    """Batch statistics (biased variance; with ``across``, the whole batch's) normalise x and
    move the moving ones. Without ``moments_given``, ``partial`` and ``chunk_rows`` are the
    kernel's scratch and its layout, unused here; with it, the statistics come from the chunks'
    means and squared deviations in ``partial`` (parallel-variance formula). y None: the
    statistics alone."""
    x = np.asarray(x__mc, np.float64)
    if moments_given:
        counts = _chunk_rows(len(x), chunk_rows)[:, None]
        means, squares = partial__k2c[:, 0], partial__k2c[:, 1]
        total, rows = _total((means * counts).sum(axis=0), len(x), across)
        mu = total / rows
        var = _total((squares + counts * (means - mu) ** 2).sum(axis=0), len(x), across)[0] / rows
    else:
        total, rows = _total(x.sum(axis=0), len(x), across)
        mu = total / rows
        var = _total(((x - mu) ** 2).sum(axis=0), len(x), across)[0] / rows
    mean[...] = mu
    inv_std[...] = 1 / np.sqrt(var + epsilon)
    moving_mean[...] = moving_mean * momentum + mu * (1 - momentum)
    moving_var[...] = moving_var * momentum + var * (1 - momentum)
    if y__mc is None:
        return
    y__mc[...] = _activate((x - mu) / np.sqrt(var + epsilon) * gamma + beta, residual__mc, relu,
                           relu_max)


def batchnorm_forward_inference(x__mc, residual__mc, gamma, beta, moving_mean, moving_var, y__mc,
                                inv_std, epsilon, relu, relu_max, n_threads):
    s = 1 / np.sqrt(np.asarray(moving_var, np.float64) + epsilon)
    inv_std[...] = s
    y__mc[...] = _activate((np.asarray(x__mc, np.float64) - moving_mean) * s * gamma + beta,
                           residual__mc, relu, relu_max)


def batchnorm_apply(x__mc, residual__mc, gamma, beta, mean, inv_std, y__mc, relu, relu_max,
                    n_threads):
    y__mc[...] = _activate((np.asarray(x__mc, np.float64) - mean) * inv_std * gamma + beta,
                           residual__mc, relu, relu_max)


def batchnorm_backward(x__mc, dy__mc, dy2__mc, residual__mc, gamma, beta, mean, inv_std, dx__mc,
                       dgamma, dbeta, dres__mc, partial__k2c, chunk_rows, across, relu, relu_max,
                       batch_stats, n_threads, grad_means__2c=None, sums_given=False):
    """With sums_given, the sums are those of the chunks in partial."""
    # The two parts add in their own dtype, as the kernel (and merge.add_forward) adds them.
    dy = dy__mc if dy2__mc is None else dy__mc + dy2__mc
    g = _masked(x__mc, dy, residual__mc, gamma, beta, mean, inv_std, relu, relu_max)
    xhat = (np.asarray(x__mc, np.float64) - mean) * inv_std
    local = (partial__k2c.sum(axis=0).reshape(-1) if sums_given
             else np.concatenate([g.sum(axis=0), (g * xhat).sum(axis=0)]))
    sums, rows = _total(local, len(g), across)
    c = len(sums) // 2
    dbeta[...], dgamma[...] = sums[:c], sums[c:]
    means = sums.reshape(2, c) / rows if batch_stats else np.zeros((2, c))
    if grad_means__2c is not None:
        grad_means__2c[...] = means
    if dres__mc is not None:
        dres__mc[...] = g
    if dx__mc is not None:
        dx__mc[...] = input_gradient(x__mc, dy, residual__mc, gamma, beta, mean, inv_std, relu,
                                     relu_max, means)


def _masked(x__mc, dy, residual__mc, gamma, beta, mean, inv_std, relu, relu_max):
    """dy in float64, 0 where the relu (if any) after the normalisation (and the residual) was
    flat."""
    dy = np.asarray(dy, np.float64)
    if not relu:
        return dy
    xhat = (np.asarray(x__mc, np.float64) - mean) * inv_std
    pre = _activate(xhat * gamma + beta, residual__mc, False)
    return np.where((pre > 0) & (pre < relu_max), dy, 0)


def input_gradient(x__mc, dy, residual__mc, gamma, beta, mean, inv_std, relu, relu_max, means):
    """The normalisation's dx from its output's gradient dy and the means (2, C) of the
    gradient sums."""
    g = _masked(x__mc, dy, residual__mc, gamma, beta, mean, inv_std, relu, relu_max)
    xhat = (np.asarray(x__mc, np.float64) - mean) * inv_std
    return gamma * np.asarray(inv_std, np.float64) * (g - means[0] - xhat * means[1])


def batchnorm_fold(kernel__kc, bias, gamma, beta, moving_mean, moving_var, out_kernel__kc,
                   out_bias, epsilon, n_threads):
    s = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(moving_var, np.float64) + epsilon)
    out_kernel__kc[...] = np.asarray(kernel__kc, np.float64) * s
    out_bias[...] = ((0 if bias is None else np.asarray(bias, np.float64)) - moving_mean) * s + beta
