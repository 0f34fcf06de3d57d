"""NumPy twins of ``fastcnn._ext.regularization``."""
import numpy as np


def axpy(x, y, alpha, n_threads):
    y += alpha * x

def sum_of_squares(x, partial, n_threads):
    """partial[c] = sum of x^2 over the c-th of len(partial) equal runs of x (the last shorter)."""
    size = -(-len(x) // len(partial))
    for c in range(len(partial)):
        run = np.asarray(x[c * size:(c + 1) * size], np.float64)
        partial[c] = (run * run).sum()

def add_sign(x, y, alpha, n_threads):
    y += (alpha * np.sign(x)).astype(y.dtype)

def sum_of_abs(x, partial, n_threads):
    size = -(-len(x) // len(partial))
    for c in range(len(partial)):
        partial[c] = np.abs(np.asarray(x[c * size:(c + 1) * size], np.float64)).sum()
