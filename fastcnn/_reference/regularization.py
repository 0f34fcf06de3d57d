"""NumPy twins of ``fastcnn._ext.regularization``."""
import numpy as np


def axpy(x, y, alpha, n_threads):
    y += alpha * x

def chunk_sums(x, partial, absolute, n_threads):
    """partial[c] = sum of |x| (absolute) or x^2 over the c-th of len(partial) equal runs of x
    (the last shorter)."""
    size = -(-len(x) // len(partial))
    for c in range(len(partial)):
        run = np.asarray(x[c * size:(c + 1) * size], np.float64)
        partial[c] = (np.abs(run) if absolute else run * run).sum()

def add_sign(x, y, alpha, n_threads):
    y += (alpha * np.sign(x)).astype(y.dtype)
