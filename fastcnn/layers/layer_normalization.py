"""LayerNormalization and GroupNormalization: statistics per sample, with Keras 3's weights and
semantics. Both behave the same in training and inference (there are no moving statistics).
"""
import numbers

import numpy as np

from .. import initializers, regularizers
from ..arguments import finite_float
from .._ops import layer_norm
from .base import Layer


class _SampleNormalization(Layer):
    """What the two layers share: epsilon, the optional gamma (``scale``) and beta (``center``)
    with their initializers and regularizers, created in Keras's order (gamma, then beta)."""

    def __init__(self, epsilon, center, scale, beta_initializer, gamma_initializer,
                 beta_regularizer, gamma_regularizer, **kwargs):
        super().__init__(**kwargs)
        if not (finite_float(epsilon) or 0) > 0:
            raise ValueError(f"Expected epsilon > 0, received epsilon={epsilon!r}")
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.validate(beta_initializer)
        self.gamma_initializer = initializers.validate(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def _add_gamma_and_beta(self, shape):
        gamma = (self.add_weight(shape, self.gamma_initializer, regularizer=self.gamma_regularizer,
                                 name="gamma") if self.scale else None)
        beta = (self.add_weight(shape, self.beta_initializer, regularizer=self.beta_regularizer,
                                name="beta") if self.center else None)
        # Without scale or center the kernels get constant ones or zeros in their place.
        self.gamma = np.ones(shape, np.float32) if gamma is None else gamma
        self.beta = np.zeros(shape, np.float32) if beta is None else beta

    def _param_grads(self, ctx):
        """The (dgamma, dbeta) buffers: the engine's where the weight exists and is trained,
        else scratch."""
        grads = ctx.grads or (None, None)
        dgamma = grads[0] if self.scale else None
        dbeta = grads[int(self.scale)] if self.center else None
        return (ctx.buffer("dgamma", self.gamma.shape) if dgamma is None else dgamma,
                ctx.buffer("dbeta", self.beta.shape) if dbeta is None else dbeta)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "beta_initializer": self.beta_initializer,
                "gamma_initializer": self.gamma_initializer,
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}


class LayerNormalization(_SampleNormalization):
    """Normalise each sample over ``axis`` (an int or a list of ints; the last axis by
    default): ``(x - mean) / sqrt(var + epsilon) * gamma + beta``, with the mean and biased
    variance of each sample's values over those axes (separately for every position of the
    other axes). gamma and beta span the normalised axes, with shape
    ``tuple(input_shape[a] for a in axis)`` as in Keras.

    Keras's ``rms_scaling=True`` is not implemented and is refused.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, **kwargs):
        super().__init__(epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, **kwargs)
        items = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not items or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                                for a in items):
            raise TypeError(f"Expected axis to be an int or a non-empty list of ints, received "
                            f"axis={axis!r}")
        if rms_scaling is not False:
            raise ValueError(f"Expected rms_scaling=False (fastcnn does not implement RMS "
                             f"scaling), received rms_scaling={rms_scaling!r}")
        self.axis = [int(a) for a in items] if isinstance(axis, (list, tuple)) else int(axis)

    def _axes(self, input_shape):
        """The normalised axes of inputs of ``input_shape``, sorted, and their sizes in the
        order of ``axis`` (gamma's shape)."""
        rank = len(input_shape)
        axes = layer_norm.normalized_axes(self.axis, rank)
        items = self.axis if isinstance(self.axis, list) else [self.axis]
        shape = tuple(input_shape[a] for a in items)
        if not all(isinstance(d, numbers.Integral) for d in shape):
            raise ValueError(f"LayerNormalization {self.name!r} needs the normalised axes "
                             f"{self.axis} of its inputs known, received input shape "
                             f"{tuple(input_shape)}")
        return axes, shape

    def compute_output_shape(self, input_shape):
        _, shape = self._axes(input_shape)
        if self.built and shape != self.gamma.shape:
            raise ValueError(f"LayerNormalization {self.name!r} was built for normalised axes "
                             f"of sizes {self.gamma.shape}, received input shape "
                             f"{tuple(input_shape)}")
        return input_shape

    def build(self, input_shape):
        self._add_gamma_and_beta(self._axes(input_shape)[1])

    def forward(self, x, ctx, training):
        ctx.x = x
        ctx.axes = self._axes(x.shape)[0]
        rows = x.size // self.gamma.size
        y, ctx.mean, ctx.inv_std = layer_norm.layernorm_forward(
            x, self.gamma, self.beta, ctx.axes, self.epsilon, out=ctx.buffer("y", x.shape),
            mean=ctx.buffer("mean", (rows,)), inv_std=ctx.buffer("inv_std", (rows,)))
        return y

    def backward(self, dy, ctx, need_dx):
        x = ctx.x
        dgamma, dbeta = self._param_grads(ctx)
        partial = ctx.buffer("partial", layer_norm.layernorm_partial_shape(
            x.size // self.gamma.size, self.gamma.size), np.float64)
        return layer_norm.layernorm_backward(
            x, dy, self.gamma, ctx.mean, ctx.inv_std, ctx.axes, dgamma, dbeta, need_dx=need_dx,
            out=ctx.buffer("dx", x.shape) if need_dx else None, partial=partial)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "rms_scaling": False}


class GroupNormalization(_SampleNormalization):
    """Split the channels (the last axis) into ``groups`` groups of adjacent channels and
    normalise each sample's group over its positions and channels:
    ``(x - mean) / sqrt(var + epsilon) * gamma + beta``, gamma and beta per channel.
    ``groups=-1`` gives a group per channel (instance normalisation); ``groups=1`` normalises
    each sample as a whole. The channels must divide by ``groups``.

    fastcnn keeps channels last, so ``axis`` must name the last axis.
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, **kwargs):
        super().__init__(epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, **kwargs)
        if (isinstance(groups, bool) or not isinstance(groups, numbers.Integral)
                or not (groups >= 1 or groups == -1)):
            raise ValueError(f"Expected groups to be a positive int or -1 (one group per "
                             f"channel), received groups={groups!r}")
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"Expected axis to be an int, received axis={axis!r}")
        self.groups = int(groups)
        self.axis = int(axis)

    def _groups_for(self, input_shape):
        """The number of groups for inputs of ``input_shape``, checked."""
        shape = tuple(input_shape)
        rank = len(shape)
        if rank < 2 or not isinstance(shape[-1], numbers.Integral):
            raise ValueError(f"GroupNormalization {self.name!r} expects inputs of shape "
                             f"(batch, ..., channels) with a known number of channels, "
                             f"received {shape}")
        if self.axis not in (-1, rank - 1):
            raise ValueError(f"GroupNormalization {self.name!r} normalises groups of the last "
                             f"(channel) axis: expected axis=-1 or axis={rank - 1} for inputs of "
                             f"rank {rank}, received axis={self.axis}")
        channels = shape[-1]
        groups = channels if self.groups == -1 else self.groups
        if groups > channels or channels % groups:
            raise ValueError(f"Expected groups to divide the {channels} channels of "
                             f"GroupNormalization {self.name!r}, received groups={self.groups}")
        return groups

    def compute_output_shape(self, input_shape):
        self._groups_for(input_shape)
        if self.built:
            self._check_channels(input_shape, self.gamma.shape[0])
        return input_shape

    def build(self, input_shape):
        self._groups_for(input_shape)
        self._add_gamma_and_beta((tuple(input_shape)[-1],))

    def forward(self, x, ctx, training):
        ctx.x = x
        ctx.groups = self._groups_for(x.shape)
        stats = (x.shape[0], ctx.groups)
        y, ctx.mean, ctx.inv_std = layer_norm.groupnorm_forward(
            x, self.gamma, self.beta, ctx.groups, self.epsilon, out=ctx.buffer("y", x.shape),
            mean=ctx.buffer("mean", stats), inv_std=ctx.buffer("inv_std", stats),
            partial=self._partial(ctx, x.shape))
        return y

    def backward(self, dy, ctx, need_dx):
        x = ctx.x
        dgamma, dbeta = self._param_grads(ctx)
        return layer_norm.groupnorm_backward(
            x, dy, self.gamma, ctx.mean, ctx.inv_std, ctx.groups, dgamma, dbeta, need_dx=need_dx,
            out=ctx.buffer("dx", x.shape) if need_dx else None,
            partial=self._partial(ctx, x.shape))

    @staticmethod
    def _partial(ctx, x_shape):
        return ctx.buffer("partial", (x_shape[0], 2, x_shape[-1]), np.float64)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis}
