"""Optimizer updates, one kernel call per step for every weight: checked calls of ``_ext.optim``,
and ``UpdateOperands``, the checked operands an optimizer keeps from one step to the next."""
import numbers

import numpy as np

from .._ext import optim as _optim
from .checks import as_kernel_array, flag, in_place, out_buffer, positive_int, real_number
from .threads import effective_n_threads


def _check_operands(params, grads, slots):
    """(flat views of each param, its grad and its named slots, whether a grad was copied).
    ``slots`` maps a slot name to a list aligned with params, or to None for a slot not in use.
    Params and slots are updated in place, so they must be the exact buffers, each of its
    param's shape and dtype."""
    if len(grads) != len(params):
        raise ValueError(f"Expected one gradient per param ({len(params)}), received {len(grads)}")
    for name, values in slots.items():
        if values is not None and len(values) != len(params):
            raise ValueError(f"Expected one {name} entry per param ({len(params)}), received "
                             f"{len(values)}")
    flat, copied = [[], []] + [[] for _ in slots], False
    for t, (param, grad) in enumerate(zip(params, grads)):
        param = in_place(param, f"params[{t}]")
        if not (type(grad) is np.ndarray and grad.dtype == param.dtype
                and grad.shape == param.shape and grad.flags.c_contiguous):
            grad = as_kernel_array(grad, f"grads[{t}]", dtype=param.dtype, shape=param.shape)
            copied = True
        flat[0].append(param.reshape(-1))
        flat[1].append(grad.reshape(-1))
        for k, (name, values) in enumerate(slots.items(), 2):
            slot = None if values is None else values[t]
            flat[k].append(None if slot is None else
                           out_buffer(slot, param.shape, param.dtype, f"{name}[{t}]").reshape(-1))
    return flat, copied


class UpdateOperands:
    """The checked flat views of the last step's arrays, for one owner (an optimizer).

    A training loop passes the same arrays at every step, so the views are kept and reused while
    the arrays are the same ones: checking every array is serial work repeated each step. The
    kept views hold their arrays, so no id is reused while they are kept. A copied grad (one
    that was not a matching C-contiguous array) is never kept: the copy of a list goes stale.
    A copy of the owner starts with nothing kept, since kept views would point at the original's
    arrays.
    """

    def __init__(self):
        self._last = (None, None)  # (the ids of the arrays, their checked flat views)

    def __call__(self, params, grads, **slots):
        params, grads = list(params), list(grads)
        key = (tuple(map(id, params)), tuple(map(id, grads)),
               tuple((name, None if v is None else tuple(map(id, v))) for name, v in slots.items()))
        last_key, last_flat = self._last  # one read: the views always belong to their key
        if key == last_key:
            return last_flat
        flat, copied = _check_operands(params, grads, slots)
        self._last = (None, None) if copied else (key, flat)
        return flat

    def __reduce__(self):  # copy, deepcopy and pickle: start with nothing kept
        return UpdateOperands, ()


def _operands(operands, params, grads, **slots):
    """The flat operands, from ``operands`` (an UpdateOperands) or checked afresh when None."""
    if operands is None:
        return _check_operands(list(params), list(grads), slots)[0]
    return operands(params, grads, **slots)


def _per_tensor(values, params, name):
    """values (one number per param) as a float64 array, or None."""
    if values is None:
        return None
    if np.shape(values) != (len(params),):  # before a conversion that copies a vast view
        raise ValueError(f"Expected one {name} per param ({len(params)}), received shape "
                         f"{np.shape(values)}")
    return np.asarray(values, np.float64)


def _step(step):
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or not 1 <= step < 2**63:
        raise ValueError(f"Expected step to be an int >= 1, received step={step!r}")
    return int(step)


def _hyper(values):
    """The hyper-parameters by name, in order: the flags as bools, step as checked, the rest as
    finite floats, so that the kernel's double and bint arguments never meet another object."""
    flags, ints = ("nesterov", "centered"), ("step",)
    return [flag(v, name) if name in flags else v if name in ints else real_number(v, name)
            for name, v in values.items()]


def _run(kernel, params, grads, slots, hyper, grad_scale, clip_value, decay, operands,
         n_threads):
    """One call of an update kernel: the checked operands, then the hyper-parameters (a dict by
    name, in the kernel's order), then the gradient transforms (grad_scale and decay: one number
    per param, or None)."""
    n_threads = effective_n_threads(n_threads)
    params = list(params)
    clip_value = real_number(clip_value, "clip_value", minimum=0)
    hyper = _hyper(hyper)
    grad_scale = _per_tensor(grad_scale, params, "grad_scale")
    decay = _per_tensor(decay, params, "decay")
    kernel(*_operands(operands, params, grads, **slots), *hyper, grad_scale, clip_value, decay,
           n_threads)


def sgd_update(params, grads, velocities, learning_rate, momentum, nesterov, grad_scale=None,
               clip_value=0.0, decay=None, operands=None, n_threads=None):
    """One SGD step of every param (lists of arrays, velocities updated in place). ``operands``:
    the caller's UpdateOperands, to reuse the checks of its last step. grad_scale, clip_value
    and decay: the gradient transforms of ``_ext.optim``."""
    _run(_optim.sgd_update, params, grads, {"velocities": velocities},
         dict(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov), grad_scale,
         clip_value, decay, operands, n_threads)


def adam_update(params, grads, m, v, v_hat, learning_rate, beta_1, beta_2, epsilon, step,
                grad_scale=None, clip_value=0.0, decay=None, operands=None, n_threads=None):
    """One Adam step of every param (AMSGrad's with v_hat, else None); the slots updated in
    place."""
    _run(_optim.adam_update, params, grads, {"m": m, "v": v, "v_hat": v_hat},
         dict(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
              step=_step(step)), grad_scale, clip_value, decay, operands, n_threads)


def rmsprop_update(params, grads, mean_square, momentum_buffer, mean_grad, learning_rate, rho,
                   momentum, epsilon, centered, grad_scale=None, clip_value=0.0, decay=None,
                   operands=None, n_threads=None):
    """One RMSprop step of every param; the slots in use updated in place."""
    _run(_optim.rmsprop_update, params, grads,
         {"mean_square": mean_square, "momentum_buffer": momentum_buffer, "mean_grad": mean_grad},
         dict(learning_rate=learning_rate, rho=rho, momentum=momentum, epsilon=epsilon,
              centered=centered), grad_scale, clip_value, decay, operands, n_threads)


def nadam_update(params, grads, m, v, learning_rate, beta_1, beta_2, epsilon, step, u_product,
                 grad_scale=None, clip_value=0.0, decay=None, operands=None, n_threads=None):
    """One Nadam step of every param; u_product: the product of the momentum caches of steps
    1 .. step."""
    _run(_optim.nadam_update, params, grads, {"m": m, "v": v},
         dict(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
              step=_step(step), u_product=u_product), grad_scale,
         clip_value, decay, operands, n_threads)


def adagrad_update(params, grads, accumulators, learning_rate, epsilon, grad_scale=None,
                   clip_value=0.0, decay=None, operands=None, n_threads=None):
    """One Adagrad step of every param; the accumulators updated in place."""
    _run(_optim.adagrad_update, params, grads, {"accumulators": accumulators},
         dict(learning_rate=learning_rate, epsilon=epsilon), grad_scale, clip_value, decay,
         operands, n_threads)


def adadelta_update(params, grads, accumulated_grad, accumulated_delta, learning_rate, rho,
                    epsilon, grad_scale=None, clip_value=0.0, decay=None, operands=None,
                    n_threads=None):
    """One Adadelta step of every param; both accumulators updated in place."""
    _run(_optim.adadelta_update, params, grads,
         {"accumulated_grad": accumulated_grad, "accumulated_delta": accumulated_delta},
         dict(learning_rate=learning_rate, rho=rho, epsilon=epsilon), grad_scale, clip_value, decay,
         operands, n_threads)


def adamax_update(params, grads, m, u, learning_rate, beta_1, beta_2, epsilon, step,
                  grad_scale=None, clip_value=0.0, decay=None, operands=None, n_threads=None):
    """One Adamax step of every param; m and u updated in place."""
    _run(_optim.adamax_update, params, grads, {"m": m, "u": u},
         dict(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
              step=_step(step)), grad_scale, clip_value, decay, operands, n_threads)


def lion_update(params, grads, m, learning_rate, beta_1, beta_2, grad_scale=None,
                clip_value=0.0, decay=None, operands=None, n_threads=None):
    """One Lion step of every param; m updated in place."""
    _run(_optim.lion_update, params, grads, {"m": m},
         dict(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2), grad_scale, clip_value,
         decay, operands, n_threads)


def accumulate_gradients(accumulators, grads, mode, steps, operands=None, n_threads=None):
    """Gradient accumulation in place: mode 0 sets each accumulator to its gradient, 1 adds the
    gradient, 2 leaves the mean (accumulator + gradient) / steps."""
    n_threads = effective_n_threads(n_threads)
    if isinstance(mode, bool) or not isinstance(mode, numbers.Integral) or mode not in (0, 1, 2):
        raise ValueError(f"Expected mode 0, 1 or 2, received mode={mode!r}")
    _optim.accumulate_gradients(*_operands(operands, accumulators, grads), mode,
                                positive_int(steps, "steps"), n_threads)


def moving_average(averages, weights, momentum, operands=None, n_threads=None):
    """averages = momentum * averages + (1 - momentum) * weights, in place."""
    n_threads = effective_n_threads(n_threads)
    _optim.moving_average(*_operands(operands, averages, weights),
                          real_number(momentum, "momentum"), n_threads)
