"""BatchNormalization over the channel (last) axis, with Keras's weights and semantics."""
import numbers

import numpy as np

from .. import initializers
from ..arguments import finite_float
from .._ops import conv, normalization
from .base import Layer


def conv_moments_buffer(ctx, shape):
    """A conv's buffer for the partial sums of the statistics of the training
    BatchNormalization reading its output of ``shape`` (the planner's ``batchnorm_moments``),
    or None."""
    return (ctx.buffer("moments", normalization.batchnorm_partial_shape(shape), np.float64)
            if ctx.batchnorm_moments else None)


class BatchNormalization(Layer):
    """Normalise each channel: ``(x - mean) / sqrt(var + epsilon) * gamma + beta``.

    Training (``training=True`` and the layer trainable) uses the batch's mean and biased
    variance over every axis but the channel axis, and moves the moving statistics:
    ``moving = moving * momentum + batch * (1 - momentum)``. Otherwise, as in Keras 3, the
    moving statistics are used and stay put. Weights, in Keras's order: gamma (if ``scale``),
    beta (if ``center``), then the non-trainable moving_mean and moving_variance.

    ``synchronized=True``: in a data-parallel fit over several processes (fastcnn.distributed's
    DistributedOptimizer), the batch statistics, their moving averages and the gradients are
    those of the whole batch, every process's share of it, rather than of this process's share:
    the per-channel sums are totalled across the processes, and the weights then match one
    process training on the whole batch (bitwise, with ``deterministic=True``). Anywhere else
    (one process, a call outside such a fit, inference) it changes nothing.
    """

    fusion = "batchnorm"
    per_sample = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=0.001, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(synchronized, bool):
            raise TypeError(f"Expected synchronized to be True or False, received "
                            f"synchronized={synchronized!r}")
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"Expected axis to be an int, received axis={axis!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
            raise ValueError(f"Expected momentum in [0, 1], received momentum={momentum!r}")
        if not (finite_float(epsilon) or 0) > 0:
            raise ValueError(f"Expected epsilon > 0, received epsilon={epsilon!r}")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.synchronized = synchronized
        self.beta_initializer = initializers.validate(beta_initializer)
        self.gamma_initializer = initializers.validate(gamma_initializer)
        self.moving_mean_initializer = initializers.validate(moving_mean_initializer)
        self.moving_variance_initializer = initializers.validate(moving_variance_initializer)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) < 2 or not isinstance(shape[-1], numbers.Integral):
            raise ValueError(f"BatchNormalization {self.name!r} expects inputs of shape "
                             f"(batch, ..., channels) with a known number of channels, received "
                             f"{shape}")
        rank = len(shape)
        if self.axis not in (-1, rank - 1):
            raise ValueError(f"BatchNormalization {self.name!r} normalises the last (channel) axis: "
                             f"expected axis=-1 or axis={rank - 1} for inputs of rank {rank}, "
                             f"received axis={self.axis}")
        if self.built:
            self._check_channels(input_shape, self.moving_mean.shape[0])
        return input_shape

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        c = tuple(input_shape)[-1]
        gamma = self.add_weight((c,), self.gamma_initializer, name="gamma") if self.scale else None
        beta = self.add_weight((c,), self.beta_initializer, name="beta") if self.center else None
        self.moving_mean = self.add_weight((c,), self.moving_mean_initializer, trainable=False,
                                           name="moving_mean")
        self.moving_variance = self.add_weight((c,), self.moving_variance_initializer,
                                               trainable=False, name="moving_variance")
        # Without scale or center the kernels get constant ones or zeros in their place, made
        # after the weights so that loading a file counts c against what it holds first.
        self.gamma = np.ones(c, np.float32) if gamma is None else gamma
        self.beta = np.zeros(c, np.float32) if beta is None else beta

    def _param_grad(self, ctx, present, index, name):
        """The gradient buffer of gamma or beta, or scratch when the layer has no such weight
        or it is not trained."""
        grad = ctx.grads[index] if present and ctx.grads is not None else None
        return grad if grad is not None else ctx.buffer(name, self.moving_mean.shape)

    def forward(self, x, ctx, training):
        return self.forward_fused(x, ctx, training)

    def backward(self, dy, ctx, need_dx):
        return self.backward_fused(dy, ctx, need_dx)[0]

    def forward_fused(self, x, ctx, training, residual=None, relu=False, relu_max=None,
                      moments=None, out=None):
        """act(BN(x) [+ residual]), act relu (capped at relu_max unless None: relu6) or the
        identity, in one pass over x after the statistics, into ``out`` (None: the call's own
        buffer): the planner's fusion of this layer with an Add and an Activation after it
        (engine/plan.py). ``moments``: None, or the partial sums of x's statistics, which the
        conv that made x summed as it wrote it."""
        self._start(x, ctx, training, residual, relu, relu_max)
        out = ctx.buffer("y", x.shape) if out is None else out
        if ctx.batch_stats:
            return self._batch_forward(x, ctx, moments, out)
        y, ctx.inv_std = normalization.batchnorm_forward_inference(
            x, self.gamma, self.beta, self.moving_mean, self.moving_variance, self.epsilon,
            residual=residual, relu=relu, relu_max=relu_max, out=out,
            inv_std=ctx.buffer("inv_std", (x.shape[-1],)))
        ctx.mean = self.moving_mean
        return y

    def normalisation_for_conv(self, x, ctx, relu=False, relu_max=None, moments=None,
                               conv_sums=False):
        """forward_fused's call in training with the batch's statistics and no residual, for a
        conv that reads its output and normalises x as it loads it: the statistics alone (the
        moving ones move as ever), and the normalization.InputBatchNorm the conv applies. With
        ``conv_sums`` that conv's backward also sums this call's gradient sums, where their
        chunks fit its own (conv.batchnorm_sums_fit)."""
        self._start(x, ctx, True, None, relu, relu_max)
        if not ctx.batch_stats:
            raise ValueError(f"BatchNormalization {self.name!r}: a conv normalises its input "
                             f"with the batch's statistics of a trainable layer only")
        self._batch_forward(x, ctx, moments, None)
        if conv_sums and conv.batchnorm_sums_fit(x.shape):
            ctx.grad_partial = ctx.buffer("grad_partial",
                                          normalization.batchnorm_partial_shape(x.shape),
                                          np.float64)
        return normalization.InputBatchNorm(ctx.mean, ctx.inv_std, self.gamma, self.beta, relu,
                                            relu_max, ctx.grad_partial)

    def _start(self, x, ctx, training, residual, relu, relu_max):
        """What a call's backward reads of it."""
        ctx.x, ctx.residual, ctx.relu, ctx.relu_max = x, residual, relu, relu_max
        ctx.grad_partial = None
        # A frozen layer normalises with its moving statistics, as in Keras 3.
        ctx.batch_stats = bool(training and self.trainable)

    def _batch_forward(self, x, ctx, moments, out):
        """The batch's statistics (into ctx), the moving ones moved, and act(BN(x) [+
        residual]) into out, unless out is None."""
        y, ctx.mean, ctx.inv_std = normalization.batchnorm_forward_training(
            x, self.gamma, self.beta, self.moving_mean, self.moving_variance, self.momentum,
            self.epsilon, residual=ctx.residual, relu=ctx.relu, relu_max=ctx.relu_max, out=out,
            mean=ctx.buffer("mean", (x.shape[-1],)), inv_std=ctx.buffer("inv_std", (x.shape[-1],)),
            partial=moments if moments is not None else self._partial(ctx, x.shape),
            across=self._across(ctx), moments_given=moments is not None,
            normalise=out is not None)
        return y

    def output_again(self, ctx, out):
        """forward_fused's output of the call whose ``ctx`` this is, recomputed bit for bit into
        ``out`` from what its backward keeps (x, the statistics, the residual), before the
        weights change."""
        return normalization.batchnorm_apply(ctx.x, self.gamma, self.beta, ctx.mean,
                                             ctx.inv_std, residual=ctx.residual, relu=ctx.relu,
                                             relu_max=ctx.relu_max, out=out)

    def backward_fused(self, dy, ctx, need_dx, dy2=None):
        """(dx, dresidual) of forward_fused's call: each None unless need_dx, dresidual also
        when that call had no residual. ``dy2``: a second part of the output's gradient, to
        add to dy (the engine's sum of the gradients of two readers)."""
        residual = ctx.residual
        # Without relu the residual's gradient is dy itself (in one part); otherwise the
        # kernel writes it as it goes.
        need_dres = need_dx and residual is not None and (ctx.relu or dy2 is not None)
        dx, dres = self._backward(dy, ctx, need_dx, need_dres, dy2)
        if need_dx and residual is not None and not need_dres:
            dres = dy
        return dx, dres

    def input_gradient_for_conv(self, dy, ctx, buffer, dy2=None):
        """The gradients of gamma and beta of forward_fused's call, and what the backward of the
        conv that made x needs to make dx itself as it reads its own dy
        (normalization.BatchNormInputGradient): bit for bit backward_fused's dx. Returns that
        and g, the gradient the conv gets: dy itself where the conv can mask it alone (one part,
        no residual), else the normalised value's gradient, which is also the residual's.
        ``buffer(name, shape, dtype)`` gives the buffers that hold the statistics and the
        gradient means for the conv: this call's own go to other steps once its backward is
        done, before the conv's runs."""
        c = ctx.x.shape[-1]
        grad_means = buffer("batchnorm grad_means", (2, c), np.float64)
        g_given = dy2 is not None or ctx.residual is not None
        _, g = self._backward(dy, ctx, False, g_given and (ctx.relu or dy2 is not None), dy2,
                              grad_means)
        mean = buffer("batchnorm mean", (c,), ctx.mean.dtype)
        inv_std = buffer("batchnorm inv_std", (c,), ctx.inv_std.dtype)
        mean[...], inv_std[...] = ctx.mean, ctx.inv_std
        recipe = normalization.BatchNormInputGradient(ctx.x, mean, inv_std, self.gamma,
                                                      self.beta, grad_means, ctx.relu,
                                                      ctx.relu_max, g_given)
        return recipe, dy if g is None else g

    def _backward(self, dy, ctx, need_dx, need_dres, dy2, grad_means=None):
        x = ctx.x
        result = normalization.batchnorm_backward(
            x, dy, self.gamma, self.beta, ctx.mean, ctx.inv_std, ctx.batch_stats,
            dgamma=self._param_grad(ctx, self.scale, 0, "dgamma"),
            dbeta=self._param_grad(ctx, self.center, int(self.scale), "dbeta"),
            residual=ctx.residual, relu=ctx.relu, relu_max=ctx.relu_max, need_dx=need_dx,
            need_dres=need_dres,
            out=ctx.buffer("dx", x.shape) if need_dx else None,
            dres=ctx.buffer("dres", x.shape) if need_dres else None,
            partial=(ctx.grad_partial if ctx.grad_partial is not None
                     else self._partial(ctx, x.shape)),
            dy2=dy2, across=self._across(ctx), grad_means=grad_means,
            sums_given=ctx.grad_partial is not None)
        if self._across(ctx) is not None and ctx.first_sample != 0:
            # dgamma and dbeta are the whole batch's on every process, and the optimizer sums
            # the processes' gradients: the first share's process alone gives them, so that the
            # sum keeps their bits (x + 0 == x).
            self._param_grad(ctx, self.scale, 0, "dgamma")[...] = 0
            self._param_grad(ctx, self.center, int(self.scale), "dbeta")[...] = 0
        return result

    def forward_without_samples(self, ctx, training):
        """In place of forward, on a process with no sample of a batch that the others train
        on: a synchronized layer's part in the totals over the processes, which also move its
        moving statistics as the others' move."""
        ctx.batch_stats = bool(training and self.trainable)
        if self._across(ctx) is not None:
            self.forward_fused(np.zeros((0, self.moving_mean.shape[0]), self.moving_mean.dtype),
                               ctx, training)

    def backward_without_samples(self, ctx):
        """In place of backward, after forward_without_samples: its part in the totals."""
        if self._across(ctx) is not None:
            self.backward_fused(ctx.x, ctx, False)

    def _across(self, ctx):
        """The total over the processes of a data-parallel fit that a synchronized layer
        normalising with batch statistics takes its sums through (``CallContext.sum_across``),
        else None."""
        return ctx.sum_across if self.synchronized and ctx.batch_stats else None

    @staticmethod
    def _partial(ctx, x_shape):
        return ctx.scratch("partial", normalization.batchnorm_partial_shape(x_shape), np.float64)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": self.beta_initializer,
                "gamma_initializer": self.gamma_initializer,
                "moving_mean_initializer": self.moving_mean_initializer,
                "moving_variance_initializer": self.moving_variance_initializer,
                "synchronized": self.synchronized}
