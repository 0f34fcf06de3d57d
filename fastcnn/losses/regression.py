"""Losses of outputs against targets of the same shape: the mean errors, Huber, log-cosh,
Poisson and the KL divergence, each over the last axis as Keras computes them."""
from .._ops import loss as loss_ops
from .._ops.checks import real_number
from .base import RawOutputLoss


class MeanSquaredError(RawOutputLoss):
    """Keras's mean squared error: mean((p - t)^2) over the last axis."""

    name = "mean_squared_error"

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.mean_squared_error(y_pred, y_true, grad_scale, grad=grad, loss=loss)


class MeanAbsoluteError(RawOutputLoss):
    """Keras's mean absolute error: mean(|p - t|) over the last axis (no gradient where p = t)."""

    name = "mean_absolute_error"

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.mean_absolute_error(y_pred, y_true, grad_scale, grad=grad, loss=loss)


class Huber(RawOutputLoss):
    """Keras's Huber loss, the mean over the last axis of e^2 / 2 where |e| <= delta and
    delta |e| - delta^2 / 2 beyond, e = p - t."""

    name = "huber_loss"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name, reduction, dtype)
        self.delta = real_number(delta, "delta")
        if self.delta <= 0:
            raise ValueError(f"Expected delta > 0, received delta={delta!r}")

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.huber(y_pred, y_true, grad_scale, delta=self.delta, grad=grad, loss=loss)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class LogCosh(RawOutputLoss):
    """Keras's log-cosh loss: mean(log(cosh(p - t))) over the last axis, about e^2 / 2 for small
    errors and |e| - log 2 for large ones."""

    name = "log_cosh"

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.log_cosh(y_pred, y_true, grad_scale, grad=grad, loss=loss)


class Poisson(RawOutputLoss):
    """Keras's Poisson loss: mean(p - t log(p + 1e-7)) over the last axis, p the predicted rate
    and t the observed count."""

    name = "poisson"

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.poisson(y_pred, y_true, grad_scale, grad=grad, loss=loss)


class KLDivergence(RawOutputLoss):
    """Keras's Kullback-Leibler divergence: sum(t log(t / p)) over the last axis (a sum, not a
    mean), both clipped to [1e-7, 1]."""

    name = "kl_divergence"

    def _row_losses(self, y_pred, y_true, logits, grad, loss, grad_scale):
        loss_ops.kl_divergence(y_pred, y_true, grad_scale, grad=grad, loss=loss)
