"""NumPy twins of ``fastcnn._ext.optim``: Keras 3's update rules, in place, each after the
gradient transforms Keras applies first (scale by the clipping norms' factor, clip to
[-clip_value, clip_value], decoupled weight decay of the param)."""
import numpy as np


def _prepared(params, grads, grad_scale, clip_value, decay):
    """The gradients as the rule sees them, after the param's weight decay (in place)."""
    prepared = []
    for t, (param, grad) in enumerate(zip(params, grads)):
        if grad_scale is not None and grad_scale[t] != 1 or clip_value > 0:
            grad = grad * param.dtype.type(1.0 if grad_scale is None else grad_scale[t])
            if clip_value > 0:
                c = param.dtype.type(clip_value)
                grad = np.where(grad < -c, -c, np.where(grad > c, c, grad))
        if decay is not None and decay[t] != 0:
            param -= param.dtype.type(decay[t]) * param
        prepared.append(grad)
    return prepared


def _sgd_rule(param, grad, velocity, learning_rate, momentum, nesterov):
    if momentum == 0:
        param -= learning_rate * grad
        return
    velocity[...] = momentum * velocity - learning_rate * grad
    if nesterov:
        param += momentum * velocity - learning_rate * grad
    else:
        param += velocity

def _adam_rule(param, grad, m, v, v_hat, learning_rate, beta_1, beta_2, epsilon, step):
    """``step`` counts from 1. Keras folds the bias corrections into the learning rate."""
    alpha = learning_rate * np.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    m += (1 - beta_1) * (grad - m)
    v += (1 - beta_2) * (grad * grad - v)
    if v_hat is not None:
        np.maximum(v_hat, v, out=v_hat)
        v = v_hat
    param -= alpha * m / (np.sqrt(v) + epsilon)

def _rmsprop_rule(param, grad, mean_square, momentum_buffer, mean_grad, learning_rate, rho,
                  momentum, epsilon, centered):
    """Keras's rule: epsilon goes inside the square root."""
    mean_square[...] = rho * mean_square + (1 - rho) * grad * grad
    if centered:
        mean_grad[...] = rho * mean_grad + (1 - rho) * grad
        step = learning_rate * grad / np.sqrt(mean_square - mean_grad * mean_grad + epsilon)
    else:
        step = learning_rate * grad / np.sqrt(mean_square + epsilon)
    if momentum > 0:
        momentum_buffer[...] = momentum * momentum_buffer + step
        param -= momentum_buffer
    else:
        param -= step

def _nadam_rule(param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, step, u_product):
    """u_product includes this step's momentum cache u_t."""
    u_t = beta_1 * (1 - 0.5 * 0.96 ** step)
    u_next = beta_1 * (1 - 0.5 * 0.96 ** (step + 1))
    m += (1 - beta_1) * (grad - m)
    v += (1 - beta_2) * (grad * grad - v)
    m_hat = u_next / (1 - u_product * u_next) * m + (1 - u_t) / (1 - u_product) * grad
    param -= m_hat * learning_rate / (np.sqrt(v / (1 - beta_2 ** step)) + epsilon)

def _adagrad_rule(param, grad, accumulator, learning_rate, epsilon):
    accumulator += grad * grad
    param -= learning_rate * grad / np.sqrt(accumulator + epsilon)

def _adadelta_rule(param, grad, accumulated_grad, accumulated_delta, learning_rate, rho,
                   epsilon):
    accumulated_grad[...] = rho * accumulated_grad + (1 - rho) * (grad * grad)
    delta = -(np.sqrt(accumulated_delta + epsilon) * grad) / np.sqrt(accumulated_grad + epsilon)
    accumulated_delta[...] = rho * accumulated_delta + (1 - rho) * (delta * delta)
    param += learning_rate * delta

def _adamax_rule(param, grad, m, u, learning_rate, beta_1, beta_2, epsilon, step):
    m += (1 - beta_1) * (grad - m)
    np.maximum(beta_2 * u, np.abs(grad), out=u)
    param -= learning_rate * m / ((1 - beta_1 ** step) * (u + epsilon))

def _lion_rule(param, grad, m, learning_rate, beta_1, beta_2):
    param -= learning_rate * np.sign(beta_1 * m + (1 - beta_1) * grad)
    m[...] = beta_2 * m + (1 - beta_2) * grad

# The kernels update a list of tensors in one call; each tensor on its own here.
def sgd_update(params, grads, velocities, learning_rate, momentum, nesterov, grad_scale,
               clip_value, decay, n_threads):
    grads = _prepared(params, grads, grad_scale, clip_value, decay)
    for p, g, v in zip(params, grads, velocities):
        _sgd_rule(p, g, v, learning_rate, momentum, nesterov)

def adam_update(params, grads, m, v, v_hat, learning_rate, beta_1, beta_2, epsilon, step,
                grad_scale, clip_value, decay, n_threads):
    grads = _prepared(params, grads, grad_scale, clip_value, decay)
    for p, g, mt, vt, ht in zip(params, grads, m, v, v_hat):
        _adam_rule(p, g, mt, vt, ht, learning_rate, beta_1, beta_2, epsilon, step)

def rmsprop_update(params, grads, mean_square, momentum_buffer, mean_grad, learning_rate, rho,
                   momentum, epsilon, centered, grad_scale, clip_value, decay, n_threads):
    grads = _prepared(params, grads, grad_scale, clip_value, decay)
    for p, g, ms, buf, mg in zip(params, grads, mean_square, momentum_buffer, mean_grad):
        _rmsprop_rule(p, g, ms, buf, mg, learning_rate, rho, momentum, epsilon, centered)

def nadam_update(params, grads, m, v, learning_rate, beta_1, beta_2, epsilon, step, u_product,
                 grad_scale, clip_value, decay, n_threads):
    grads = _prepared(params, grads, grad_scale, clip_value, decay)
    for p, g, mt, vt in zip(params, grads, m, v):
        _nadam_rule(p, g, mt, vt, learning_rate, beta_1, beta_2, epsilon, step, u_product)

def adagrad_update(params, grads, accumulators, learning_rate, epsilon, grad_scale, clip_value,
                   decay, n_threads):
    grads = _prepared(params, grads, grad_scale, clip_value, decay)
    for p, g, a in zip(params, grads, accumulators):
        _adagrad_rule(p, g, a, learning_rate, epsilon)

def adadelta_update(params, grads, accumulated_grad, accumulated_delta, learning_rate, rho,
                    epsilon, grad_scale, clip_value, decay, n_threads):
    grads = _prepared(params, grads, grad_scale, clip_value, decay)
    for p, g, ag, ad in zip(params, grads, accumulated_grad, accumulated_delta):
        _adadelta_rule(p, g, ag, ad, learning_rate, rho, epsilon)

def adamax_update(params, grads, m, u, learning_rate, beta_1, beta_2, epsilon, step, grad_scale,
                  clip_value, decay, n_threads):
    grads = _prepared(params, grads, grad_scale, clip_value, decay)
    for p, g, mt, ut in zip(params, grads, m, u):
        _adamax_rule(p, g, mt, ut, learning_rate, beta_1, beta_2, epsilon, step)

def lion_update(params, grads, m, learning_rate, beta_1, beta_2, grad_scale, clip_value, decay,
                n_threads):
    grads = _prepared(params, grads, grad_scale, clip_value, decay)
    for p, g, mt in zip(params, grads, m):
        _lion_rule(p, g, mt, learning_rate, beta_1, beta_2)

def accumulate_gradients(accumulators, grads, mode, steps, n_threads):
    for a, g in zip(accumulators, grads):
        if mode == 0:
            a[...] = g
        elif mode == 1:
            a += g
        else:
            a[...] = (a + g) / a.dtype.type(steps)

def moving_average(averages, weights, momentum, n_threads):
    for a, w in zip(averages, weights):
        a[...] = momentum * a + (1 - momentum) * w
