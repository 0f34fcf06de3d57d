"""Optimizer updates applied in place to flat parameter arrays, with Keras 3's update rules."""
from cython.parallel cimport prange
from libc.math cimport sqrt

ctypedef fused floating:
    float
    double

include "_threads.pxi"


cdef extern from "optim.h" nogil:
    void fc_sgd_f32(float *p, const float *g, float *vel, Py_ssize_t n, float lr, float mu,
                    int nesterov)
    void fc_sgd_f64(double *p, const double *g, double *vel, Py_ssize_t n, double lr, double mu,
                    int nesterov)
    void fc_adam_f32(float *p, const float *g, float *m, float *v, Py_ssize_t n, float alpha,
                     float b1, float b2, float eps)
    void fc_adam_f64(double *p, const double *g, double *m, double *v, Py_ssize_t n,
                     double alpha, double b1, double b2, double eps)
    void fc_rmsprop_f32(float *p, const float *g, float *ms, float *buf, float *mg,
                        Py_ssize_t n, float lr, float r, float b, float mu, float eps)
    void fc_rmsprop_f64(double *p, const double *g, double *ms, double *buf, double *mg,
                        Py_ssize_t n, double lr, double r, double b, double mu, double eps)

def _check_lengths(Py_ssize_t n, *arrays):
    """The loops index param, grad and every slot in use (None: one not in use) alike."""
    for a in arrays:
        if a is not None and a.shape[0] != n:
            raise ValueError(f"Expected grad and every slot in use to have param's {n} elements, "
                             f"received {a.shape[0]}")


cdef inline floating *_at(floating[::1] a, Py_ssize_t i) noexcept nogil:
    """&a[i], or NULL for a missing (None) slot."""
    return NULL if a is None else &a[i]


def sgd_update(floating[::1] param not None,     # IN/OUT
               const floating[::1] grad not None,  # IN
               floating[::1] velocity,         # IN/OUT (unused when momentum == 0)
               double learning_rate, double momentum, bint nesterov, int n_threads):
    """v = momentum v - lr g; p += v, or p += momentum v - lr g with Nesterov."""
    if momentum == 0:
        velocity = None
    elif velocity is None:
        raise ValueError("sgd_update needs velocity when momentum != 0")
    _check_lengths(param.shape[0], grad, velocity)
    cdef Py_ssize_t c, i, n = param.shape[0]
    for c in prange(runs_of(n), nogil=True, schedule="static",
                    num_threads=threads_for(n, n_threads)):
        i = c * RUN
        if floating is float:
            fc_sgd_f32(&param[i], &grad[i], _at(velocity, i), min(RUN, n - i),
                       learning_rate, momentum, nesterov)
        else:
            fc_sgd_f64(&param[i], &grad[i], _at(velocity, i), min(RUN, n - i),
                       learning_rate, momentum, nesterov)


def adam_update(floating[::1] param not None,       # IN/OUT
                const floating[::1] grad not None,  # IN
                floating[::1] m not None,           # IN/OUT first moment
                floating[::1] v not None,           # IN/OUT second moment
                double learning_rate, double beta_1, double beta_2, double epsilon,
                long step, int n_threads):
    """Adam with the bias corrections folded into the step size, as Keras does; step counts from 1."""
    _check_lengths(param.shape[0], grad, m, v)
    cdef Py_ssize_t c, i, n = param.shape[0]
    cdef double alpha = learning_rate * sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    for c in prange(runs_of(n), nogil=True, schedule="static",
                    num_threads=threads_for(n, n_threads)):
        i = c * RUN
        if floating is float:
            fc_adam_f32(&param[i], &grad[i], &m[i], &v[i], min(RUN, n - i), alpha,
                        1 - beta_1, 1 - beta_2, epsilon)
        else:
            fc_adam_f64(&param[i], &grad[i], &m[i], &v[i], min(RUN, n - i), alpha,
                        1 - beta_1, 1 - beta_2, epsilon)


def rmsprop_update(floating[::1] param not None,         # IN/OUT
                   const floating[::1] grad not None,    # IN
                   floating[::1] mean_square not None,   # IN/OUT running mean of grad^2
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
    if not momentum > 0:
        momentum_buffer = None
    if not centered:
        mean_grad = None
    _check_lengths(param.shape[0], grad, mean_square, momentum_buffer, mean_grad)
    cdef Py_ssize_t c, i, n = param.shape[0]
    for c in prange(runs_of(n), nogil=True, schedule="static",
                    num_threads=threads_for(n, n_threads)):
        i = c * RUN
        if floating is float:
            fc_rmsprop_f32(&param[i], &grad[i], &mean_square[i], _at(momentum_buffer, i),
                           _at(mean_grad, i), min(RUN, n - i), learning_rate, rho,
                           1 - rho, momentum, epsilon)
        else:
            fc_rmsprop_f64(&param[i], &grad[i], &mean_square[i], _at(momentum_buffer, i),
                           _at(mean_grad, i), min(RUN, n - i), learning_rate, rho,
                           1 - rho, momentum, epsilon)


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
