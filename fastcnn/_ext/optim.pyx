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
