"""Regularisation by noise, active only in training and the identity otherwise:
SpatialDropout2D, GaussianNoise and GaussianDropout.

Like Dropout, each draws a seed from its call's ``ctx.rng`` (see RandomTransformLayer) and the
kernels derive every random number from (seed, element index), so the noise does not depend on
the thread count and the backward pass recomputes it rather than storing it. SpatialDropout2D
and GaussianDropout are Dropouts (its ``rate``, checks, config and draw) with other noise.
"""
import math

import numpy as np

from ..arguments import finite_float
from .._ops import noise
from .base import RandomTransformLayer
from .core import Dropout


class SpatialDropout2D(Dropout):
    """Drop whole feature maps: during training each channel of each image is zeroed with
    probability ``rate`` and the kept ones are scaled by 1 / (1 - rate). Inputs are
    (batch, height, width, channels); ``data_format`` must be "channels_last" (or None)."""

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f'Expected data_format="channels_last" (fastcnn keeps channels '
                             f'last), received data_format={data_format!r}')

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        return input_shape

    def forward(self, x, ctx, training):
        if self.draw_mask(ctx, training) is None:
            return x
        y, ctx.keep = noise.spatial_dropout_forward(
            x, *ctx.mask, out=ctx.buffer("y", x.shape),
            keep=ctx.buffer("keep", (x.shape[0], x.shape[-1])))
        return y

    def _transform_backward(self, dy, ctx):
        return noise.spatial_dropout_backward(dy, ctx.keep, out=ctx.buffer("dx", dy.shape))

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last"}


class GaussianDropout(Dropout):
    """Multiply by normal noise of mean 1 and standard deviation sqrt(rate / (1 - rate))
    during training: the variance of Dropout's factor at the same rate."""

    def forward(self, x, ctx, training):
        if self.draw_mask(ctx, training) is None:
            return x
        return noise.gaussian_dropout_forward(x, ctx.mask[0], self._stddev(),
                                              out=ctx.buffer("y", x.shape))

    def _stddev(self):
        return math.sqrt(self.rate / (1 - self.rate))

    def _transform_backward(self, dy, ctx):
        return noise.gaussian_dropout_backward(dy, ctx.mask[0], self._stddev(),
                                               out=ctx.buffer("dx", dy.shape))


class GaussianNoise(RandomTransformLayer):
    """Add zero-centred normal noise of standard deviation ``stddev`` (in [0, 1], as Keras
    takes) during training."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        value = finite_float(stddev)
        if value is None or not 0 <= value <= 1:
            raise ValueError(f"Expected stddev in [0, 1], received stddev={stddev!r}")
        self.stddev = value

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x, ctx, training):
        ctx.active = bool(training) and self.stddev > 0
        if not ctx.active:
            return x
        seed = int(ctx.rng.integers(2**64, dtype=np.uint64))
        return noise.gaussian_noise_forward(x, seed, self.stddev, out=ctx.buffer("y", x.shape))

    def _transform_backward(self, dy, ctx):
        return dy  # added noise: the gradient passes through

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}
