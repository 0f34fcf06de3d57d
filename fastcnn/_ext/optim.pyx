"""Optimizer updates applied in place to flat parameter arrays, with Keras 3's update rules."""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport calloc, free, malloc

include "_threads.pxi"
include "cpu.pxi"


cdef extern from "optim.h" nogil:
    enum:
        FCNN_SGD
        FCNN_ADAM
        FCNN_RMSPROP
        FCNN_MAX_OPERANDS  # param, grad and up to three slots
    void fcnn_update_run_f32(int kind, const double *h, float **op, Py_ssize_t i, Py_ssize_t n)
    void fcnn_update_run_f64(int kind, const double *h, double **op, Py_ssize_t i, Py_ssize_t n)


cdef int _update_all(int kind, const double *h, list operands, int n_threads,
                     floating *dtype) except -1:
    """Runs rule `kind` over every tensor t: operands[k][t] is operand k (param, grad, then the
    slots; None for a slot not in use) of tensor t. One parallel loop takes RUN elements of any
    tensor per step: a model's weights in one call, in place of one call (and one fork/join) per
    weight, whose overhead would be serial time in every training step."""
    cdef Py_ssize_t nt = len(operands[0]), nk = len(operands), t, k, c, i, n = 0, m, total = 0
    cdef floating *p
    cdef floating[::1] view
    cdef const floating[::1] grad
    cdef floating **op = <floating **>calloc(max(nt, 1) * FCNN_MAX_OPERANDS, sizeof(floating *))
    cdef Py_ssize_t *first = <Py_ssize_t *>malloc((nt + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t *size = <Py_ssize_t *>malloc(max(nt, 1) * sizeof(Py_ssize_t))
    keep = []  # the views, so that no buffer goes away while the loop runs without the GIL
    try:
        if op == NULL or first == NULL or size == NULL:
            raise MemoryError()
        for k in range(1, nk):
            if len(operands[k]) != nt:
                raise ValueError(f"Expected {nt} arrays of every operand, received "
                                 f"{len(operands[k])}")
        for t in range(nt):
            for k in range(nk):
                a = operands[k][t]
                if a is None:
                    if k < 2:
                        raise TypeError(f"Expected {'param' if k == 0 else 'grad'} {t} to be an "
                                        "array, received None")
                    continue
                if k == 1:  # read only; the others are written
                    grad = a
                    keep.append(grad)
                    m = grad.shape[0]
                    p = <floating *>&grad[0] if m else NULL
                else:
                    view = a
                    keep.append(view)
                    m = view.shape[0]
                    p = &view[0] if m else NULL
                if k == 0:
                    n = size[t] = m
                elif m != n:
                    raise ValueError(f"Expected grad and every slot in use to have param's {n} "
                                     f"elements, received {m}")
                op[t * FCNN_MAX_OPERANDS + k] = p
            first[t] = total
            total += runs_of(n)
        first[nt] = total
        with nogil:
            for c in prange(total, schedule="static",
                            num_threads=threads_for(total * RUN, n_threads)):
                t = tensor_of_run(first, nt, c)
                i = (c - first[t]) * RUN
                if floating is float:
                    fcnn_update_run_f32(kind, h, op + t * FCNN_MAX_OPERANDS, i, min(RUN, size[t] - i))
                else:
                    fcnn_update_run_f64(kind, h, op + t * FCNN_MAX_OPERANDS, i, min(RUN, size[t] - i))
    finally:
        free(op)
        free(first)
        free(size)
    return 0


cdef int _dispatch(int kind, const double *h, list operands, int n_threads) except -1:
    """_update_all for the float type of the first param (float32 when there is none)."""
    if operands[0] and getattr(operands[0][0], "dtype", None) == "float64":
        return _update_all[double](kind, h, operands, n_threads, NULL)
    return _update_all[float](kind, h, operands, n_threads, NULL)


def sgd_update(list params,       # IN/OUT flat arrays, each (n_t,)
               list grads,        # IN     one (n_t,) per param
               list velocities,   # IN/OUT one (n_t,) per param; unused when momentum == 0
               double learning_rate, double momentum, bint nesterov, int n_threads):
    """For each param p with gradient g and velocity v: v = momentum v - lr g; p += v, or
    p += momentum v - lr g with Nesterov (p -= lr g without momentum)."""
    if momentum == 0:
        velocities = [None] * len(params)
    elif any(v is None for v in velocities):
        raise ValueError("sgd_update needs velocity when momentum != 0")
    cdef double h[3]
    h[0], h[1], h[2] = learning_rate, momentum, nesterov
    _dispatch(FCNN_SGD, h, [params, grads, velocities], n_threads)


def adam_update(list params,   # IN/OUT flat arrays, each (n_t,)
                list grads,    # IN     one (n_t,) per param
                list m,        # IN/OUT one (n_t,) per param: the first moment
                list v,        # IN/OUT one (n_t,) per param: the second moment
                double learning_rate, double beta_1, double beta_2, double epsilon, long step,
                double weight_decay, int n_threads):
    """Adam on each param, the bias corrections folded into the step size as Keras does; step
    counts from 1. weight_decay > 0 first shrinks each param by lr * weight_decay * param
    (AdamW's decoupled decay)."""
    if any(a is None for a in m) or any(a is None for a in v):
        raise TypeError("Expected m and v to be arrays like param, received None")
    cdef double h[5]
    h[0] = learning_rate * sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    h[1], h[2], h[3], h[4] = 1 - beta_1, 1 - beta_2, epsilon, -learning_rate * weight_decay
    _dispatch(FCNN_ADAM, h, [params, grads, m, v], n_threads)


def rmsprop_update(list params,            # IN/OUT flat arrays, each (n_t,)
                   list grads,             # IN     one (n_t,) per param
                   list mean_square,       # IN/OUT one (n_t,) per param
                   list momentum_buffer,   # IN/OUT one (n_t,) per param, or None entries
                   list mean_grad,         # IN/OUT one (n_t,) per param, or None entries
                   double learning_rate, double rho, double momentum, double epsilon,
                   bint centered, int n_threads):
    """Keras's RMSprop on each param: ms = rho ms + (1 - rho) g^2; step = lr g /
    sqrt(ms + eps), where centered subtracts mg^2 (mg = rho mg + (1 - rho) g); with momentum,
    b = momentum b + step and p -= b, else p -= step. momentum_buffer is unused (may hold None)
    unless momentum > 0, mean_grad unless centered."""
    if any(a is None for a in mean_square):
        raise ValueError("rmsprop_update needs mean_square")
    if (momentum > 0 and any(a is None for a in momentum_buffer)
            or centered and any(a is None for a in mean_grad)):
        raise ValueError("rmsprop_update needs momentum_buffer when momentum > 0 and mean_grad "
                         "when centered")
    if not momentum > 0:
        momentum_buffer = [None] * len(params)
    if not centered:
        mean_grad = [None] * len(params)
    cdef double h[5]
    h[0], h[1], h[2], h[3], h[4] = learning_rate, rho, 1 - rho, momentum, epsilon
    _dispatch(FCNN_RMSPROP, h, [params, grads, mean_square, momentum_buffer, mean_grad], n_threads)
