"""The losses, each with its gradient in the same pass: checked calls of ``_ext.loss``."""
import numbers

import numpy as np

from .._ext import loss as _loss
from .checks import as_kernel_array, check_apart, out_buffer, real_number
from .threads import effective_n_threads


def _scores(a, name):
    """(N, K) scores with K >= 1: the loss kernels read each row's first entry."""
    a = as_kernel_array(a, name, 2)
    if a.shape[1] == 0:
        raise ValueError(f"Expected {name} with at least one class, received shape {a.shape}")
    return a


def _class_labels(labels, scores_shape):
    """One int64 label per row of scores. The kernels index each row with it and check that it
    is in [0, K) as they go."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"Expected integer labels, received dtype {labels.dtype}")
    if labels.shape != scores_shape[:1]:
        raise ValueError(f"Expected labels of shape {scores_shape[:1]}, received {labels.shape}")
    if labels.dtype == np.uint64 and labels.size and labels.max() > np.iinfo(np.int64).max:
        raise ValueError(f"Expected labels in [0, {scores_shape[1]}), received {labels.max()}")
    return np.ascontiguousarray(labels, dtype=np.int64)


def _loss_outputs(scores, grad_scale, grad, loss):
    """The grad (N, K) and loss (N,) buffers a loss kernel fills, once grad_scale is a number."""
    if isinstance(grad_scale, bool) or not isinstance(grad_scale, numbers.Real):
        raise TypeError(f"Expected grad_scale to be a real number, received grad_scale={grad_scale!r}")
    return (out_buffer(grad, scores.shape, scores.dtype, "grad"),
            out_buffer(loss, scores.shape[:1], scores.dtype, "loss"))


def _dense_target_loss(kernel, scores_name, scores, target, grad_scale, grad, loss, n_threads):
    """Run a loss kernel whose targets have the scores' shape."""
    scores = _scores(scores, scores_name)
    target = as_kernel_array(target, "target", dtype=scores.dtype, shape=scores.shape)
    grad, loss = _loss_outputs(scores, grad_scale, grad, loss)
    check_apart({"grad": grad, "loss": loss}, {scores_name: scores, "target": target})
    kernel(scores, target, grad, loss, grad_scale, n_threads)
    return loss, grad


def _label_loss(kernel, scores_name, scores, labels, grad_scale, grad, loss, n_threads):
    """Run a loss kernel whose targets are integer labels in [0, K)."""
    scores = _scores(scores, scores_name)
    labels = _class_labels(labels, scores.shape)
    grad, loss = _loss_outputs(scores, grad_scale, grad, loss)
    check_apart({"grad": grad, "loss": loss}, {scores_name: scores, "labels": labels})
    kernel(scores, labels, grad, loss, grad_scale, n_threads)
    return loss, grad


def softmax_cross_entropy(logits, target, grad_scale, grad=None, loss=None, n_threads=None):
    """Per-row losses and the scaled gradient wrt the logits; target is one-hot (N, K)."""
    return _dense_target_loss(_loss.softmax_cross_entropy, "logits", logits, target, grad_scale,
                              grad, loss, effective_n_threads(n_threads))


def sparse_softmax_cross_entropy(logits, labels, grad_scale, grad=None, loss=None, n_threads=None):
    """As softmax_cross_entropy, with integer labels in [0, K)."""
    return _label_loss(_loss.sparse_softmax_cross_entropy, "logits", logits, labels, grad_scale,
                       grad, loss, effective_n_threads(n_threads))


def mean_squared_error(y_pred, target, grad_scale, grad=None, loss=None, n_threads=None):
    """Per-row mean squared error and grad_scale times its gradient wrt y_pred."""
    return _dense_target_loss(_loss.mean_squared_error, "y_pred", y_pred, target, grad_scale,
                              grad, loss, effective_n_threads(n_threads))


def binary_crossentropy(y_pred, target, grad_scale, from_logits=False, grad=None, loss=None,
                        n_threads=None):
    """Per-row mean binary cross-entropy of probabilities (Keras's clip), or of logits."""
    kernel = _loss.sigmoid_binary_crossentropy if from_logits else _loss.binary_crossentropy
    return _dense_target_loss(kernel, "y_pred", y_pred, target, grad_scale, grad, loss,
                              effective_n_threads(n_threads))


def categorical_hinge(y_pred, target, grad_scale, grad=None, loss=None, n_threads=None):
    return _dense_target_loss(_loss.categorical_hinge, "y_pred", y_pred, target, grad_scale, grad,
                              loss, effective_n_threads(n_threads))


def multiclass_hinge(scores, labels, grad_scale, grad=None, loss=None, n_threads=None):
    """The multiclass SVM loss per row, with integer labels in [0, K)."""
    return _label_loss(_loss.multiclass_hinge, "scores", scores, labels, grad_scale, grad, loss,
                       effective_n_threads(n_threads))


def mean_absolute_error(y_pred, target, grad_scale, grad=None, loss=None, n_threads=None):
    """Per-row mean absolute error and grad_scale times its gradient wrt y_pred."""
    return _dense_target_loss(_loss.mean_absolute_error, "y_pred", y_pred, target, grad_scale,
                              grad, loss, effective_n_threads(n_threads))


def huber(y_pred, target, grad_scale, delta=1.0, grad=None, loss=None, n_threads=None):
    """Per-row mean Huber loss with threshold ``delta`` (> 0)."""
    if real_number(delta, "delta") <= 0:
        raise ValueError(f"Expected delta > 0, received delta={delta!r}")
    kernel = lambda *a: _loss.huber(*a[:4], delta, *a[4:])
    return _dense_target_loss(kernel, "y_pred", y_pred, target, grad_scale, grad, loss,
                              effective_n_threads(n_threads))


def log_cosh(y_pred, target, grad_scale, grad=None, loss=None, n_threads=None):
    return _dense_target_loss(_loss.log_cosh, "y_pred", y_pred, target, grad_scale, grad, loss,
                              effective_n_threads(n_threads))


def kl_divergence(y_pred, target, grad_scale, grad=None, loss=None, n_threads=None):
    """Per-row KL divergence (a sum over the row) of probabilities."""
    return _dense_target_loss(_loss.kl_divergence, "y_pred", y_pred, target, grad_scale, grad,
                              loss, effective_n_threads(n_threads))


def poisson(y_pred, target, grad_scale, grad=None, loss=None, n_threads=None):
    return _dense_target_loss(_loss.poisson, "y_pred", y_pred, target, grad_scale, grad, loss,
                              effective_n_threads(n_threads))


def categorical_focal_crossentropy(y_pred, target, grad_scale, alpha=0.25, gamma=2.0,
                                   from_logits=False, grad=None, loss=None, n_threads=None):
    """Per-row focal cross-entropy; ``alpha`` is one number or one per class (K,)."""
    gamma = real_number(gamma, "gamma", 0)
    scores = _scores(y_pred, "y_pred")
    alpha = np.asarray(alpha)  # its kind checked before the cast to the scores' dtype
    if alpha.ndim > 1 or (alpha.ndim == 1 and alpha.shape != scores.shape[1:]) or \
            alpha.dtype.kind not in "iuf" or not np.all(np.isfinite(alpha)):
        raise ValueError(f"Expected alpha to be a finite number or one per class "
                         f"({scores.shape[1]}), received alpha={alpha.tolist()!r:.200}")
    alpha = np.ascontiguousarray(np.broadcast_to(alpha, scores.shape[1:]), scores.dtype)
    kernel = lambda s, t, g, l, *a: _loss.categorical_focal_crossentropy(
        s, t, alpha, g, l, gamma, bool(from_logits), *a)
    return _dense_target_loss(kernel, "y_pred", scores, target, grad_scale, grad, loss,
                              effective_n_threads(n_threads))


def binary_focal_crossentropy(y_pred, target, grad_scale, apply_class_balancing=False,
                              alpha=0.25, gamma=2.0, from_logits=False, grad=None, loss=None,
                              n_threads=None):
    """Per-row mean binary focal cross-entropy."""
    gamma = real_number(gamma, "gamma", 0)
    alpha = real_number(alpha, "alpha")
    kernel = lambda s, t, g, l, *a: _loss.binary_focal_crossentropy(
        s, t, g, l, alpha, gamma, bool(apply_class_balancing), bool(from_logits), *a)
    return _dense_target_loss(kernel, "y_pred", y_pred, target, grad_scale, grad, loss,
                              effective_n_threads(n_threads))


def dice(y_pred, target, grad_scale, grad=None, loss=None, n_threads=None):
    """The Dice loss of each row (G, M): one group of values per row."""
    return _dense_target_loss(_loss.dice, "y_pred", y_pred, target, grad_scale, grad, loss,
                              effective_n_threads(n_threads))

