"""Losses as metrics: the weighted mean of a ``fastcnn.losses.Loss``'s per-sample values.

The loss computes them with its gradient in one call (``forward_backward``); the gradient goes to
a scratch buffer that the metric keeps for the next batch of the same shape.
"""
import numpy as np

from .. import losses
from ..serialization import checked_config
from .base import Mean, real_array


class LossMetric(Mean):
    """The weighted mean of ``loss``'s per-sample values (a Loss, or a name that
    ``fastcnn.losses.get`` knows). Sample weights are per sample: (samples,) or (samples, 1)."""

    def __init__(self, loss, name=None, dtype=None):
        self.loss = _averaging(losses.get(loss))
        self._scratch = None
        super().__init__(name=name or self.loss.name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = real_array(y_pred, "y_pred")
        y_pred = np.ascontiguousarray(y_pred, y_pred.dtype if y_pred.dtype == np.float64
                                      else np.float32)
        if y_pred.ndim < 2:
            raise ValueError(f"Expected y_pred of shape (samples, ..., outputs) for {self.name}, "
                             f"received shape {y_pred.shape}")
        y_true = self.loss.check_targets(y_true, y_pred.shape[1:])
        if len(y_true) != len(y_pred):
            raise ValueError(f"Expected y_true and y_pred of the same length, received "
                             f"{len(y_true)} and {len(y_pred)}")
        grad, values = self._buffers(y_pred)
        self.loss.forward_backward(y_pred, y_true, self.loss.from_logits, grad, values)
        super().update_state(values, sample_weight)

    def _buffers(self, y_pred):
        if self._scratch is None or self._scratch[0].shape != y_pred.shape \
                or self._scratch[0].dtype != y_pred.dtype:
            self._scratch = (np.empty_like(y_pred), np.empty(len(y_pred), y_pred.dtype))
        return self._scratch

    def get_config(self):
        return {**super().get_config(),
                "loss": {"class_name": type(self.loss).__name__, "config": self.loss.get_config()}}

    @classmethod
    def from_config(cls, config):
        """The metric of a config; a subclass's config names no loss, its class fixes it."""
        config = dict(checked_config(config, cls.__name__))
        if "loss" not in config:
            return cls(**config)
        loss = config.pop("loss")
        if isinstance(loss, dict):
            loss_class = getattr(losses, str(loss.get("class_name")), None)
            if not (isinstance(loss_class, type) and issubclass(loss_class, losses.Loss)):
                raise ValueError(f"Unknown loss class {loss.get('class_name')!r} in a "
                                 "LossMetric's config")
            loss = loss_class(**loss.get("config", {}))
        return cls(loss, **config)


def _averaging(loss):
    """``loss``, or a copy whose per-sample values are the samples' mean losses where its
    reduction would scale them (a sum, or none)."""
    if getattr(loss, "reduction", "sum_over_batch_size") not in ("sum", "none", None):
        return loss
    return type(loss).from_config({**loss.get_config(), "reduction": "sum_over_batch_size"})


class _FromLogitsLossMetric(LossMetric):
    """A loss metric of one Loss class, with Keras's from_logits switch and whatever other
    options the loss takes (``label_smoothing``...)."""

    loss_class = None

    def __init__(self, name=None, dtype=None, from_logits=False, **options):
        super().__init__(self.loss_class(from_logits=from_logits, **options),
                         name=name or self.loss_class.name, dtype=dtype)

    def get_config(self):
        options = {key: value for key, value in self.loss.get_config().items()
                   if key not in ("name", "reduction", "dtype")}
        return {"name": self.name, "dtype": self.dtype, **options}


class CategoricalCrossentropy(_FromLogitsLossMetric):
    loss_class = losses.CategoricalCrossentropy


class SparseCategoricalCrossentropy(_FromLogitsLossMetric):
    loss_class = losses.SparseCategoricalCrossentropy


class BinaryCrossentropy(_FromLogitsLossMetric):
    loss_class = losses.BinaryCrossentropy


class CategoricalHinge(LossMetric):
    def __init__(self, name="categorical_hinge", dtype=None):
        super().__init__(losses.CategoricalHinge(), name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
