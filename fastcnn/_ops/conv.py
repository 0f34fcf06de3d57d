"""Convolution, and the fused convolution + max-pooling step: checked calls of ``_ext.conv``."""
import math
import numbers

import numpy as np

from .._ext import conv as _conv
from .checks import (_check_pair, argmax_array, as_kernel_array, bias_array, check_apart,
                     check_array, check_index_range, check_weight_shape, epilogue_activation,
                     flag, memoized, out_buffer, positive_int, shape_arg, weights_array,
                     window_output_shape)
from .dropout import dropout_args
from .normalization import (BatchNormInputGradient, InputBatchNorm, batchnorm_chunk_rows,
                            batchnorm_partial_shape)
from .threads import effective_n_threads


PLAIN = ((1, 1), 1)  # (dilation_rate, groups) of the convolutions the plain kernels run


def _span(kernel_size, dilation):
    """The extent of a dilated window."""
    return (kernel_size - 1) * dilation + 1


def _check_variant(dilation, groups, strides):
    _check_pair(strides, "strides")
    _check_pair(dilation, "dilation_rate")
    if not (isinstance(groups, numbers.Integral) and not isinstance(groups, bool) and groups >= 1):
        raise ValueError(f"Expected groups to be a positive int, received groups={groups!r}")
    if max(strides) > 1 and max(dilation) > 1:
        raise ValueError(f"Expected strides of 1 with dilation_rate > 1, received "
                         f"strides={tuple(strides)} and dilation_rate={tuple(dilation)}")


@memoized
def _conv_geometry(x_shape, kernel_shape, strides, padding, dilation=(1, 1), groups=1,
                   x_name="x"):
    """(output shape, pad_top, pad_left), once every per-image size the kernels index with 32-bit
    ints fits: the input, the output, and the padded input they copy windows from. The kernel
    holds c_in / groups input channels; "causal" pads only before (top and left) by the window's
    extent less one."""
    _check_variant(dilation, groups, strides)
    if groups == 1 and x_shape[3] != kernel_shape[2]:
        raise ValueError(f"Expected {x_name} with {kernel_shape[2]} channels to match the kernel "
                         f"of shape {tuple(kernel_shape)}, received shape {tuple(x_shape)}")
    if x_shape[3] != kernel_shape[2] * groups or kernel_shape[3] % groups:
        raise ValueError(f"Expected {x_name} with {kernel_shape[2] * groups} channels and a "
                         f"kernel whose {kernel_shape[3]} filters split into {groups} groups, "
                         f"received {x_name} of shape {tuple(x_shape)} and kernel of shape "
                         f"{tuple(kernel_shape)}")
    spans = tuple(_span(k, d) for k, d in zip(kernel_shape[:2], dilation))
    if padding == "causal":
        (oh, ow), (top, left) = ((-(-n // s) for n, s in zip(x_shape[1:3], strides)),
                                 (k - 1 for k in spans))
    else:
        (oh, ow), (top, left) = window_output_shape(x_shape[1:3], spans, strides, padding,
                                                    "kernel_size")
    shape = (x_shape[0], oh, ow, kernel_shape[3])
    padded = (x_shape[0], (oh - 1) * strides[0] + spans[0], (ow - 1) * strides[1] + spans[1],
              x_shape[3])
    check_index_range(x_shape, x_name)
    check_index_range(shape, "conv output")
    check_index_range(padded, f"padded {x_name}")
    return shape, top, left


def conv2d_forward(x, kernel, bias, strides, padding, relu=False, out=None, n_threads=None,
                   dilation_rate=(1, 1), groups=1, moments=None, relu6=False, residual=None,
                   input_batchnorm=None):
    """NHWC x, HWIO kernel -> NHWC out, with bias and relu (or with ``relu6``, relu capped at 6)
    fused when given; with ``residual`` (plain convolutions only, out's shape), the relu is of
    conv + bias + residual, as an Add before the activation gives it. With groups, the kernel
    holds c_in / groups input channels, and group q maps input channels
    [q*c_in/groups, (q+1)*c_in/groups) to filters [q*f/groups, (q+1)*f/groups).

    ``moments`` (plain convolutions only): a float64 array of
    ``normalization.batchnorm_partial_shape(out.shape)``, which receives the partial sums of
    the batch normalisation of out (each chunk's mean and squared deviations), as
    ``normalization.batchnorm_forward_training`` would compute them, for its
    ``moments_given``.

    ``input_batchnorm`` (plain convolutions only; a normalization.InputBatchNorm): x is the
    input of a training batch normalisation whose output the conv convolves; the kernel
    normalises each image as it loads it, bit for bit that normalisation's output."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4)
    shape, top, left = _conv_geometry(check_array(x, "x", 4).shape, kernel.shape, strides, padding,
                                      dilation_rate, groups)
    x = as_kernel_array(x, "x", 4, kernel.dtype)
    bias = bias_array(bias, kernel.shape[3], kernel.dtype)
    relu = epilogue_activation(relu, relu6)
    out = out_buffer(out, shape, kernel.dtype, "out")
    plain = (tuple(dilation_rate), groups) == PLAIN
    if moments is not None:
        if not plain:
            raise ValueError(f"Expected moments=None for a dilated or grouped convolution, "
                             f"received dilation_rate={tuple(dilation_rate)}, groups={groups}")
        moments = out_buffer(moments, batchnorm_partial_shape(shape), np.float64, "moments")
    if residual is not None:
        if not plain or moments is not None:
            raise ValueError("Expected a residual for a plain convolution without moments, "
                             f"received dilation_rate={tuple(dilation_rate)}, groups={groups} "
                             f"and moments={'None' if moments is None else 'given'}")
        residual = as_kernel_array(residual, "residual", dtype=kernel.dtype, shape=shape)
    normalised = _input_batchnorm_args(input_batchnorm, plain, kernel.dtype, x.shape)
    check_apart({"out": out, "moments": moments},
                {"x": x, "kernel": kernel, "bias": bias, "residual": residual,
                 **_named_input_batchnorm(normalised)})
    if plain:
        _conv.conv2d_forward(x, kernel, bias, out, moments, *strides, top, left, relu,
                             batchnorm_chunk_rows(shape) if moments is not None else 1,
                             n_threads, residual, **normalised)
    else:
        if relu6:
            raise ValueError("Expected relu6=False with a dilation_rate or groups: the general "
                             "convolution kernels fuse a plain relu only")
        _conv.conv2d_general_forward(x, kernel, bias, out, *strides, top, left, *dilation_rate,
                                     groups, relu, n_threads)
    return out


def batchnorm_sums_fit(x_shape):
    """Whether conv2d_backward can sum the gradient sums of the training batch normalisation
    whose output, of ``x_shape``, is its input (InputBatchNorm's ``grad_partial``): where that
    normalisation's chunks of rows (batchnorm_chunk_rows) fit in the kernel's chunks of
    SAMPLES_PER_PARTIAL images."""
    pixels = math.prod(int(d) for d in x_shape[1:-1])
    return pixels > 0 and (_conv.SAMPLES_PER_PARTIAL * pixels) % batchnorm_chunk_rows(x_shape) == 0


def _input_batchnorm_args(input_batchnorm, plain, dtype, x_shape, backward=False):
    """The kernels' ``in_*`` keyword arguments of an InputBatchNorm (or None) for an input of
    ``x_shape`` (InputBatchNorm.kernel_args)."""
    if input_batchnorm is None:
        return {}
    if not isinstance(input_batchnorm, InputBatchNorm):
        raise TypeError(f"Expected input_batchnorm to be None or an InputBatchNorm, received "
                        f"{type(input_batchnorm).__name__}")
    if not plain:
        raise ValueError("Expected input_batchnorm=None for a dilated or grouped convolution")
    return input_batchnorm.kernel_args(dtype, x_shape, backward)


def _named_input_batchnorm(args):
    """The arrays the kernels read of _input_batchnorm_args, by name, for check_apart."""
    return {f"input_batchnorm {name[3:]}": args.get(name)
            for name in ("in_mean", "in_inv_std", "in_gamma", "in_beta")}


def conv2d_backward_input(dy, kernel, input_shape, strides, padding, out=None, n_threads=None,
                          dilation_rate=(1, 1), groups=1, relu_output=None):
    """dX of the convolution; with ``relu_output`` (plain convolutions only, input_shape), x is
    a relu's output and dX also gets that relu's backward (0 where relu_output <= 0)."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4)
    input_shape = shape_arg(input_shape, "input_shape", 4)
    shape, top, left = _conv_geometry(input_shape, kernel.shape, strides, padding, dilation_rate,
                                      groups, "input_shape")
    dy = as_kernel_array(dy, "dy", dtype=kernel.dtype, shape=shape)
    dx = out_buffer(out, input_shape, kernel.dtype, "out")
    plain = (tuple(dilation_rate), groups) == PLAIN
    if relu_output is not None:
        if not plain:
            raise ValueError(f"Expected relu_output=None for a dilated or grouped convolution, "
                             f"received dilation_rate={tuple(dilation_rate)}, groups={groups}")
        relu_output = as_kernel_array(relu_output, "relu_output", dtype=kernel.dtype,
                                      shape=tuple(input_shape))
    check_apart({"out": dx}, {"dy": dy, "kernel": kernel, "relu_output": relu_output})
    if plain:
        _conv.conv2d_backward_input(dy, kernel, dx, *strides, top, left, n_threads, relu_output)
    else:
        _conv.conv2d_general_backward_input(dy, kernel, dx, *strides, top, left, *dilation_rate,
                                            groups, n_threads)
    return dx


def conv2d_backward_weight(x, dy, kernel_shape, strides, padding, dw=None, db=None,
                           n_threads=None, dilation_rate=(1, 1), groups=1):
    n_threads = effective_n_threads(n_threads)
    kernel_shape = shape_arg(kernel_shape, "kernel_shape", 4)
    check_weight_shape(kernel_shape, "kernel_shape")
    shape, top, left = _conv_geometry(check_array(x, "x", 4).shape, kernel_shape, strides, padding,
                                      dilation_rate, groups)
    x = as_kernel_array(x, "x", 4)
    dy = as_kernel_array(dy, "dy", dtype=x.dtype, shape=shape)
    dw = out_buffer(dw, kernel_shape, x.dtype, "dw")
    db = None if db is None else out_buffer(db, kernel_shape[3:], x.dtype, "db")
    check_apart({"dw": dw, "db": db}, {"x": x, "dy": dy})
    if (tuple(dilation_rate), groups) == PLAIN:
        _conv.conv2d_backward_weight(x, dy, dw, db, *strides, top, left, n_threads)
    else:
        _conv.conv2d_general_backward_weight(x, dy, dw, db, *strides, top, left, *dilation_rate,
                                             groups, n_threads)
    return dw


def conv2d_backward(x, dy, kernel, strides, padding, dw=None, db=None, dx=None, need_dx=True,
                    input_relu=False, batchnorm=None, input_batchnorm=None, n_threads=None):
    """(dw, dx) of a plain convolution in one pass over dy: conv2d_backward_weight (db too,
    unless None) and conv2d_backward_input (dx None unless need_dx), bit for bit.
    ``input_relu``: x is a relu's output, and dx also gets that relu's backward (0 where
    x <= 0). ``batchnorm`` (a normalization.BatchNormInputGradient): a training batch
    normalisation read the conv's output, and dy is the gradient of that normalisation's
    output, whose input gradient the kernel makes from it image by image, bit for bit
    normalization.batchnorm_backward's dx. ``input_batchnorm``: x is the input of a training
    batch normalisation whose output the conv read (conv2d_forward's), and dx the gradient of
    that output; with its ``grad_partial``, the kernel also sums that normalisation's gradient
    sums of each chunk of dx as it writes it."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4)
    shape, top, left = _conv_geometry(check_array(x, "x", 4).shape, kernel.shape, strides, padding,
                                      (1, 1), 1)
    x = as_kernel_array(x, "x", 4, kernel.dtype)
    dy = as_kernel_array(dy, "dy", dtype=kernel.dtype, shape=shape)
    dw = out_buffer(dw, kernel.shape, kernel.dtype, "dw")
    db = None if db is None else out_buffer(db, kernel.shape[3:], kernel.dtype, "db")
    dx = out_buffer(dx, x.shape, kernel.dtype, "dx") if need_dx else None
    if batchnorm is not None and not isinstance(batchnorm, BatchNormInputGradient):
        raise TypeError(f"Expected batchnorm to be None or a BatchNormInputGradient, received "
                        f"{type(batchnorm).__name__}")
    bn = () if batchnorm is None else batchnorm.kernel_args(kernel.dtype, shape)
    normalised = _input_batchnorm_args(input_batchnorm, True, kernel.dtype, x.shape, True)
    check_apart({"dw": dw, "db": db, "dx": dx, "grad_partial": normalised.get("in_partial__k2c")},
                {"x": x, "dy": dy, "kernel": kernel, **{f"batchnorm {name}": a for name, a in zip(
                    ("x", "mean", "inv_std", "gamma", "beta", "grad_means"), bn)},
                 **_named_input_batchnorm(normalised)})
    _conv.conv2d_backward(x, dy, kernel, dw, db, dx, *strides, top, left,
                          flag(input_relu, "input_relu"), n_threads, *bn, **normalised)
    return dw, dx


# ---- transposed convolutions ---------------------------------------------------------------

def transpose_output_size(size, kernel_size, stride, padding, output_padding, dilation):
    """Keras's output size of a transposed convolution on one axis, and the padding before of
    the convolution from that output back to the input (TensorFlow's rule for "same")."""
    kernel_size, stride, dilation = (positive_int(v, name) for v, name in (
        (kernel_size, "kernel_size"), (stride, "stride"), (dilation, "dilation")))
    size = shape_arg((size,), "size", 1)[0]
    if output_padding is not None:
        output_padding = shape_arg((output_padding,), "output_padding", 1)[0]
    span = _span(kernel_size, dilation)
    if padding == "valid":
        out = (size - 1) * stride + (max(span, stride) if output_padding is None
                                     else span + output_padding)
        return out, 0
    if output_padding is None:
        out = size * stride
    else:
        out = (size - 1) * stride + span % 2 + output_padding
    return out, max((size - 1) * stride + span - out, 0) // 2


@memoized
def _transpose_geometry(x_shape, kernel_shape, strides, padding, output_padding, dilation,
                        x_name="x"):
    """(output shape, pad_top, pad_left) of a transposed convolution with kernel
    (kh, kw, filters, c_in); the pads are those of the convolution from the output to x."""
    _check_pair(kernel_shape[:2], "kernel_size")
    _check_variant(dilation, 1, strides)
    if padding not in ("valid", "same"):
        raise ValueError(f'Expected padding "valid" or "same", received padding={padding!r}')
    if output_padding is not None and not (
            isinstance(output_padding, tuple) and len(output_padding) == 2
            and all(isinstance(p, numbers.Integral) and not isinstance(p, bool) and 0 <= p < s
                    for p, s in zip(output_padding, strides))):
        raise ValueError(f"Expected output_padding None or a pair of ints each in [0, its "
                         f"stride), received output_padding={output_padding!r} with strides="
                         f"{tuple(strides)}")
    if x_shape[3] != kernel_shape[3]:
        raise ValueError(f"Expected {x_name} with {kernel_shape[3]} channels to match the kernel "
                         f"of shape {tuple(kernel_shape)}, received shape {tuple(x_shape)}")
    pads = output_padding or (None, None)
    (oh, top), (ow, left) = (transpose_output_size(n, k, s, padding, p, d) for n, k, s, p, d in
                             zip(x_shape[1:3], kernel_shape[:2], strides, pads, dilation))
    if oh < 1 or ow < 1:
        raise ValueError(f"Expected a transposed convolution output of at least one pixel, "
                         f"received {(oh, ow)} for {x_name} of shape {tuple(x_shape)}")
    shape = (x_shape[0], oh, ow, kernel_shape[2])
    check_index_range(x_shape, x_name)
    check_index_range(shape, "conv transpose output")
    extent = tuple((n - 1) * s + _span(k, d) for n, k, s, d in
                   zip(x_shape[1:3], kernel_shape[:2], strides, dilation))
    check_index_range((x_shape[0], *extent, kernel_shape[2]), "conv transpose window extent")
    return shape, top, left


def conv2d_transpose_forward(x, kernel, bias, strides, padding, output_padding=None,
                             dilation_rate=(1, 1), relu=False, out=None, n_threads=None):
    """The transposed convolution of NHWC x with kernel (kh, kw, filters, c_in), Keras's layout,
    and bias and relu fused when given: the dX pass of the convolution from the output to x."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4)
    shape, top, left = _transpose_geometry(check_array(x, "x", 4).shape, kernel.shape, strides,
                                           padding, output_padding, dilation_rate)
    x = as_kernel_array(x, "x", 4, kernel.dtype)
    bias = bias_array(bias, kernel.shape[2], kernel.dtype)
    relu = flag(relu, "relu")
    out = out_buffer(out, shape, kernel.dtype, "out")
    check_apart({"out": out}, {"x": x, "kernel": kernel, "bias": bias})
    _conv.conv2d_transpose_forward(x, kernel, bias, out, *strides, top, left, *dilation_rate,
                                   relu, n_threads)
    return out


def conv2d_transpose_backward_input(dy, kernel, input_shape, strides, padding,
                                    output_padding=None, dilation_rate=(1, 1), out=None,
                                    n_threads=None):
    """dX of conv2d_transpose_forward (without its relu): the forward pass of the convolution
    from the output to x, on dy."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4)
    input_shape = shape_arg(input_shape, "input_shape", 4)
    shape, top, left = _transpose_geometry(input_shape, kernel.shape, strides, padding,
                                           output_padding, dilation_rate, "input_shape")
    dy = as_kernel_array(dy, "dy", dtype=kernel.dtype, shape=shape)
    dx = out_buffer(out, input_shape, kernel.dtype, "out")
    check_apart({"out": dx}, {"dy": dy, "kernel": kernel})
    if tuple(dilation_rate) == (1, 1):
        _conv.conv2d_forward(dy, kernel, None, dx, None, *strides, top, left, False, 1,
                             n_threads)
    else:
        _conv.conv2d_general_forward(dy, kernel, None, dx, *strides, top, left, *dilation_rate,
                                     1, False, n_threads)
    return dx


def conv2d_transpose_backward_weight(x, dy, kernel_shape, strides, padding, output_padding=None,
                                     dilation_rate=(1, 1), dw=None, db=None, n_threads=None):
    """dW (and db when given) of conv2d_transpose_forward (without its relu)."""
    n_threads = effective_n_threads(n_threads)
    kernel_shape = shape_arg(kernel_shape, "kernel_shape", 4)
    check_weight_shape(kernel_shape, "kernel_shape")
    shape, top, left = _transpose_geometry(check_array(x, "x", 4).shape, kernel_shape, strides,
                                           padding, output_padding, dilation_rate)
    x = as_kernel_array(x, "x", 4)
    dy = as_kernel_array(dy, "dy", dtype=x.dtype, shape=shape)
    dw = out_buffer(dw, kernel_shape, x.dtype, "dw")
    db = None if db is None else out_buffer(db, kernel_shape[2:3], x.dtype, "db")
    check_apart({"dw": dw, "db": db}, {"x": x, "dy": dy})
    _conv.conv2d_transpose_backward_weight(x, dy, dw, db, *strides, top, left, *dilation_rate,
                                           n_threads)
    return dw


@memoized
def _conv_pool_geometry(x_shape, kernel_shape, strides, padding, pool_size, pool_strides,
                        x_name="x"):
    """(pooled shape, pad_top, pad_left) of a convolution followed by "valid" max pooling."""
    shape, top, left = _conv_geometry(x_shape, kernel_shape, strides, padding, (1, 1), 1, x_name)
    (ph, pw), _ = window_output_shape(shape[1:3], pool_size, pool_strides, "valid", "pool_size")
    return (shape[0], ph, pw, shape[3]), top, left


def conv2d_maxpool_forward(x, kernel, bias, strides, padding, pool_size, pool_strides, relu=False,
                           out=None, argmax=None, dropout=None, n_threads=None):
    """maxpool(relu?(conv(x, kernel) + bias)) with "valid" pooling, in one float32 pass that
    computes only the conv outputs some window reads. Returns (pooled, argmax); argmax indexes
    that part of the conv output, of shape (n, (ph-1)*stride+pool, (pw-1)*stride+pool, c_out).
    ``dropout=(seed, rate, first)`` also applies dropout_forward(pooled, seed, rate, first=first)
    in the same pass."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4).astype(np.float32, copy=False)
    shape, top, left = _conv_pool_geometry(check_array(x, "x", 4).shape, kernel.shape, strides,
                                           padding, pool_size, pool_strides)
    x = as_kernel_array(x, "x", 4, np.float32)
    bias = bias_array(bias, kernel.shape[3], np.float32)
    relu = flag(relu, "relu")
    out = out_buffer(out, shape, np.float32, "out")
    argmax = out_buffer(argmax, shape, np.int32, "argmax")
    check_apart({"out": out, "argmax": argmax}, {"x": x, "kernel": kernel, "bias": bias})
    _conv.conv2d_maxpool_forward(x, kernel, bias, out, argmax, strides[0], strides[1], top, left,
                                 relu, *pool_size, *pool_strides, n_threads,
                                 *dropout_args(dropout))
    return out, argmax


def conv2d_maxpool_backward(x, dy, pooled, argmax, kernel, strides, padding, pool_size,
                            pool_strides, relu=False, dw=None, db=None, dx=None, need_dx=True,
                            input_relu=False, dropout=None, n_threads=None):
    """The gradients of conv2d_maxpool_forward from dy, its output's gradient: returns (dw, dx),
    dx None unless need_dx, and fills db when given. ``pooled`` (its output) is needed with relu.
    ``input_relu``: x is a relu's output, and dx also gets that relu's backward (zero where x <= 0).
    ``dropout``: the forward's."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4).astype(np.float32, copy=False)
    shape, top, left = _conv_pool_geometry(check_array(x, "x", 4).shape, kernel.shape, strides,
                                           padding, pool_size, pool_strides)
    x = as_kernel_array(x, "x", 4, np.float32)
    dy = as_kernel_array(dy, "dy", dtype=np.float32, shape=shape)
    argmax = argmax_array(argmax, shape)
    relu, input_relu = flag(relu, "relu"), flag(input_relu, "input_relu")
    if relu:
        pooled = as_kernel_array(pooled, "pooled", dtype=np.float32, shape=shape)
    else:
        pooled = None
    dw = out_buffer(dw, kernel.shape, np.float32, "dw")
    db = None if db is None else out_buffer(db, kernel.shape[3:], np.float32, "db")
    dx = out_buffer(dx, x.shape, np.float32, "dx") if need_dx else None
    check_apart({"dw": dw, "db": db, "dx": dx},
                {"x": x, "dy": dy, "pooled": pooled, "argmax": argmax, "kernel": kernel})
    skipped = _conv.conv2d_maxpool_backward(x, dy, pooled, argmax, kernel, dw, db, dx,
                                            strides[0], strides[1], top, left, relu, *pool_size,
                                            *pool_strides, input_relu, n_threads,
                                            *dropout_args(dropout))
    if skipped:
        raise ValueError(f"Expected every argmax entry to point into its own pooling window, as "
                         f"conv2d_maxpool_forward's do; {skipped} did not")
    return dw, dx
