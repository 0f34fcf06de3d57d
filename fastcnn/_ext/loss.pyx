"""Losses: each kernel writes the per-row loss and the scaled gradient in one pass per row.

Cross-entropy works from the logits with a log-sum-exp, which never forms log(softmax) and stays
finite for any finite input. Per-row losses are written out; the caller sums them in a fixed
order so that the total does not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, fabs, log, log1p, pow
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


EPSILON = 1e-7  # Keras's epsilon: the clip for probabilities, the guard of logs and divisions
cdef double LOG2 = log(2.0)


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


def mean_absolute_error(const floating[:, ::1] y_pred__nk,   # IN  (N, K)
                        const floating[:, ::1] target__nk,   # IN  (N, K)
                        floating[:, ::1] grad__nk,           # OUT (N, K) d loss / d y_pred
                        floating[::1] loss__n,               # OUT (N,) per-row loss
                        double grad_scale, int n_threads):
    """loss_i = mean_k |p_ik - t_ik|; grad = grad_scale * sign(p_i - t_i) / K, 0 where equal."""
    cdef Py_ssize_t n = y_pred__nk.shape[0], k = y_pred__nk.shape[1], i, j
    cdef double d, total, scale = grad_scale / k
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        total = 0
        for j in range(k):
            d = <double>y_pred__nk[i, j] - target__nk[i, j]
            total = total + fabs(d)
            grad__nk[i, j] = scale if d > 0 else (-scale if d < 0 else 0)
        loss__n[i] = total / k


def huber(const floating[:, ::1] y_pred__nk,   # IN  (N, K)
          const floating[:, ::1] target__nk,   # IN  (N, K)
          floating[:, ::1] grad__nk,           # OUT (N, K)
          floating[::1] loss__n,               # OUT (N,)
          double delta, double grad_scale, int n_threads):
    """Keras's Huber loss of d = p - t, averaged over the row: d^2 / 2 where |d| <= delta, else
    delta |d| - delta^2 / 2; its derivative is d, or delta sign(d) beyond delta."""
    cdef Py_ssize_t n = y_pred__nk.shape[0], k = y_pred__nk.shape[1], i, j
    cdef double d, a, total, scale = grad_scale / k
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        total = 0
        for j in range(k):
            d = <double>y_pred__nk[i, j] - target__nk[i, j]
            a = fabs(d)
            if a <= delta:
                total = total + 0.5 * d * d
                grad__nk[i, j] = scale * d
            else:
                total = total + delta * a - 0.5 * delta * delta
                grad__nk[i, j] = scale * delta if d > 0 else -scale * delta
        loss__n[i] = total / k


def log_cosh(const floating[:, ::1] y_pred__nk,   # IN  (N, K)
             const floating[:, ::1] target__nk,   # IN  (N, K)
             floating[:, ::1] grad__nk,           # OUT (N, K)
             floating[::1] loss__n,               # OUT (N,)
             double grad_scale, int n_threads):
    """loss_i = mean_k log(cosh(d)), d = p - t, as |d| + log1p(exp(-2|d|)) - log 2, which never
    overflows; grad = grad_scale * tanh(d) / K."""
    cdef Py_ssize_t n = y_pred__nk.shape[0], k = y_pred__nk.shape[1], i, j
    cdef double d, a, e, total, scale = grad_scale / k
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        total = 0
        for j in range(k):
            d = <double>y_pred__nk[i, j] - target__nk[i, j]
            a = fabs(d)
            e = exp(-2 * a)
            total = total + a + log1p(e) - LOG2
            grad__nk[i, j] = scale * (1 - e) / (1 + e) * (1 if d >= 0 else -1)
        loss__n[i] = total / k


def kl_divergence(const floating[:, ::1] y_pred__nk,   # IN  (N, K) probabilities
                  const floating[:, ::1] target__nk,   # IN  (N, K) probabilities
                  floating[:, ::1] grad__nk,           # OUT (N, K)
                  floating[::1] loss__n,               # OUT (N,)
                  double grad_scale, int n_threads):
    """Keras's KL divergence, a sum over the row: both sides clipped to [EPSILON, 1],
    loss_i = sum_k t log(t / p); grad = -grad_scale t / p, zero where p is clipped."""
    cdef Py_ssize_t n = y_pred__nk.shape[0], k = y_pred__nk.shape[1], i, j
    cdef floating low = EPSILON
    cdef double p, t, total
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        total = 0
        for j in range(k):
            p = y_pred__nk[i, j]
            t = target__nk[i, j]
            t = low if t < low else (1 if t > 1 else t)
            if p < low or p > 1:
                p = low if p < low else 1
                grad__nk[i, j] = 0
            else:
                grad__nk[i, j] = -grad_scale * t / p
            total = total + t * log(t / p)
        loss__n[i] = total


def poisson(const floating[:, ::1] y_pred__nk,   # IN  (N, K) rates
            const floating[:, ::1] target__nk,   # IN  (N, K) counts
            floating[:, ::1] grad__nk,           # OUT (N, K)
            floating[::1] loss__n,               # OUT (N,)
            double grad_scale, int n_threads):
    """Keras's Poisson loss: loss_i = mean_k p - t log(p + EPSILON);
    grad = grad_scale (1 - t / (p + EPSILON)) / K."""
    cdef Py_ssize_t n = y_pred__nk.shape[0], k = y_pred__nk.shape[1], i, j
    cdef floating eps = EPSILON
    cdef double p, t, total, scale = grad_scale / k
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        total = 0
        for j in range(k):
            p = y_pred__nk[i, j]
            t = target__nk[i, j]
            total = total + p - t * log(p + eps)
            grad__nk[i, j] = scale * (1 - t / (p + eps))
        loss__n[i] = total / k


cdef inline double _focal_term(double o, double t, double alpha, double gamma, double low,
                               double high, double* loss) noexcept nogil:
    """Adds alpha (1 - o)^gamma (-t log o) to loss, o clipped to [low, high]; returns its
    derivative with respect to o (zero where the clip bites)."""
    cdef double c = low if o < low else (high if o > high else o)
    cdef double focal = pow(1 - c, gamma)
    loss[0] = loss[0] - alpha * focal * t * log(c)
    if o < low or o > high:
        return 0
    if gamma == 0:
        return -alpha * t / c
    return alpha * t * (gamma * pow(1 - c, gamma - 1) * log(c) - focal / c)


def categorical_focal_crossentropy(const floating[:, ::1] y_pred__nk,   # IN  (N, K)
                                   const floating[:, ::1] target__nk,   # IN  (N, K)
                                   const floating[::1] alpha__k,        # IN  (K,) class weights
                                   floating[:, ::1] grad__nk,           # OUT (N, K)
                                   floating[::1] loss__n,               # OUT (N,)
                                   double gamma, bint from_logits, double grad_scale,
                                   int n_threads):
    """Keras's categorical focal cross-entropy: p = softmax(y_pred) from logits, or y_pred;
    o = p / sum(p) clipped to [EPSILON, 1 - EPSILON];
    loss_i = sum_k alpha_k (1 - o_k)^gamma (-t_k log o_k). With gamma 0 and alpha 1 it is
    Keras's categorical cross-entropy of probabilities. The gradient goes back through the
    normalisation (and the softmax), zero where the clip bites."""
    cdef Py_ssize_t n = y_pred__nk.shape[0], k = y_pred__nk.shape[1], i, j
    cdef floating low = EPSILON, high = 1 - EPSILON
    cdef double s, o, g, dot, total, p
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        if from_logits:  # the probabilities wait in the gradient's row
            row_softmax(&y_pred__nk[i, 0], &grad__nk[i, 0], k)
        s = 0
        for j in range(k):
            s = s + (grad__nk[i, j] if from_logits else y_pred__nk[i, j])
        total = 0
        dot = 0
        for j in range(k):
            o = (grad__nk[i, j] if from_logits else y_pred__nk[i, j]) / s
            dot = dot + o * _focal_term(o, target__nk[i, j], alpha__k[j], gamma, low, high,
                                        &total)
        loss__n[i] = total
        for j in range(k):
            p = grad__nk[i, j] if from_logits else 1
            o = (grad__nk[i, j] if from_logits else y_pred__nk[i, j]) / s
            g = _focal_term(o, target__nk[i, j], alpha__k[j], gamma, low, high, &total)
            # through o = p / s (and p = softmax(z), whose chain term vanishes as sum(o) = 1)
            grad__nk[i, j] = grad_scale * p * (g - dot) / s


def binary_focal_crossentropy(const floating[:, ::1] y_pred__nk,   # IN  (N, K)
                              const floating[:, ::1] target__nk,   # IN  (N, K)
                              floating[:, ::1] grad__nk,           # OUT (N, K)
                              floating[::1] loss__n,               # OUT (N,)
                              double alpha, double gamma, bint apply_class_balancing,
                              bint from_logits, double grad_scale, int n_threads):
    """Keras's binary focal cross-entropy, averaged over the row: p = sigmoid(y_pred) from
    logits, or y_pred; bce = -(t log c + (1 - t) log(1 - c)) with c = p clipped to
    [EPSILON, 1 - EPSILON]; p_t = t p + (1 - t)(1 - p); loss = w (1 - p_t)^gamma bce, with
    w = t alpha + (1 - t)(1 - alpha) under class balancing, else 1."""
    cdef Py_ssize_t n = y_pred__nk.shape[0], k = y_pred__nk.shape[1], i, j
    cdef floating low = EPSILON, high = 1 - EPSILON
    cdef double z, p, c, t, e, u, w, bce, focal, dbce, dfocal, total, scale = grad_scale / k
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        total = 0
        for j in range(k):
            t = target__nk[i, j]
            if from_logits:
                z = y_pred__nk[i, j]
                e = exp(-fabs(z))
                p = 1 / (1 + e) if z >= 0 else e / (1 + e)
            else:
                p = y_pred__nk[i, j]
            c = low if p < low else (high if p > high else p)
            bce = -(t * log(c) + (1 - t) * log(1 - c))
            dbce = 0 if (p < low or p > high) else (c - t) / (c * (1 - c))
            u = 1 - (t * p + (1 - t) * (1 - p))
            focal = pow(u, gamma)
            # d focal / d p; a zero base with 0 < gamma < 1 has no derivative: none is taken
            dfocal = 0 if gamma == 0 or (u <= 0 and gamma < 1) else \
                -(2 * t - 1) * gamma * pow(u, gamma - 1)
            w = t * alpha + (1 - t) * (1 - alpha) if apply_class_balancing else 1
            total = total + w * focal * bce
            grad__nk[i, j] = scale * w * (dfocal * bce + focal * dbce) * \
                (p * (1 - p) if from_logits else 1)
        loss__n[i] = total / k


def dice(const floating[:, ::1] y_pred__gm,   # IN  (G, M) one group of values per row
         const floating[:, ::1] target__gm,   # IN  (G, M)
         floating[:, ::1] grad__gm,           # OUT (G, M)
         floating[::1] loss__g,               # OUT (G,) per-group loss
         double grad_scale, int n_threads):
    """Keras's Dice loss of each row: 1 - 2 sum(t p) / (sum(t) + sum(p) + EPSILON);
    grad = grad_scale (2 I / D^2 - 2 t / D) with I = sum(t p) and D the denominator."""
    cdef Py_ssize_t n = y_pred__gm.shape[0], m = y_pred__gm.shape[1], i, j
    cdef floating eps = EPSILON
    cdef double inter, denom
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * m, n_threads)):
        inter = 0
        denom = 0
        for j in range(m):
            inter = inter + <double>target__gm[i, j] * y_pred__gm[i, j]
            denom = denom + <double>target__gm[i, j] + y_pred__gm[i, j]
        denom = denom + eps
        loss__g[i] = 1 - 2 * inter / denom
        for j in range(m):
            grad__gm[i, j] = grad_scale * 2 * (inter / denom - target__gm[i, j]) / denom
