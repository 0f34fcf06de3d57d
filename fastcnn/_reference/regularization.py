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
