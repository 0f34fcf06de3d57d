"""NumPy twins of ``fastcnn._ext.resize``: separable resampling as two dense matrices."""
import numpy as np


def _forward_matrix(taps, weights, size):
    """(out_size, size + 1) matrix of the taps' weights; the last column gathers the fill taps."""
    taps, weights = np.asarray(taps), np.asarray(weights, np.float64)
    m = np.zeros((len(taps), size + 1))
    rows = np.repeat(np.arange(len(taps)), taps.shape[1])
    np.add.at(m, (rows, np.where(taps.ravel() < 0, size, taps.ravel())), weights.ravel())
    return m


def _adjoint_matrix(starts, sources, shares, out_size):
    """(size, out_size) matrix: entry (r, i) sums the shares of output i in input r's run."""
    starts = np.asarray(starts)
    m = np.zeros((len(starts) - 1, out_size))
    owners = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    np.add.at(m, (owners, np.asarray(sources)), np.asarray(shares, np.float64))
    return m


def resize2d_forward(x__nhwc, row_taps, row_weights, col_taps, col_weights, fill_value, out__nhwc,
                     n_threads):
    """out[b, i, j] = sum of row_weights[i, t] * col_weights[j, u] * x[b, row_taps[i, t],
    col_taps[j, u]], fill_value where a tap is -1."""
    x = np.asarray(x__nhwc, np.float64)
    n, h, w, c = x.shape
    padded = np.full((n, h + 1, w + 1, c), float(fill_value))
    padded[:, :h, :w] = x
    rows = _forward_matrix(row_taps, row_weights, h)
    cols = _forward_matrix(col_taps, col_weights, w)
    out__nhwc[...] = np.einsum("ir,brsc,js->bijc", rows, padded, cols)


def resize2d_backward(dy__nhwc, row_starts, row_sources, row_shares, col_starts, col_sources,
                      col_shares, dx__nhwc, n_threads):
    """dx[b, r, s] = sum over row r's and column s's runs of the shares times dy."""
    dy = np.asarray(dy__nhwc, np.float64)
    rows = _adjoint_matrix(row_starts, row_sources, row_shares, dy.shape[1])
    cols = _adjoint_matrix(col_starts, col_sources, col_shares, dy.shape[2])
    dx__nhwc[...] = np.einsum("ri,bijc,sj->brsc", rows, dy, cols)
