"""Optimizer updates applied in place to flat parameter arrays, with Keras 3's update rules."""
from cython.parallel cimport prange
from libc.math cimport sqrt

ctypedef fused floating:
    float
    double

include "_threads.pxi"


def sgd_update(floating[::1] param,            # IN/OUT
               const floating[::1] grad,       # IN
               floating[::1] velocity,         # IN/OUT (unused when momentum == 0)
               double learning_rate, double momentum, bint nesterov, int n_threads):
    """v = momentum v - lr g; p += v, or p += momentum v - lr g with Nesterov."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating lr = learning_rate, mu = momentum
    if momentum == 0:
        for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
            param[i] -= lr * grad[i]
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        velocity[i] = mu * velocity[i] - lr * grad[i]
        if nesterov:
            param[i] += mu * velocity[i] - lr * grad[i]
        else:
            param[i] += velocity[i]


def adam_update(floating[::1] param,           # IN/OUT
                const floating[::1] grad,      # IN
                floating[::1] m,               # IN/OUT first moment
                floating[::1] v,               # IN/OUT second moment
                double learning_rate, double beta_1, double beta_2, double epsilon,
                long step, int n_threads):
    """Adam with the bias corrections folded into the step size, as Keras does; step counts from 1."""
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating alpha = learning_rate * sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    cdef floating b1 = 1 - beta_1, b2 = 1 - beta_2, eps = epsilon
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        m[i] += b1 * (grad[i] - m[i])
        v[i] += b2 * (grad[i] * grad[i] - v[i])
        param[i] -= alpha * m[i] / (sqrt(v[i]) + eps)


def rmsprop_update(floating[::1] param,             # IN/OUT
                   const floating[::1] grad,        # IN
                   floating[::1] mean_square,       # IN/OUT running mean of grad^2
                   floating[::1] momentum_buffer,   # IN/OUT, or None when momentum == 0
                   floating[::1] mean_grad,         # IN/OUT, or None unless centered
                   double learning_rate, double rho, double momentum, double epsilon,
                   bint centered, int n_threads):
    """Keras's RMSprop: ms = rho ms + (1 - rho) g^2; step = lr g / sqrt(ms + eps), where
    centered subtracts mg^2 (mg = rho mg + (1 - rho) g); with momentum, b = momentum b + step
    and p -= b, else p -= step."""
    if momentum > 0 and momentum_buffer is None or centered and mean_grad is None:
        raise ValueError("rmsprop_update needs momentum_buffer when momentum > 0 and mean_grad "
                         "when centered")
    cdef Py_ssize_t i, n = param.shape[0]
    cdef bint use_momentum = momentum > 0
    cdef floating lr = learning_rate, r = rho, b = 1 - rho, mu = momentum, eps = epsilon
    cdef floating g, denominator, step
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        g = grad[i]
        mean_square[i] = r * mean_square[i] + b * (g * g)
        if centered:
            mean_grad[i] = r * mean_grad[i] + b * g
            denominator = mean_square[i] - mean_grad[i] * mean_grad[i] + eps
        else:
            denominator = mean_square[i] + eps
        step = lr * g / sqrt(denominator)
        if use_momentum:
            momentum_buffer[i] = mu * momentum_buffer[i] + step
            param[i] -= momentum_buffer[i]
        else:
            param[i] -= step


def axpy(const floating[::1] x,   # IN (may be y itself)
         floating[::1] y,         # IN/OUT
         double alpha, int n_threads):
    """y += alpha x: the L2 penalty's gradient, and decoupled weight decay when x is y."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating a = alpha
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        y[i] += a * x[i]


def sum_of_squares(const floating[::1] x,   # IN
                   double[::1] partial,     # OUT one sum per chunk
                   int n_threads):
    """partial[c] = sum of x_i^2 over chunk c, x being cut into len(partial) runs of equal
    length (the last may be shorter). Summing partial in order gives a total that does not
    depend on the thread count, unlike an OpenMP reduction."""
    cdef Py_ssize_t c, i, n = x.shape[0], chunks = partial.shape[0]
    cdef Py_ssize_t size = (n + chunks - 1) // chunks
    cdef double total
    for c in prange(chunks, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        total = 0
        for i in range(c * size, min(n, (c + 1) * size)):
            total = total + <double>x[i] * x[i]
        partial[c] = total
