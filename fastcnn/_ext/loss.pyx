"""Losses: each kernel writes the per-row loss and the scaled gradient in one pass per row.

Cross-entropy works from the logits with a log-sum-exp, which never forms log(softmax) and stays
finite for any finite input. Per-row losses are written out; the caller sums them in a fixed
order so that the total does not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, fabs, log, log1p
from libc.stdint cimport int64_t

from .activation cimport row_softmax

include "_threads.pxi"


cdef int _labels_in_range(Py_ssize_t bad, const int64_t[::1] labels, Py_ssize_t k) except -1:
    # The kernels index each row with its label, so they check it on the way, for free.
    if bad:
        values = memoryview(labels)
        raise ValueError(f"Expected labels in [0, {k}), received values from {min(values)} to "
                         f"{max(values)}")
    return 0


def softmax_cross_entropy(const floating[:, ::1] logits__nk,   # IN  (N, K)
                          const floating[:, ::1] target__nk,   # IN  (N, K) one-hot or soft targets
                          floating[:, ::1] grad__nk,           # OUT (N, K) d loss / d logits
                          floating[::1] loss__n,               # OUT (N,) per-row loss
                          double grad_scale, int n_threads):
    """loss_i = -sum_k t_ik log softmax(z_i)_k;
    grad = grad_scale * (softmax(z_i) sum_k t_ik - t_i)."""
    cdef Py_ssize_t n = logits__nk.shape[0], k = logits__nk.shape[1], i, j
    cdef double lse, mass, dot
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        mass = 0
        dot = 0
        for j in range(k):
            mass = mass + target__nk[i, j]
            dot = dot + <double>target__nk[i, j] * logits__nk[i, j]
        lse = row_softmax(&logits__nk[i, 0], &grad__nk[i, 0], k)
        loss__n[i] = lse * mass - dot
        for j in range(k):
            grad__nk[i, j] = grad_scale * (grad__nk[i, j] * mass - target__nk[i, j])


def sparse_softmax_cross_entropy(const floating[:, ::1] logits__nk,   # IN  (N, K)
                                 const int64_t[::1] labels__n,        # IN  (N,) class indices
                                 floating[:, ::1] grad__nk,           # OUT (N, K)
                                 floating[::1] loss__n,               # OUT (N,)
                                 double grad_scale, int n_threads):
    """As softmax_cross_entropy with one-hot targets given by index; raises (leaving the outputs
    unfinished) unless every label is in [0, K)."""
    cdef Py_ssize_t n = logits__nk.shape[0], k = logits__nk.shape[1], i, j, y, bad = 0
    cdef double zy
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        y = labels__n[i]
        if y < 0 or y >= k:
            bad += 1
        else:
            zy = logits__nk[i, y]
            loss__n[i] = row_softmax(&logits__nk[i, 0], &grad__nk[i, 0], k) - zy
            for j in range(k):
                grad__nk[i, j] = grad_scale * grad__nk[i, j]
            grad__nk[i, y] -= grad_scale
    _labels_in_range(bad, labels__n, k)


EPSILON = 1e-7  # Keras's clip for probabilities given to cross-entropy


def mean_squared_error(const floating[:, ::1] y_pred__nk,   # IN  (N, K)
                       const floating[:, ::1] target__nk,   # IN  (N, K)
                       floating[:, ::1] grad__nk,           # OUT (N, K) d loss / d y_pred
                       floating[::1] loss__n,               # OUT (N,) per-row loss
                       double grad_scale, int n_threads):
    """loss_i = mean_k (p_ik - t_ik)^2; grad = grad_scale * 2 (p_i - t_i) / K."""
    cdef Py_ssize_t n = y_pred__nk.shape[0], k = y_pred__nk.shape[1], i, j
    cdef double d, total, scale = 2 * grad_scale / k
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        total = 0
        for j in range(k):
            d = <double>y_pred__nk[i, j] - target__nk[i, j]
            total = total + d * d
            grad__nk[i, j] = scale * d
        loss__n[i] = total / k


def binary_crossentropy(const floating[:, ::1] y_pred__nk,   # IN  (N, K) probabilities
                        const floating[:, ::1] target__nk,   # IN  (N, K)
                        floating[:, ::1] grad__nk,           # OUT (N, K)
                        floating[::1] loss__n,               # OUT (N,)
                        double grad_scale, int n_threads):
    """Keras's formula on probabilities clipped to [EPSILON, 1 - EPSILON]:
    loss_i = -mean_k (t log p + (1 - t) log(1 - p)). As through TensorFlow's clip, the gradient
    is zero where the clip bites."""
    cdef Py_ssize_t n = y_pred__nk.shape[0], k = y_pred__nk.shape[1], i, j
    cdef floating low = EPSILON, high = 1 - EPSILON  # rounded to the working precision, as in Keras
    cdef double p, t, total, scale = grad_scale / k
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        total = 0
        for j in range(k):
            p = y_pred__nk[i, j]
            t = target__nk[i, j]
            if p < low or p > high:
                p = low if p < low else high
                grad__nk[i, j] = 0
            else:
                grad__nk[i, j] = scale * (p - t) / (p * (1 - p))
            total = total - t * log(p) - (1 - t) * log(1 - p)
        loss__n[i] = total / k


def sigmoid_binary_crossentropy(const floating[:, ::1] logits__nk,   # IN  (N, K)
                                const floating[:, ::1] target__nk,   # IN  (N, K)
                                floating[:, ::1] grad__nk,           # OUT (N, K) d loss / d logits
                                floating[::1] loss__n,               # OUT (N,)
                                double grad_scale, int n_threads):
    """Binary cross-entropy of sigmoid(z), from the logits z in TensorFlow's stable form
    max(z, 0) - z t + log1p(exp(-|z|)), averaged over the row;
    grad = grad_scale (sigmoid(z) - t) / K."""
    cdef Py_ssize_t n = logits__nk.shape[0], k = logits__nk.shape[1], i, j
    cdef double z, t, e, total, scale = grad_scale / k
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        total = 0
        for j in range(k):
            z = logits__nk[i, j]
            t = target__nk[i, j]
            e = exp(-fabs(z))  # never overflows; sigmoid(z) is 1/(1+e) or e/(1+e) by sign
            total = total + (z if z > 0 else 0) - z * t + log1p(e)
            grad__nk[i, j] = scale * ((1 / (1 + e) if z >= 0 else e / (1 + e)) - t)
        loss__n[i] = total / k


def categorical_hinge(const floating[:, ::1] y_pred__nk,   # IN  (N, K)
                      const floating[:, ::1] target__nk,   # IN  (N, K) one-hot
                      floating[:, ::1] grad__nk,           # OUT (N, K)
                      floating[::1] loss__n,               # OUT (N,)
                      double grad_scale, int n_threads):
    """Keras's categorical hinge: loss_i = max(0, neg - pos + 1) with pos = sum_k t_k p_k and
    neg = max_k (1 - t_k) p_k. The gradient is taken where the loss is positive and goes to the
    first index attaining neg."""
    cdef Py_ssize_t n = y_pred__nk.shape[0], k = y_pred__nk.shape[1], i, j, top
    cdef double pos, neg, other, margin
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        pos = 0
        top = 0
        neg = (1 - <double>target__nk[i, 0]) * y_pred__nk[i, 0]
        for j in range(k):
            pos = pos + <double>target__nk[i, j] * y_pred__nk[i, j]
            other = (1 - <double>target__nk[i, j]) * y_pred__nk[i, j]
            if other > neg:
                neg = other
                top = j
        margin = neg - pos + 1
        loss__n[i] = margin if margin > 0 else 0
        for j in range(k):
            grad__nk[i, j] = -grad_scale * target__nk[i, j] if margin > 0 else 0
        if margin > 0:
            grad__nk[i, top] += grad_scale * (1 - target__nk[i, top])


def multiclass_hinge(const floating[:, ::1] scores__nk,   # IN  (N, K)
                     const int64_t[::1] labels__n,        # IN  (N,) class indices
                     floating[:, ::1] grad__nk,           # OUT (N, K)
                     floating[::1] loss__n,               # OUT (N,)
                     double grad_scale, int n_threads):
    """The multiclass SVM loss: loss_i = sum_{j != y_i} max(0, s_ij - s_iy + 1). A margin of
    exactly zero contributes no gradient. Raises as sparse_softmax_cross_entropy does."""
    cdef Py_ssize_t n = scores__nk.shape[0], k = scores__nk.shape[1], i, j, y, violated, bad = 0
    cdef double margin, total
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        y = labels__n[i]
        if y < 0 or y >= k:
            bad += 1
            continue
        total = 0
        violated = 0
        for j in range(k):
            margin = <double>scores__nk[i, j] - scores__nk[i, y] + 1
            if j != y and margin > 0:
                total = total + margin
                violated = violated + 1
                grad__nk[i, j] = grad_scale
            else:
                grad__nk[i, j] = 0
        grad__nk[i, y] = -grad_scale * violated
        loss__n[i] = total
    _labels_in_range(bad, labels__n, k)
