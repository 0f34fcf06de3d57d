"""NumPy twins of ``fastcnn._ext.dense``."""
import numpy as np


def _store_biased(acc, bias, relu, out):
    """out = acc + bias (bias may be None), then relu'd if relu, and capped at 6 too if relu is
    2 (relu6): the epilogue of a forward twin."""
    if bias is not None:
        acc += bias
    if relu:
        np.maximum(acc, 0, out=acc)
    if relu == 2:
        np.minimum(acc, 6, out=acc)
    out[...] = acc


def dense_forward(x__nk, w__ko, bias, out__no, relu, n_threads):
    acc = np.asarray(x__nk, np.float64) @ np.asarray(w__ko, np.float64)
    _store_biased(acc, bias, relu, out__no)

def dense_backward_input(dy__no, w__ko, dx__nk, n_threads):
    dx__nk[...] = np.asarray(dy__no, np.float64) @ np.asarray(w__ko, np.float64).T

def dense_backward_weight(x__nk, dy__no, dw__ko, db, n_threads):
    dy = np.asarray(dy__no, np.float64)
    dw__ko[...] = np.asarray(x__nk, np.float64).T @ dy
    if db is not None:
        db[...] = dy.sum(axis=0)
