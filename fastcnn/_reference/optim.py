"""NumPy twins of ``fastcnn._ext.optim``: Keras 3's update rules, in place."""
import numpy as np


def _sgd_rule(param, grad, velocity, learning_rate, momentum, nesterov):
    if momentum == 0:
        param -= learning_rate * grad
        return
    velocity[...] = momentum * velocity - learning_rate * grad
    if nesterov:
        param += momentum * velocity - learning_rate * grad
    else:
        param += velocity

def _adam_rule(param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, step, weight_decay):
    """``step`` counts from 1. Keras folds the bias corrections into the learning rate; AdamW
    shrinks the weight first."""
    if weight_decay:
        param += -learning_rate * weight_decay * param
    alpha = learning_rate * np.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    m += (1 - beta_1) * (grad - m)
    v += (1 - beta_2) * (grad * grad - v)
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

# The kernels update a list of tensors in one call; each tensor on its own here.
def sgd_update(params, grads, velocities, learning_rate, momentum, nesterov, n_threads):
    for p, g, v in zip(params, grads, velocities):
        _sgd_rule(p, g, v, learning_rate, momentum, nesterov)

def adam_update(params, grads, m, v, learning_rate, beta_1, beta_2, epsilon, step, weight_decay,
                n_threads):
    for p, g, mt, vt in zip(params, grads, m, v):
        _adam_rule(p, g, mt, vt, learning_rate, beta_1, beta_2, epsilon, step, weight_decay)

def rmsprop_update(params, grads, mean_square, momentum_buffer, mean_grad, learning_rate, rho,
                   momentum, epsilon, centered, n_threads):
    for p, g, ms, buf, mg in zip(params, grads, mean_square, momentum_buffer, mean_grad):
        _rmsprop_rule(p, g, ms, buf, mg, learning_rate, rho, momentum, epsilon, centered)
