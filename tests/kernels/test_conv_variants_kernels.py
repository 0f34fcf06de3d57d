"""Dilated, grouped and transposed convolutions (fastcnn._ops.conv over the conv2d_general_* and
conv2d_transpose_* kernels): torch as oracle forward and backward, finite differences in
float64, Keras's output sizes over a grid, and results that do not depend on the thread count."""
import itertools

import numpy as np
import pytest

from fastcnn._ops import conv
from conftest import numeric_grad

torch = pytest.importorskip("torch")
F = torch.nn.functional


def nchw(a):
    return torch.tensor(np.ascontiguousarray(a.transpose(0, 3, 1, 2)), dtype=torch.float64)


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


def same_pad(size, span, stride):
    """TensorFlow's "same": the output has ceil(size / stride) pixels, and the padding they need
    beyond the input, split with the smaller half before."""
    out = -(-size // stride)
    return max((out - 1) * stride + span - size, 0) // 2


# (n, h, w, c_in, filters), kernel, strides, padding, dilation, groups
GENERAL = [
    ((2, 9, 8, 4, 6), (3, 3), (1, 1), "same", (2, 2), 2),
    ((2, 7, 9, 6, 9), (2, 3), (2, 1), "valid", (1, 1), 3),
    ((1, 8, 11, 3, 5), (3, 2), (1, 1), "valid", (3, 2), 1),
    ((2, 6, 6, 32, 32), (3, 3), (1, 1), "same", (1, 1), 4),
    ((2, 10, 10, 8, 8), (3, 3), (1, 1), "same", (4, 4), 8),
    ((1, 5, 7, 4, 6), (1, 3), (1, 1), "causal", (1, 2), 2),
]


def torch_conv(x, kernel, bias, strides, padding, dilation, groups):
    """torch's conv2d on NHWC x with an HWIO kernel; "same" and "causal" pad x first."""
    spans = [(k - 1) * d + 1 for k, d in zip(kernel.shape[:2], dilation)]
    t = nchw(x)
    if padding == "same":
        pads = [(same_pad(n, s, st), max((-(-n // st) - 1) * st + s - n, 0))
                for n, s, st in zip(x.shape[1:3], spans, strides)]
        t = F.pad(t, (pads[1][0], pads[1][1] - pads[1][0], pads[0][0], pads[0][1] - pads[0][0]))
    elif padding == "causal":  # zeros before, the window's extent less one
        t = F.pad(t, (spans[1] - 1, 0, spans[0] - 1, 0))
    w = torch.tensor(kernel.transpose(3, 2, 0, 1), dtype=torch.float64)
    b = None if bias is None else torch.tensor(bias, dtype=torch.float64)
    return t, w, b, dict(stride=strides, dilation=dilation, groups=groups)


@pytest.mark.parametrize("case", GENERAL, ids=str)
def test_dilated_and_grouped_convolution_match_torch(rng, case):
    (n, h, w, ci, co), ks, strides, padding, dilation, groups = case
    x = rng.standard_normal((n, h, w, ci))
    kernel = rng.standard_normal((*ks, ci // groups, co))
    bias = rng.standard_normal(co)
    got = conv.conv2d_forward(x, kernel, bias, strides, padding, dilation_rate=dilation,
                              groups=groups)
    t, wt, bt, args = torch_conv(x, kernel, bias, strides, padding, dilation, groups)
    t.requires_grad_(), wt.requires_grad_(), bt.requires_grad_()
    y = F.conv2d(t, wt, bt, **args)
    np.testing.assert_allclose(got, nhwc(y), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(
        conv.conv2d_forward(x, kernel, bias, strides, padding, relu=True, dilation_rate=dilation,
                            groups=groups), np.maximum(got, 0))

    dy = rng.standard_normal(got.shape)
    (y * nchw(dy)).sum().backward()
    # the torch input was padded first: its gradient is cut back to x
    top, left = (t.shape[2] - h, t.shape[3] - w) if padding == "causal" else (
        [same_pad(size, (k - 1) * d + 1, s) if padding == "same" else 0
         for size, k, d, s in zip((h, w), ks, dilation, strides)])
    want_dx = nhwc(t.grad)[:, top:top + h, left:left + w]
    db = np.empty(co)
    dw = conv.conv2d_backward_weight(x, dy, kernel.shape, strides, padding, db=db,
                                     dilation_rate=dilation, groups=groups)
    dx = conv.conv2d_backward_input(dy, kernel, x.shape, strides, padding,
                                    dilation_rate=dilation, groups=groups)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, wt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-10)


# (n, h, w, c_in, filters), kernel, strides, padding, output_padding, dilation
TRANSPOSED = [
    ((2, 16, 16, 64, 32), (2, 2), (2, 2), "same", None, (1, 1)),  # the U-Net's
    ((2, 5, 4, 3, 5), (3, 3), (2, 2), "same", None, (1, 1)),
    ((2, 4, 6, 3, 5), (3, 3), (2, 2), "same", (1, 0), (1, 1)),
    ((1, 4, 5, 2, 3), (3, 2), (3, 2), "valid", (2, 1), (1, 1)),
    ((2, 5, 5, 8, 4), (2, 3), (1, 1), "valid", None, (1, 1)),
    ((1, 5, 4, 3, 2), (3, 2), (1, 1), "same", None, (2, 3)),
    ((2, 3, 3, 4, 6), (1, 1), (3, 2), "valid", None, (1, 1)),
]


def keras_transpose_size(size, kernel, stride, padding, output_padding, dilation):
    """Keras's documented output size of a transposed convolution on one axis, with the kernel
    widened by its dilation: without output_padding, size*stride for "same" and size*stride plus
    whatever the window sticks out past a stride for "valid"; with it, (size - 1)*stride + the
    window - twice the padding ("valid": none, "same": half the window) + output_padding."""
    span = (kernel - 1) * dilation + 1
    if output_padding is None:
        return size * stride + (max(span - stride, 0) if padding == "valid" else 0)
    pad = 0 if padding == "valid" else span // 2
    return (size - 1) * stride + span - 2 * pad + output_padding


def torch_transpose(x, kernel, bias, strides, padding, output_padding, dilation):
    """The oracle: torch's unpadded transposed convolution, every input pixel's whole window
    ((n - 1)*stride + the dilated window long), cut to Keras's output size: "valid" keeps its
    start, "same" cuts the smaller half of the excess from the start (TensorFlow's, JAX's and
    torch's Keras backends agree), and zeros fill where the cut reaches past its end."""
    t = nchw(x).requires_grad_()
    w = torch.tensor(kernel.transpose(3, 2, 0, 1), dtype=torch.float64, requires_grad=True)
    b = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    full = F.conv_transpose2d(t, w, None, stride=strides, dilation=dilation)
    pads = output_padding or (None, None)
    sizes = [keras_transpose_size(n, k, s, padding, p, d) for n, k, s, p, d in
             zip(x.shape[1:3], kernel.shape[:2], strides, pads, dilation)]
    tops = [0 if padding == "valid" else max(n - o, 0) // 2
            for n, o in zip(full.shape[2:], sizes)]
    full = F.pad(full, (0, max(0, tops[1] + sizes[1] - full.shape[3]), 0,
                        max(0, tops[0] + sizes[0] - full.shape[2])))
    y = full[:, :, tops[0]:tops[0] + sizes[0], tops[1]:tops[1] + sizes[1]] + b[:, None, None]
    return t, w, b, y


@pytest.mark.parametrize("case", TRANSPOSED, ids=str)
def test_transposed_convolution_matches_torch(rng, case):
    (n, h, w, ci, f), ks, strides, padding, output_padding, dilation = case
    x = rng.standard_normal((n, h, w, ci))
    kernel = rng.standard_normal((*ks, f, ci))  # Keras's layout: (kh, kw, filters, channels)
    bias = rng.standard_normal(f)
    args = (strides, padding, output_padding, dilation)
    got = conv.conv2d_transpose_forward(x, kernel, bias, *args)
    t, wt, bt, y = torch_transpose(x, kernel, bias, *args)
    np.testing.assert_allclose(got, nhwc(y), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(conv.conv2d_transpose_forward(x, kernel, bias, *args, relu=True),
                                  np.maximum(got, 0))
    dy = rng.standard_normal(got.shape)
    (y * nchw(dy)).sum().backward()
    db = np.empty(f)
    dw = conv.conv2d_transpose_backward_weight(x, dy, kernel.shape, *args, db=db)
    dx = conv.conv2d_transpose_backward_input(dy, kernel, x.shape, *args)
    np.testing.assert_allclose(dx, nhwc(t.grad), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, wt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_transposed_convolution_matches_torchs_own_padding(rng):
    """Where torch's symmetric padding expresses Keras's "same", torch's padded transposed
    convolution agrees: the U-Net's 2x2 stride 2 (no padding), 4x4 stride 2 and 3x3 stride 1
    (padding 1)."""
    for ks, stride, torch_pad in (((2, 2), 2, 0), ((4, 4), 2, 1), ((3, 3), 1, 1)):
        x = rng.standard_normal((2, 5, 6, 4))
        kernel = rng.standard_normal((*ks, 3, 4))
        got = conv.conv2d_transpose_forward(x, kernel, None, (stride, stride), "same")
        want = F.conv_transpose2d(nchw(x), torch.tensor(kernel.transpose(3, 2, 0, 1)),
                                  stride=stride, padding=torch_pad)
        np.testing.assert_allclose(got, nhwc(want), rtol=1e-10, atol=1e-10)


GRID = list(itertools.product((1, 2, 3), (1, 2, 3), ("valid", "same"), (None, 0, 1, 2), (1, 2)))


@pytest.mark.parametrize("kernel,stride,padding,output_padding,dilation", GRID)
def test_output_sizes_follow_keras(rng, kernel, stride, padding, output_padding, dilation):
    """Over kernel x stride x padding x output_padding x dilation: the transposed convolution
    has Keras's output size and torch's values; the convolution with the same arguments maps it
    back to the input's size (Keras: "valid" keeps floor((n - span) / stride) + 1 pixels, "same"
    ceil(n / stride)). Keras refuses output_padding >= stride and a stride with a dilation."""
    x = rng.standard_normal((1, 4, 5, 2))
    kernel_hwfc = rng.standard_normal((kernel, kernel, 3, 2))
    op = None if output_padding is None else (output_padding, output_padding)
    args = ((stride, stride), padding, op, (dilation, dilation))
    if (output_padding is not None and output_padding >= stride) or (stride > 1 < dilation):
        with pytest.raises(ValueError, match="output_padding|strides"):
            conv.conv2d_transpose_forward(x, kernel_hwfc, None, *args)
        return
    span = (kernel - 1) * dilation + 1
    want = [keras_transpose_size(n, kernel, stride, padding, output_padding, dilation)
            for n in (4, 5)]
    if min(want) < 1:
        with pytest.raises(ValueError, match="at least one pixel"):
            conv.conv2d_transpose_forward(x, kernel_hwfc, None, *args)
        return
    y = conv.conv2d_transpose_forward(x, kernel_hwfc, None, *args)
    assert y.shape == (1, *want, 3)
    np.testing.assert_allclose(y, nhwc(torch_transpose(x, kernel_hwfc, np.zeros(3), *args)[3]),
                               rtol=1e-10, atol=1e-10)
    back = conv.conv2d_forward(y, kernel_hwfc, None, (stride, stride), padding,
                               dilation_rate=(dilation, dilation))
    keras_conv = [(n - span) // stride + 1 if padding == "valid" else -(-n // stride)
                  for n in want]
    assert back.shape == (1, *keras_conv, 2)


def scalar_of(f, upstream):
    return lambda: float(np.sum(f() * upstream))


@pytest.mark.parametrize("case", [GENERAL[0], GENERAL[1], GENERAL[5]], ids=str)
def test_general_convolution_gradients_by_finite_differences(rng, case):
    (n, h, w, ci, co), ks, strides, padding, dilation, groups = case
    x = rng.standard_normal((1, h, w, ci))
    kernel = rng.standard_normal((*ks, ci // groups, co))
    bias = rng.standard_normal(co)
    forward = lambda: conv.conv2d_forward(x, kernel, bias, strides, padding,  # noqa: E731
                                          dilation_rate=dilation, groups=groups)
    dy = rng.standard_normal(forward().shape)
    db = np.empty(co)
    dw = conv.conv2d_backward_weight(x, dy, kernel.shape, strides, padding, db=db,
                                     dilation_rate=dilation, groups=groups)
    dx = conv.conv2d_backward_input(dy, kernel, x.shape, strides, padding,
                                    dilation_rate=dilation, groups=groups)
    f = scalar_of(forward, dy)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, numeric_grad(f, kernel), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, numeric_grad(f, bias), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", [TRANSPOSED[2], TRANSPOSED[3], TRANSPOSED[5]], ids=str)
def test_transposed_convolution_gradients_by_finite_differences(rng, case):
    (n, h, w, ci, f_), ks, strides, padding, output_padding, dilation = case
    x = rng.standard_normal((1, h, w, ci))
    kernel = rng.standard_normal((*ks, f_, ci))
    bias = rng.standard_normal(f_)
    args = (strides, padding, output_padding, dilation)
    forward = lambda: conv.conv2d_transpose_forward(x, kernel, bias, *args)  # noqa: E731
    dy = rng.standard_normal(forward().shape)
    db = np.empty(f_)
    dw = conv.conv2d_transpose_backward_weight(x, dy, kernel.shape, *args, db=db)
    dx = conv.conv2d_transpose_backward_input(dy, kernel, x.shape, *args)
    f = scalar_of(forward, dy)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, numeric_grad(f, kernel), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, numeric_grad(f, bias), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_the_thread_count(rng, dtype):
    """Every pass, bitwise, at 1, 2 and 3 threads, on batches that split unevenly."""
    x = rng.standard_normal((11, 9, 8, 8)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 4, 6)).astype(dtype)
    tkernel = rng.standard_normal((2, 3, 5, 8)).astype(dtype)
    bias = rng.standard_normal(6).astype(dtype)
    tbias = rng.standard_normal(5).astype(dtype)
    general = dict(strides=(1, 1), padding="same", dilation_rate=(2, 1), groups=2)
    transposed = dict(strides=(2, 2), padding="same", output_padding=(1, 0))
    dilated_t = dict(strides=(1, 1), padding="valid", dilation_rate=(2, 2))

    def run(n):
        y = conv.conv2d_forward(x, kernel, bias, relu=True, n_threads=n, **general)
        dy = (y * 0.5 + 1).astype(dtype)
        db = np.empty(6, dtype)
        results = [y, db, conv.conv2d_backward_weight(x, dy, kernel.shape, db=db, n_threads=n,
                                                      **general),
                   conv.conv2d_backward_input(dy, kernel, x.shape, n_threads=n, **general)]
        for t in (transposed, dilated_t):
            z = conv.conv2d_transpose_forward(x, tkernel, tbias, n_threads=n, **t)
            dz = (z * 0.5 - 1).astype(dtype)
            tdb = np.empty(5, dtype)
            results += [z, tdb, conv.conv2d_transpose_backward_weight(
                x, dz, tkernel.shape, db=tdb, n_threads=n, **t),
                conv.conv2d_transpose_backward_input(dz, tkernel, x.shape, n_threads=n, **t)]
        return results

    one = run(1)
    for n in (2, 3):
        for a, b in zip(one, run(n)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call,fragment", [
    (lambda x, k: conv.conv2d_forward(x, k, None, (1, 1), "valid", groups=3), "groups"),
    (lambda x, k: conv.conv2d_forward(x, k, None, (1, 1), "valid", groups=0), "groups"),
    (lambda x, k: conv.conv2d_forward(x, k, None, (2, 2), "valid", dilation_rate=(2, 2)),
     "strides of 1"),
    (lambda x, k: conv.conv2d_forward(x, k, None, (1, 1), "valid", dilation_rate=(0, 1)),
     "dilation_rate"),
    (lambda x, k: conv.conv2d_forward(x, k, None, (1, 1), "valid", dilation_rate=(5, 1)),
     "kernel_size"),
    (lambda x, k: conv.conv2d_transpose_forward(x, k, None, (2, 2), "full"), "padding"),
    (lambda x, k: conv.conv2d_transpose_forward(x, k, None, (2, 2), "same", (2, 0)),
     "output_padding"),
    (lambda x, k: conv.conv2d_transpose_forward(x[..., :3], k, None, (2, 2), "same"),
     "channels"),
])
def test_bad_arguments_are_refused_before_any_kernel_runs(call, fragment):
    x = np.zeros((1, 6, 6, 4), np.float32)
    k = np.zeros((3, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=fragment):
        call(x, k)
