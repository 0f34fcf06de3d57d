"""Metrics' counting kernels: top-k membership, the weighted confusion counts of predictions
against sorted thresholds, and the weighted confusion matrix of class labels.

The counting kernels cut the rows into the chunks that their ``partial`` outputs have, and one
thread fills one chunk's counts, adding its rows in order; the caller sums the chunks in order.
The chunking is the caller's choice, never the thread count's, so the totals do not depend on
``n_threads``.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport floor
from libc.stdint cimport int64_t

include "_threads.pxi"


def top_k_hits(const floating[:, ::1] y_pred__rk,   # IN  (R, K) scores
               const int64_t[::1] target__r,        # IN  (R,) classes, in [0, K)
               Py_ssize_t k,
               floating[::1] hits__r,               # OUT (R,) 1 or 0
               int n_threads):
    """hits[r] = 1 when fewer than k scores of row r exceed the target's score, so that scores
    tied with the k-th largest all count as in the top k; 0 when the target's score is NaN."""
    cdef Py_ssize_t n = y_pred__rk.shape[0], width = y_pred__rk.shape[1], r, j, above
    cdef floating score
    for r in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * width, n_threads)):
        score = y_pred__rk[r, target__r[r]]
        above = 0
        for j in range(width):
            if y_pred__rk[r, j] > score:
                above = above + 1
        hits__r[r] = 1 if (above < k and score == score) else 0


cdef inline Py_ssize_t bucket(double p, const double *t, Py_ssize_t n_t, double origin,
                              double scale) noexcept nogil:
    """How many of the sorted thresholds t lie strictly below p (0 for NaN). The thresholds'
    spacing gives a first guess, exact for evenly spaced ones up to rounding, and comparisons
    then correct it."""
    cdef double g = (p - origin) * scale
    cdef Py_ssize_t b
    if not g >= 0:  # NaN too
        b = 0
    elif g >= n_t:
        b = n_t
    else:
        b = <Py_ssize_t>floor(g) + 1
        if b > n_t:
            b = n_t
    while b < n_t and p > t[b]:
        b += 1
    while b > 0 and not p > t[b - 1]:
        b -= 1
    return b


def threshold_histograms(const floating[:, ::1] y_pred__nl,   # IN  (N, L) scores
                         const floating[:, ::1] y_true__nl,   # IN  (N, L) labels in [0, 1]
                         const floating[:, ::1] weight__nl,   # IN  (N, L)
                         const double[::1] thresholds__t,     # IN  (T,) ascending
                         double origin, double scale,
                         double[:, :, ::1] positive__clb,     # OUT (C, L, T + 1)
                         double[:, :, ::1] negative__clb,     # OUT (C, L, T + 1)
                         int n_threads):
    """For chunk c of the rows (C chunks of ceil(N / C) rows, the last shorter), label l and
    bucket b: positive[c, l, b] = sum of w * y, negative[c, l, b] = sum of w * (1 - y), over
    the rows of the chunk whose score for label l exceeds exactly b thresholds.

    (origin, scale) guess a score's bucket as floor((p - origin) * scale) + 1; any value gives
    the right buckets, a good one (the first threshold and the inverse spacing, for evenly
    spaced thresholds) in O(1) comparisons.
    """
    cdef Py_ssize_t n = y_pred__nl.shape[0], n_labels = y_pred__nl.shape[1]
    cdef Py_ssize_t n_t = thresholds__t.shape[0], chunks = positive__clb.shape[0]
    cdef Py_ssize_t size = (n + chunks - 1) // chunks if chunks else 0
    cdef Py_ssize_t c, i, l, b
    cdef double w, y
    for c in prange(chunks, nogil=True, schedule="static",
                    num_threads=threads_for(n * n_labels, n_threads)):
        positive__clb[c, :, :] = 0
        negative__clb[c, :, :] = 0
        for i in range(c * size, min(n, (c + 1) * size)):
            for l in range(n_labels):
                b = bucket(y_pred__nl[i, l], &thresholds__t[0], n_t, origin, scale)
                w = weight__nl[i, l]
                y = y_true__nl[i, l]
                positive__clb[c, l, b] += w * y
                negative__clb[c, l, b] += w * (1 - y)


def confusion_matrix(const int64_t[::1] labels__n,        # IN  (N,) true classes in [0, K)
                     const int64_t[::1] predicted__n,     # IN  (N,) predicted classes in [0, K)
                     const floating[::1] weight__n,       # IN  (N,)
                     double[:, :, ::1] partial__ckk,      # OUT (C, K, K)
                     int n_threads):
    """partial[c, i, j] = sum of the weights of the rows of chunk c (C chunks of ceil(N / C)
    rows, the last shorter) whose true class is i and predicted class is j."""
    cdef Py_ssize_t n = labels__n.shape[0], chunks = partial__ckk.shape[0]
    cdef Py_ssize_t size = (n + chunks - 1) // chunks if chunks else 0
    cdef Py_ssize_t c, i
    for c in prange(chunks, nogil=True, schedule="static",
                    num_threads=threads_for(n, n_threads)):
        partial__ckk[c, :, :] = 0
        for i in range(c * size, min(n, (c + 1) * size)):
            partial__ckk[c, labels__n[i], predicted__n[i]] += weight__n[i]
