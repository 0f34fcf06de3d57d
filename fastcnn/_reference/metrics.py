"""NumPy twins of ``fastcnn._ext.metrics``."""
import numpy as np


def _chunk_rows(n, chunks):
    size = -(-n // chunks)
    return [slice(c * size, min(n, (c + 1) * size)) for c in range(chunks)]


def top_k_hits(y_pred__rk, target__r, k, hits__r, n_threads):
    score = y_pred__rk[np.arange(len(target__r)), target__r]
    above = (y_pred__rk > score[:, None]).sum(axis=1)
    hits__r[...] = (above < k) & ~np.isnan(score)


def threshold_histograms(y_pred__nl, y_true__nl, weight__nl, thresholds__t, origin, scale,
                         positive__clb, negative__clb, n_threads):
    """Buckets by sorted search: the thresholds strictly below each score (none for NaN)."""
    n_t = len(thresholds__t)
    buckets = np.searchsorted(thresholds__t, y_pred__nl.astype(np.float64), side="left")
    buckets[np.isnan(y_pred__nl)] = 0
    w = weight__nl.astype(np.float64)
    y = y_true__nl.astype(np.float64)
    for c, rows in enumerate(_chunk_rows(len(y_pred__nl), len(positive__clb))):
        for label in range(y_pred__nl.shape[1]):
            b = buckets[rows, label]
            positive__clb[c, label] = np.bincount(b, (w * y)[rows, label], n_t + 1)
            negative__clb[c, label] = np.bincount(b, (w * (1 - y))[rows, label], n_t + 1)


def confusion_matrix(labels__n, predicted__n, weight__n, partial__ckk, n_threads):
    k = partial__ckk.shape[1]
    for c, rows in enumerate(_chunk_rows(len(labels__n), len(partial__ckk))):
        cells = labels__n[rows] * k + predicted__n[rows]
        partial__ckk[c] = np.bincount(cells, weight__n[rows].astype(np.float64),
                                      k * k).reshape(k, k)
