"""A custom loss function given to ``compile``: ``fn(y_true, y_pred)`` written with ops, traced
and differentiated (Keras's LossFunctionWrapper).

``fn`` returns a loss per sample (batch,), per position (batch, ...), or one number; as Keras
reduces it ("sum_over_batch_size"), the batch loss is the mean of everything it returns, and
each sample's logged loss is the mean of its own entries (of the one number, when it returns
one). The targets are given to ``fn`` as float32, as Keras converts them to the loss's dtype.
"""
import math

import numpy as np

from .._ops.checks import as_kernel_array
from ..losses import Loss
from ..losses.base import _sample_weights
from ..serialization import get_function, register_builtin, registered_name
from .function import Function


@register_builtin
class LossFunctionWrapper(Loss):
    def __init__(self, fn, name=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"Expected fn to be a callable fn(y_true, y_pred), received "
                            f"{fn!r:.200}")
        super().__init__(name=name or getattr(fn, "__name__", type(fn).__name__))
        self.fn, self.fn_kwargs = fn, kwargs
        self._function = Function(lambda y_true, y_pred: fn(y_true, y_pred, **kwargs),
                                  self.name)
        self._upstreams = {}

    def check_targets(self, y, output_shape):
        y = np.asarray(y)
        if y.dtype.kind not in "fiub":
            raise TypeError(f"Expected targets y of real numbers for {self.name}, received "
                            f"dtype {y.dtype}")
        return as_kernel_array(y, "y", dtype=np.float32)

    def forward_backward(self, y_pred, y_true, logits, grad, loss, sample_weight=None,
                         batch=None):
        n = len(y_pred)
        weights = None if sample_weight is None else _sample_weights(sample_weight, n, ())

        def upstream(shape, dtype):
            # d mean(out) / d out, each sample's entries weighed by its sample weight; for one
            # process's share of a batch (``batch``), the mean over the whole batch's entries
            per_sample = bool(shape) and shape[0] == n
            if batch is not None and not per_sample:
                raise self._share_error(f"a result of shape {shape} (a distributed fit needs "
                                        "one loss per sample)")
            size = math.prod(shape)
            entries = size if batch is None else size // n * batch
            if weights is None:  # one number for every entry: a read-only broadcast view,
                key = (shape, dtype, entries)  # the same every batch of this size
                g = self._upstreams.get(key)
                if g is None:
                    g = np.broadcast_to(np.asarray(1.0 / max(entries, 1), dtype), shape)
                    if len(self._upstreams) < 16:
                        self._upstreams[key] = g
                return g
            if not per_sample:
                raise ValueError(f"Expected {self.name} to return one loss per sample (a "
                                 f"first axis of {n}) for sample weights, received shape "
                                 f"{shape}")
            g = np.full(shape, 1.0 / max(entries, 1), dtype)
            g *= weights.reshape(n, *(1,) * (len(shape) - 1)).astype(dtype)
            return g

        out, (dy_pred,) = self._function.value_and_grad([y_true, y_pred], upstream, wrt=(1,))
        if out.ndim and out.shape[0] == n:
            loss[...] = out if out.ndim == 1 else out.reshape(n, -1).mean(axis=1)
            if weights is not None:
                loss *= weights.astype(loss.dtype)
        else:
            loss[...] = out.mean()
        grad[...] = dy_pred

    def get_config(self):
        return {"name": self.name, "fn": registered_name(self.fn), **self.fn_kwargs}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(get_function(config.pop("fn")), **config)
