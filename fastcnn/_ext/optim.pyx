"""Optimizer updates applied in place to flat parameter arrays, with Keras 3's rules, and the
optimizers' bookkeeping (gradient accumulation, the weights' moving average) over the same runs.

Every update kernel takes the gradient transforms Keras applies before a rule: grad_scale (one
factor per tensor, the clipping norms'), clip_value (clip each gradient element to
[-clip_value, clip_value]; 0 for none) and decay (one factor per tensor: p -= decay * p before
the rule, decoupled weight decay). None for grad_scale or decay leaves them out."""
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
        FCNN_NADAM
        FCNN_ADAGRAD
        FCNN_ADADELTA
        FCNN_ADAMAX
        FCNN_LION
        FCNN_ACCUMULATE
        FCNN_AVERAGE
        FCNN_MAX_OPERANDS  # param, grad and up to three slots
    void fcnn_update_run_f32(int kind, const double *h, float **op, Py_ssize_t i, Py_ssize_t n,
                             double scale, double clip, double decay)
    void fcnn_update_run_f64(int kind, const double *h, double **op, Py_ssize_t i, Py_ssize_t n,
                             double scale, double clip, double decay)


cdef int _update_all(int kind, const double *h, list operands, const double *scale,
                     double clip, const double *decay, int n_threads,
                     floating *dtype) except -1:
    """Runs rule `kind` over every tensor t: operands[k][t] is operand k (param, grad, then the
    slots; None for a slot not in use) of tensor t; scale[t] and decay[t] (NULL: 1 and 0) and
    clip its gradient transforms. One parallel loop takes RUN elements of any tensor per step:
    a model's weights in one call, in place of one call (and one fork/join) per weight, whose
    overhead would be serial time in every training step."""
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
                    fcnn_update_run_f32(kind, h, op + t * FCNN_MAX_OPERANDS, i,
                                        min(RUN, size[t] - i), scale[t] if scale else 1.0, clip,
                                        decay[t] if decay else 0.0)
                else:
                    fcnn_update_run_f64(kind, h, op + t * FCNN_MAX_OPERANDS, i,
                                        min(RUN, size[t] - i), scale[t] if scale else 1.0, clip,
                                        decay[t] if decay else 0.0)
    finally:
        free(op)
        free(first)
        free(size)
    return 0


cdef const double *_per_tensor(const double[::1] values, Py_ssize_t nt, str name) except? NULL:
    """The address of values (one per tensor), or NULL for None."""
    if values is None:
        return NULL
    if values.shape[0] != nt:
        raise ValueError(f"Expected one {name} per param ({nt}), received {values.shape[0]}")
    return &values[0] if nt else NULL


cdef int _dispatch(int kind, const double *h, list operands, const double[::1] grad_scale,
                   double clip_value, const double[::1] decay, int n_threads) except -1:
    """_update_all for the float type of the first param (float32 when there is none)."""
    cdef Py_ssize_t nt = len(operands[0])
    cdef const double *scale = _per_tensor(grad_scale, nt, "grad_scale")
    cdef const double *shrink = _per_tensor(decay, nt, "decay")
    if not clip_value >= 0:
        raise ValueError(f"Expected clip_value >= 0, received {clip_value}")
    if operands[0] and getattr(operands[0][0], "dtype", None) == "float64":
        return _update_all[double](kind, h, operands, scale, clip_value, shrink, n_threads, NULL)
    return _update_all[float](kind, h, operands, scale, clip_value, shrink, n_threads, NULL)


cdef int _require(list arrays, str name) except -1:
    if any(a is None for a in arrays):
        raise TypeError(f"Expected {name} to hold arrays like param, received None")
    return 0


def sgd_update(list params,       # IN/OUT flat arrays, each (n_t,)
               list grads,        # IN     one (n_t,) per param
               list velocities,   # IN/OUT one (n_t,) per param; unused when momentum == 0
               double learning_rate, double momentum, bint nesterov,
               const double[::1] grad_scale,  # IN (n_params,) or None
               double clip_value,
               const double[::1] decay,       # IN (n_params,) or None
               int n_threads):
    """For each param p with gradient g and velocity v: v = momentum v - lr g; p += v, or
    p += momentum v - lr g with Nesterov (p -= lr g without momentum)."""
    if momentum == 0:
        velocities = [None] * len(params)
    elif any(v is None for v in velocities):
        raise ValueError("sgd_update needs velocity when momentum != 0")
    cdef double h[3]
    h[0], h[1], h[2] = learning_rate, momentum, nesterov
    _dispatch(FCNN_SGD, h, [params, grads, velocities], grad_scale, clip_value, decay, n_threads)


def adam_update(list params,   # IN/OUT flat arrays, each (n_t,)
                list grads,    # IN     one (n_t,) per param
                list m,        # IN/OUT one (n_t,) per param: the first moment
                list v,        # IN/OUT one (n_t,) per param: the second moment
                list v_hat,    # IN/OUT one (n_t,) per param: AMSGrad's running maximum of v,
                               #        or None entries without AMSGrad
                double learning_rate, double beta_1, double beta_2, double epsilon, long step,
                const double[::1] grad_scale,  # IN (n_params,) or None
                double clip_value,
                const double[::1] decay,       # IN (n_params,) or None
                int n_threads):
    """Adam on each param, the bias corrections folded into the step size as Keras does; step
    counts from 1. With v_hat (AMSGrad) the step divides by the running maximum of v."""
    _require(m, "m")
    _require(v, "v")
    amsgrad = any(a is not None for a in v_hat)
    if amsgrad:
        _require(v_hat, "v_hat")
    cdef double h[4]
    h[0] = learning_rate * sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    h[1], h[2], h[3] = 1 - beta_1, 1 - beta_2, epsilon
    _dispatch(FCNN_ADAM, h, [params, grads, m, v, v_hat if amsgrad else [None] * len(params)],
              grad_scale, clip_value, decay, n_threads)


def rmsprop_update(list params,            # IN/OUT flat arrays, each (n_t,)
                   list grads,             # IN     one (n_t,) per param
                   list mean_square,       # IN/OUT one (n_t,) per param
                   list momentum_buffer,   # IN/OUT one (n_t,) per param, or None entries
                   list mean_grad,         # IN/OUT one (n_t,) per param, or None entries
                   double learning_rate, double rho, double momentum, double epsilon,
                   bint centered,
                   const double[::1] grad_scale,  # IN (n_params,) or None
                   double clip_value,
                   const double[::1] decay,       # IN (n_params,) or None
                   int n_threads):
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
    _dispatch(FCNN_RMSPROP, h, [params, grads, mean_square, momentum_buffer, mean_grad],
              grad_scale, clip_value, decay, n_threads)


def nadam_update(list params,   # IN/OUT flat arrays, each (n_t,)
                 list grads,    # IN     one (n_t,) per param
                 list m,        # IN/OUT one (n_t,) per param: the first moment
                 list v,        # IN/OUT one (n_t,) per param: the second moment
                 double learning_rate, double beta_1, double beta_2, double epsilon, long step,
                 double u_product,
                 const double[::1] grad_scale,  # IN (n_params,) or None
                 double clip_value,
                 const double[::1] decay,       # IN (n_params,) or None
                 int n_threads):
    """Keras's Nadam at step t (from 1): the momentum cache u_k = beta_1 (1 - 0.96^k / 2), and
    u_product, the product of u_1 .. u_t. The moments as Adam's; then p -= lr m_hat /
    (sqrt(v / (1 - beta_2^t)) + eps), m_hat = u_(t+1) m / (1 - u_product u_(t+1))
    + (1 - u_t) g / (1 - u_product)."""
    _require(m, "m")
    _require(v, "v")
    u_t = beta_1 * (1 - 0.5 * 0.96 ** step)
    u_next = beta_1 * (1 - 0.5 * 0.96 ** (step + 1))
    cdef double h[7]
    h[0], h[1], h[2], h[3] = learning_rate, 1 - beta_1, 1 - beta_2, epsilon
    h[4] = u_next / (1 - u_product * u_next)
    h[5] = (1 - u_t) / (1 - u_product)
    h[6] = 1 - beta_2 ** step
    _dispatch(FCNN_NADAM, h, [params, grads, m, v], grad_scale, clip_value, decay, n_threads)


def adagrad_update(list params,         # IN/OUT flat arrays, each (n_t,)
                   list grads,          # IN     one (n_t,) per param
                   list accumulators,   # IN/OUT one (n_t,) per param: the sums of g^2
                   double learning_rate, double epsilon,
                   const double[::1] grad_scale,  # IN (n_params,) or None
                   double clip_value,
                   const double[::1] decay,       # IN (n_params,) or None
                   int n_threads):
    """Keras's Adagrad: a += g^2; p -= lr g / sqrt(a + eps)."""
    _require(accumulators, "accumulators")
    cdef double h[2]
    h[0], h[1] = learning_rate, epsilon
    _dispatch(FCNN_ADAGRAD, h, [params, grads, accumulators], grad_scale, clip_value, decay,
              n_threads)


def adadelta_update(list params,              # IN/OUT flat arrays, each (n_t,)
                    list grads,               # IN     one (n_t,) per param
                    list accumulated_grad,    # IN/OUT one (n_t,) per param
                    list accumulated_delta,   # IN/OUT one (n_t,) per param
                    double learning_rate, double rho, double epsilon,
                    const double[::1] grad_scale,  # IN (n_params,) or None
                    double clip_value,
                    const double[::1] decay,       # IN (n_params,) or None
                    int n_threads):
    """Keras's Adadelta: ag = rho ag + (1 - rho) g^2; d = -sqrt(ad + eps) g / sqrt(ag + eps);
    ad = rho ad + (1 - rho) d^2; p += lr d."""
    _require(accumulated_grad, "accumulated_grad")
    _require(accumulated_delta, "accumulated_delta")
    cdef double h[4]
    h[0], h[1], h[2], h[3] = learning_rate, rho, 1 - rho, epsilon
    _dispatch(FCNN_ADADELTA, h, [params, grads, accumulated_grad, accumulated_delta],
              grad_scale, clip_value, decay, n_threads)


def adamax_update(list params,   # IN/OUT flat arrays, each (n_t,)
                  list grads,    # IN     one (n_t,) per param
                  list m,        # IN/OUT one (n_t,) per param: the first moment
                  list u,        # IN/OUT one (n_t,) per param: the weighted infinity norm
                  double learning_rate, double beta_1, double beta_2, double epsilon, long step,
                  const double[::1] grad_scale,  # IN (n_params,) or None
                  double clip_value,
                  const double[::1] decay,       # IN (n_params,) or None
                  int n_threads):
    """Keras's Adamax at step t (from 1): m += (1 - beta_1) (g - m); u = max(beta_2 u, |g|);
    p -= lr m / ((1 - beta_1^t) (u + eps))."""
    _require(m, "m")
    _require(u, "u")
    cdef double h[5]
    h[0], h[1], h[2], h[3], h[4] = learning_rate, 1 - beta_1, beta_2, epsilon, 1 - beta_1 ** step
    _dispatch(FCNN_ADAMAX, h, [params, grads, m, u], grad_scale, clip_value, decay, n_threads)


def lion_update(list params,   # IN/OUT flat arrays, each (n_t,)
                list grads,    # IN     one (n_t,) per param
                list m,        # IN/OUT one (n_t,) per param: the momentum
                double learning_rate, double beta_1, double beta_2,
                const double[::1] grad_scale,  # IN (n_params,) or None
                double clip_value,
                const double[::1] decay,       # IN (n_params,) or None
                int n_threads):
    """Keras's Lion: p -= lr sign(beta_1 m + (1 - beta_1) g); m = beta_2 m + (1 - beta_2) g."""
    _require(m, "m")
    cdef double h[5]
    h[0], h[1], h[2], h[3], h[4] = learning_rate, beta_1, 1 - beta_1, beta_2, 1 - beta_2
    _dispatch(FCNN_LION, h, [params, grads, m], grad_scale, clip_value, decay, n_threads)


def accumulate_gradients(list accumulators,   # IN/OUT flat arrays, each (n_t,)
                         list grads,          # IN     one (n_t,) per accumulator
                         int mode, long steps, int n_threads):
    """Gradient accumulation: a = g (mode 0, the first of a cycle), a += g (mode 1), or
    a = (a + g) / steps (mode 2, the last: the mean gradient the update takes)."""
    if mode not in (0, 1, 2):
        raise ValueError(f"Expected mode 0, 1 or 2, received {mode}")
    if steps < 1:
        raise ValueError(f"Expected steps >= 1, received {steps}")
    cdef double h[2]
    h[0], h[1] = mode, steps
    _dispatch(FCNN_ACCUMULATE, h, [accumulators, grads], None, 0.0, None, n_threads)


def moving_average(list averages,   # IN/OUT flat arrays, each (n_t,)
                   list weights,    # IN     one (n_t,) per average
                   double momentum, int n_threads):
    """The weights' exponential moving average: a = momentum a + (1 - momentum) w."""
    cdef double h[2]
    h[0], h[1] = momentum, 1 - momentum
    _dispatch(FCNN_AVERAGE, h, [averages, weights], None, 0.0, None, n_threads)
