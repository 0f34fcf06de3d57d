"""Ops that work on rows: the axes they reduce over moved last and merged, so that a row
kernel sees an (R, K) matrix. A view when those axes are the trailing ones already, else a
transposed copy, and the result copied back to the array's own layout."""
import math

import numpy as np


def rows_layout(shape, axes):
    """(the permutation that moves ``axes`` last, or None when they are last already; R; K)."""
    rest = [a for a in range(len(shape)) if a not in axes]
    perm = None if rest == list(range(len(rest))) else (*rest, *axes)
    return perm, math.prod(shape[a] for a in rest), math.prod(shape[a] for a in axes)


def as_rows(a, perm, rows, k):
    """``a`` as (R, K) rows: a view, or a copy with the axes moved last."""
    return (a if perm is None else np.ascontiguousarray(a.transpose(perm))).reshape(rows, k)


def rows_buffer(out, perm, rows, k):
    """Where a kernel writes ``out`` as rows: ``out`` itself, or new rows for from_rows."""
    return out.reshape(rows, k) if perm is None else np.empty((rows, k), out.dtype)


def from_rows(rows, perm, out):
    """Rows of a kernel's result back in ``out``'s layout (nothing to do without a
    permutation: the rows are a view of ``out``)."""
    if perm is not None:
        out[...] = rows.reshape([out.shape[a] for a in perm]).transpose(np.argsort(perm))
