"""Activations, each forward beside its backward: the pointwise ones, the row-wise softmax and
log-softmax, and PReLU with its trained slopes.

The pointwise kernels work on flat arrays (callers pass ``a.reshape(-1)``); softmax and
log-softmax work on the rows of an (N, K) matrix. A backward pass takes the forward *output* ``y``
wherever the derivative is a function of it (the monotone activations), so that the input need
not be kept; the others (gelu, silu, hard_silu, mish) take the forward's input ``x``. Each output
element is computed by one thread, so results do not depend on the thread count. Arithmetic is in
double, rounded once to the array's type, except for the piecewise-linear ones (the relu family,
hard_sigmoid, hard_silu), which compute in the array's type as Keras does and without branches.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport erf, exp, expm1, fabs, log, log1p, sqrt, tanh

include "_threads.pxi"


def relu_forward(const floating[::1] x,   # IN  (n,)
                 floating[::1] out,       # OUT (n,)
                 int n_threads):
    """out = max(x, 0)."""
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = x[i] if x[i] > 0 else 0


def relu_backward(const floating[::1] y,    # IN  (n,) relu's output
                  const floating[::1] dy,   # IN  (n,)
                  floating[::1] dx,         # OUT (n,)
                  int n_threads):
    """dx = dy where y > 0, else 0."""
    # Both operands are loaded before the select so that it compiles without a branch: the sign
    # of y is as good as random, and a mispredicted branch per element would cost more than the
    # loop's arithmetic.
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating g
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        g = dy[i]
        dx[i] = g if y[i] > 0 else 0


def sigmoid_forward(const floating[::1] x,   # IN  (n,)
                    floating[::1] out,       # OUT (n,)
                    int n_threads):
    """out = 1 / (1 + exp(-x))."""
    # exp(-x) overflows to inf for very negative x, giving exactly 0 rather than NaN.
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = 1 / (1 + exp(-x[i]))


def sigmoid_backward(const floating[::1] y,    # IN  (n,) sigmoid's output
                     const floating[::1] dy,   # IN  (n,)
                     floating[::1] dx,         # OUT (n,)
                     int n_threads):
    """dx = dy * y * (1 - y)."""
    cdef Py_ssize_t i, n = y.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        dx[i] = dy[i] * y[i] * (1 - y[i])


def tanh_forward(const floating[::1] x,   # IN  (n,)
                 floating[::1] out,       # OUT (n,)
                 int n_threads):
    """out = tanh(x)."""
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = tanh(x[i])


def tanh_backward(const floating[::1] y,    # IN  (n,) tanh's output
                  const floating[::1] dy,   # IN  (n,)
                  floating[::1] dx,         # OUT (n,)
                  int n_threads):
    """dx = dy * (1 - y^2)."""
    cdef Py_ssize_t i, n = y.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        dx[i] = dy[i] * (1 - y[i] * y[i])


def general_relu_forward(const floating[::1] x,   # IN  (n,)
                         floating[::1] out,       # OUT (n,)
                         double negative_slope,   # >= 0
                         double max_value,        # >= 0; inf for no cap
                         double threshold,        # >= 0
                         int n_threads):
    """Keras's relu with its options: out = min(x, max_value) where x > threshold, else
    negative_slope * (x - threshold). leaky_relu (no cap, threshold 0) and relu6 (max_value 6)
    are its special cases. Computed in the array's type, as Keras does, from both pieces and a
    select: the sign of x is as good as random, and a branch would be mispredicted (the loop
    then vectorises too)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v, capped, below
    cdef floating slope = negative_slope, cap = max_value, thr = threshold
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = x[i]
        capped = v if v < cap else cap
        below = slope * (v - thr)
        out[i] = capped if v > thr else below


def general_relu_backward(const floating[::1] y,    # IN  (n,) general_relu's output
                          const floating[::1] dy,   # IN  (n,)
                          floating[::1] dx,         # OUT (n,)
                          double negative_slope,
                          double max_value,
                          double threshold,
                          int n_threads):
    """dx = dy where 0 < y < max_value, negative_slope * dy where y < 0, else 0. With the
    options' signs y tells the pieces apart: y < 0 only below the threshold (where the slope is
    positive), 0 < y < max_value only on the identity piece; y = 0 is the kink (or a flat piece)
    and y = max_value the cap, both given 0 as Keras's relu and relu6 give them. The factor is
    built from the comparisons, branch-free as the forward."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating v, g, inside, below
    cdef floating slope = negative_slope, cap = max_value
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = y[i]
        g = dy[i]
        inside = g if v < cap else 0
        inside = inside if v > 0 else 0
        below = slope * g
        dx[i] = below if v < 0 else inside


def elu_forward(const floating[::1] x,   # IN  (n,)
                floating[::1] out,       # OUT (n,)
                double alpha,            # >= 0
                double scale,
                int n_threads):
    """out = scale * (x where x > 0, else alpha * (exp(x) - 1)): elu with scale 1, selu with
    Keras's alpha and scale."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double v
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = x[i]
        out[i] = scale * (v if v > 0 else alpha * expm1(v))


def elu_backward(const floating[::1] y,    # IN  (n,) elu's output
                 const floating[::1] dy,   # IN  (n,)
                 floating[::1] dx,         # OUT (n,)
                 double alpha,             # >= 0, so that y > 0 exactly where x > 0
                 double scale,
                 int n_threads):
    """dx = dy * scale where y > 0, else dy * (y + scale * alpha) (= scale * alpha * exp(x))."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef double v
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = y[i]
        dx[i] = dy[i] * (scale if v > 0 else v + scale * alpha)


cdef double SQRT_HALF = 0.70710678118654752440        # 1 / sqrt(2)
cdef double INV_SQRT_2PI = 0.39894228040143267794     # 1 / sqrt(2 pi)
cdef double SQRT_2_OVER_PI = 0.79788456080286535588   # sqrt(2 / pi)
cdef double GELU_CUBIC = 0.044715                     # the tanh approximation's x^3 coefficient


def gelu_forward(const floating[::1] x,   # IN  (n,)
                 floating[::1] out,       # OUT (n,)
                 bint approximate,
                 int n_threads):
    """out = x * Phi(x) = x / 2 * (1 + erf(x / sqrt(2))), or with approximate, Keras's (and
    torch's "tanh") x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double v
    if approximate:
        for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
            v = x[i]
            out[i] = 0.5 * v * (1 + tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)))
    else:
        for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
            v = x[i]
            out[i] = 0.5 * v * (1 + erf(v * SQRT_HALF))


def gelu_backward(const floating[::1] x,    # IN  (n,) gelu's input
                  const floating[::1] dy,   # IN  (n,)
                  floating[::1] dx,         # OUT (n,)
                  bint approximate,
                  int n_threads):
    """dx = dy * (Phi(x) + x phi(x)), or the derivative of the tanh form."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double v, t
    if approximate:
        for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
            v = x[i]
            t = tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v))
            dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * SQRT_2_OVER_PI
                             * (1 + 3 * GELU_CUBIC * v * v))
    else:
        for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
            v = x[i]
            dx[i] = dy[i] * (0.5 * (1 + erf(v * SQRT_HALF)) + v * INV_SQRT_2PI * exp(-0.5 * v * v))


cdef inline double _sigmoid(double v) noexcept nogil:
    # exp(-v) overflows to inf for very negative v, giving exactly 0 rather than NaN.
    return 1 / (1 + exp(-v))


cdef inline double _softplus(double v) noexcept nogil:
    """log(1 + exp(v)), without overflow for large v nor lost digits for very negative v."""
    return (v if v > 0 else 0) + log1p(exp(-fabs(v)))


def silu_forward(const floating[::1] x,   # IN  (n,)
                 floating[::1] out,       # OUT (n,)
                 int n_threads):
    """out = x * sigmoid(x) (swish)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double v
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = x[i]
        out[i] = v * _sigmoid(v)


def silu_backward(const floating[::1] x,    # IN  (n,) silu's input
                  const floating[::1] dy,   # IN  (n,)
                  floating[::1] dx,         # OUT (n,)
                  int n_threads):
    """dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double v, s
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = x[i]
        s = _sigmoid(v)
        dx[i] = dy[i] * s * (1 + v * (1 - s))


def softplus_forward(const floating[::1] x,   # IN  (n,)
                     floating[::1] out,       # OUT (n,)
                     int n_threads):
    """out = log(1 + exp(x))."""
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = _softplus(x[i])


def softplus_backward(const floating[::1] y,    # IN  (n,) softplus's output
                      const floating[::1] dy,   # IN  (n,)
                      floating[::1] dx,         # OUT (n,)
                      int n_threads):
    """dx = dy * sigmoid(x) = dy * (1 - exp(-y)), as exp(y) = 1 + exp(x); expm1 keeps the
    digits of small y (very negative x)."""
    cdef Py_ssize_t i, n = y.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        dx[i] = -dy[i] * expm1(-y[i])


def softsign_forward(const floating[::1] x,   # IN  (n,)
                     floating[::1] out,       # OUT (n,)
                     int n_threads):
    """out = x / (1 + |x|)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double v
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = x[i]
        out[i] = v / (1 + fabs(v))


def softsign_backward(const floating[::1] y,    # IN  (n,) softsign's output
                      const floating[::1] dy,   # IN  (n,)
                      floating[::1] dx,         # OUT (n,)
                      int n_threads):
    """dx = dy / (1 + |x|)^2 = dy * (1 - |y|)^2."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef double r
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        r = 1 - fabs(y[i])
        dx[i] = dy[i] * r * r


cdef inline floating _relu6(floating v) noexcept nogil:
    v = v if v > 0 else 0
    return v if v < 6 else 6


def hard_sigmoid_forward(const floating[::1] x,   # IN  (n,)
                         floating[::1] out,       # OUT (n,)
                         int n_threads):
    """out = relu6(x + 3) / 6, Keras 3's hard sigmoid (Keras 2's had slope 0.2), in the array's
    type as Keras computes it."""
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = _relu6(x[i] + 3) / 6


def hard_sigmoid_backward(const floating[::1] y,    # IN  (n,) hard_sigmoid's output
                          const floating[::1] dy,   # IN  (n,)
                          floating[::1] dx,         # OUT (n,)
                          int n_threads):
    """dx = dy / 6 where 0 < y < 1 (-3 < x < 3), else 0."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating v
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = y[i]
        dx[i] = dy[i] / 6 * ((v > 0) & (v < 1))


def hard_silu_forward(const floating[::1] x,   # IN  (n,)
                      floating[::1] out,       # OUT (n,)
                      int n_threads):
    """out = x * hard_sigmoid(x) (hard swish), in the array's type."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = x[i]
        out[i] = v * (_relu6(v + 3) / 6)


def hard_silu_backward(const floating[::1] x,    # IN  (n,) hard_silu's input
                       const floating[::1] dy,   # IN  (n,)
                       floating[::1] dx,         # OUT (n,)
                       int n_threads):
    """dx = 0 for x <= -3, dy for x >= 3, dy * (2x + 3) / 6 between (relu6's kinks count as
    flat, as Keras's relu6 gradient has them)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating v
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = x[i]
        dx[i] = dy[i] * ((v >= 3) + ((v > -3) & (v < 3)) * (2 * v + 3) / 6)


def mish_forward(const floating[::1] x,   # IN  (n,)
                 floating[::1] out,       # OUT (n,)
                 int n_threads):
    """out = x * tanh(softplus(x))."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double v
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = x[i]
        out[i] = v * tanh(_softplus(v))


def mish_backward(const floating[::1] x,    # IN  (n,) mish's input
                  const floating[::1] dy,   # IN  (n,)
                  floating[::1] dx,         # OUT (n,)
                  int n_threads):
    """dx = dy * (t + x * (1 - t^2) * sigmoid(x)), t = tanh(softplus(x))."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef double v, t
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        v = x[i]
        t = tanh(_softplus(v))
        dx[i] = dy[i] * (t + v * (1 - t * t) * _sigmoid(v))


def exponential_forward(const floating[::1] x,   # IN  (n,)
                        floating[::1] out,       # OUT (n,)
                        int n_threads):
    """out = exp(x)."""
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = exp(x[i])


def exponential_backward(const floating[::1] y,    # IN  (n,) exp's output
                         const floating[::1] dy,   # IN  (n,)
                         floating[::1] dx,         # OUT (n,)
                         int n_threads):
    """dx = dy * y."""
    cdef Py_ssize_t i, n = y.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        dx[i] = dy[i] * y[i]


def softmax_forward(const floating[:, ::1] x__nk,   # IN  (N, K), K >= 1
                    floating[:, ::1] out__nk,       # OUT (N, K), may be x itself
                    int n_threads):
    """Row-wise softmax by row_softmax (activation.pxd), the one the cross-entropy kernels use."""
    cdef Py_ssize_t n = x__nk.shape[0], k = x__nk.shape[1], i
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        row_softmax(&x__nk[i, 0], &out__nk[i, 0], k)


def softmax_backward(const floating[:, ::1] y__nk,    # IN  (N, K) softmax's output
                     const floating[:, ::1] dy__nk,   # IN  (N, K)
                     floating[:, ::1] dx__nk,         # OUT (N, K)
                     int n_threads):
    """dx = y * (dy - sum_k dy_k y_k), the softmax Jacobian applied row by row."""
    cdef Py_ssize_t n = y__nk.shape[0], k = y__nk.shape[1], i, j
    cdef double dot
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        dot = 0
        for j in range(k):
            dot = dot + dy__nk[i, j] * y__nk[i, j]
        for j in range(k):
            dx__nk[i, j] = y__nk[i, j] * (dy__nk[i, j] - dot)


def log_softmax_forward(const floating[:, ::1] x__nk,   # IN  (N, K), K >= 1
                        floating[:, ::1] out__nk,       # OUT (N, K), may be x itself
                        int n_threads):
    """out = x - max(x) - log(sum(exp(x - max(x)))) row by row, Keras's order of operations."""
    cdef Py_ssize_t n = x__nk.shape[0], k = x__nk.shape[1], i, j
    cdef double top, total
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        top = x__nk[i, 0]
        for j in range(1, k):
            if x__nk[i, j] > top:
                top = x__nk[i, j]
        total = 0
        for j in range(k):
            total = total + exp(x__nk[i, j] - top)
        total = log(total)
        for j in range(k):
            out__nk[i, j] = x__nk[i, j] - top - total


def log_softmax_backward(const floating[:, ::1] y__nk,    # IN  (N, K) log_softmax's output
                         const floating[:, ::1] dy__nk,   # IN  (N, K)
                         floating[:, ::1] dx__nk,         # OUT (N, K)
                         int n_threads):
    """dx = dy - exp(y) * sum_k dy_k, row by row."""
    cdef Py_ssize_t n = y__nk.shape[0], k = y__nk.shape[1], i, j
    cdef double total
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        total = 0
        for j in range(k):
            total = total + dy__nk[i, j]
        for j in range(k):
            dx__nk[i, j] = dy__nk[i, j] - exp(y__nk[i, j]) * total


def prelu_forward(const floating[:, :, :, ::1] x__pqrs,   # IN  (P, Q, R, S)
                  const floating[:, ::1] alpha__qs,       # IN  (Q, S) the slopes
                  floating[:, :, :, ::1] out__pqrs,       # OUT (P, Q, R, S), may be x itself
                  int n_threads):
    """out = x where x > 0, else alpha[q, s] * x: the slopes are shared over axes p and r (the
    batch and the layer's shared_axes, merged into two runs)."""
    cdef Py_ssize_t p_n = x__pqrs.shape[0], q_n = x__pqrs.shape[1], r_n = x__pqrs.shape[2]
    cdef Py_ssize_t s_n = x__pqrs.shape[3], line, p, q, r, s
    cdef floating v
    for line in prange(p_n * q_n * r_n, nogil=True, schedule="static",
                       num_threads=threads_for(p_n * q_n * r_n * s_n, n_threads)):
        p = line // (q_n * r_n)
        q = line // r_n % q_n
        r = line % r_n
        for s in range(s_n):
            v = x__pqrs[p, q, r, s]
            out__pqrs[p, q, r, s] = v if v > 0 else alpha__qs[q, s] * v


def prelu_backward(const floating[:, :, :, ::1] x__pqrs,    # IN  (P, Q, R, S) prelu's input
                   const floating[:, ::1] alpha__qs,        # IN  (Q, S)
                   const floating[:, :, :, ::1] dy__pqrs,   # IN  (P, Q, R, S)
                   floating[:, :, :, ::1] dx__pqrs,         # OUT (P, Q, R, S) or None; may be dy
                   floating[:, ::1] dalpha__qs,             # OUT (Q, S) or None
                   int n_threads):
    """dx = dy where x > 0, else alpha * dy; dalpha[q, s] = sum over p, r (in that order, in
    double) of dy * min(x, 0). Each slope's sum is one thread's, so it does not depend on the
    thread count."""
    cdef Py_ssize_t p_n = x__pqrs.shape[0], q_n = x__pqrs.shape[1], r_n = x__pqrs.shape[2]
    cdef Py_ssize_t s_n = x__pqrs.shape[3], line, j, p, q, r, s
    cdef Py_ssize_t size = p_n * q_n * r_n * s_n
    cdef floating v
    cdef double acc
    if dalpha__qs is not None:
        for j in prange(q_n * s_n, nogil=True, schedule="static",
                        num_threads=threads_for(size, n_threads)):
            q = j // s_n
            s = j % s_n
            acc = 0
            for p in range(p_n):
                for r in range(r_n):
                    v = x__pqrs[p, q, r, s]
                    if v < 0:
                        acc = acc + <double>dy__pqrs[p, q, r, s] * v
            dalpha__qs[q, s] = acc
    if dx__pqrs is not None:
        for line in prange(p_n * q_n * r_n, nogil=True, schedule="static",
                           num_threads=threads_for(size, n_threads)):
            p = line // (q_n * r_n)
            q = line // r_n % q_n
            r = line % r_n
            for s in range(s_n):
                v = x__pqrs[p, q, r, s]
                dx__pqrs[p, q, r, s] = dy__pqrs[p, q, r, s] if v > 0 \
                    else alpha__qs[q, s] * dy__pqrs[p, q, r, s]
