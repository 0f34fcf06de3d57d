"""The convolution kernels against their NumPy twins, across geometry, dtype, SIMD path and
thread count, plus float64 finite-difference gradient checks of the kernels themselves."""
import itertools
import zlib

import numpy as np
import pytest

from conftest import assert_close, conv_case, numeric_grad, run_conv_kernels
from fastcnn import _reference as ref
from fastcnn._ext import conv


KERNELS = [(1, 1), (3, 3), (5, 5), (2, 3)]
STRIDES = [(1, 1), (2, 2), (3, 3), (2, 1)]
# c_in 1 and 3 (first layers), c_out off the 16-lane grid and past one 64-channel block
CHANNELS = [(1, 5), (3, 16), (8, 37), (5, 70)]
GRID = [(k, s, p, CHANNELS[i % len(CHANNELS)])
        for i, (k, s, p) in enumerate(itertools.product(KERNELS, STRIDES, ["valid", "same"]))]


def grid_id(case):
    (kh, kw), (sh, sw), padding, (ci, co) = case
    return f"k{kh}x{kw}-s{sh}x{sw}-{padding}-c{ci}to{co}"


def check_grid_case(case, dtype):
    kernel, strides, padding, (ci, co) = case
    rng = np.random.default_rng(zlib.crc32(grid_id(case).encode()))
    x, wt, bias, dy, geo = conv_case(rng, dtype, 2, 9, 7, ci, co, kernel, strides, padding)
    got = run_conv_kernels(conv, x, wt, bias, dy, geo, True, 2)
    want = run_conv_kernels(ref, x, wt, bias, dy, geo, True, 2)
    for g, w in zip(got, want):
        assert_close(g, w, dtype)


@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_float32_matches_reference(case, simd_path):
    check_grid_case(case, np.float32)


@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_float64_matches_reference(case):
    check_grid_case(case, np.float64)


@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_float32_matches_the_float64_kernels(case, simd_path):
    """float32 and float64 are two compilations of the same templates, and the float64 one is
    checked by finite differences; this ties the float32 one to it: every SIMD path's float32
    kernels against the float64 kernels on the same inputs, at float32 tolerances."""
    kernel, strides, padding, (ci, co) = case
    rng = np.random.default_rng(zlib.crc32(grid_id(case).encode()))
    x, wt, bias, dy, geo = conv_case(rng, np.float32, 2, 9, 7, ci, co, kernel, strides, padding)
    got = run_conv_kernels(conv, x, wt, bias, dy, geo, True, 2)
    want = run_conv_kernels(conv, *(a.astype(np.float64) for a in (x, wt, bias, dy)), geo, True, 2)
    for g, w in zip(got, want):
        assert_close(g, w, np.float32)


@pytest.mark.parametrize("use_bias, relu", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_and_relu_options(use_bias, relu, dtype):
    rng = np.random.default_rng(1)
    x, wt, bias, dy, geo = conv_case(rng, dtype, 1, 6, 5, 4, 20, (3, 3), (1, 1), "same")
    bias = bias if use_bias else None
    got = run_conv_kernels(conv, x, wt, bias, dy, geo, relu, 1)
    want = run_conv_kernels(ref, x, wt, bias, dy, geo, relu, 1)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            assert_close(g, w, dtype)


def test_valid_windows_stop_short_of_the_input():
    # stride 2 over an even-sized input: the last row and column are never read
    rng = np.random.default_rng(2)
    x, wt, bias, dy, geo = conv_case(rng, np.float32, 2, 8, 10, 3, 7, (3, 3), (2, 2), "valid")
    assert dy.shape[1:3] == (3, 4)
    for g, w in zip(run_conv_kernels(conv, x, wt, bias, dy, geo, False, 2),
                    run_conv_kernels(ref, x, wt, bias, dy, geo, False, 2)):
        assert_close(g, w, np.float32)


def test_mnist_conv2_shape(simd_path):
    rng = np.random.default_rng(3)
    x, wt, bias, dy, geo = conv_case(rng, np.float32, 3, 13, 13, 32, 64, (3, 3), (1, 1), "valid")
    for g, w in zip(run_conv_kernels(conv, x, wt, bias, dy, geo, True, 2),
                    run_conv_kernels(ref, x, wt, bias, dy, geo, True, 2)):
        assert_close(g, w, np.float32)


@pytest.mark.parametrize("case", [((3, 3), (1, 1), "valid", (32, 64)), ((3, 3), (2, 2), "same", (5, 70)),
                                  ((2, 3), (1, 2), "same", (24, 20))], ids=str)
@pytest.mark.parametrize("relu", [True, False])
def test_forward_in_k_slices_matches_reference(case, relu, conv_panel_bytes, simd_path):
    # bias only in the first slice and ReLU only after the last, whatever the slicing
    kernel, strides, padding, (ci, co) = case
    rng = np.random.default_rng(ci * co)
    x, wt, bias, dy, geo = conv_case(rng, np.float32, 2, 9, 8, ci, co, kernel, strides, padding)
    got, want = np.empty(dy.shape, np.float32), np.empty(dy.shape, np.float32)
    conv.conv2d_forward(x, wt, bias, got, None, *geo, relu, 1, 2)
    ref.conv2d_forward(x, wt, bias, want, None, *geo, relu, 1, 2)
    assert_close(got, want, np.float32)


# Stride 1 with "same" padding and kw*c_in >= 16: dX runs as the forward convolution of padded
# dY by the kernel turned 180 degrees with its channels swapped. Odd and even kernels (an even
# one pads less before than after), one and more 16-channel blocks of c_in, c_out off the grid.
AS_FORWARD = [((1, 1), (16, 5)), ((3, 3), (8, 37)), ((5, 5), (6, 70)), ((2, 3), (70, 16)),
              ((4, 4), (20, 3)), ((3, 3), (16, 16))]


@pytest.mark.parametrize("kernel, channels", AS_FORWARD, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_padding_dx_as_a_forward_convolution_matches_reference(kernel, channels, dtype,
                                                                    simd_path):
    (ci, co) = channels
    rng = np.random.default_rng(ci * co)
    x, wt, bias, dy, geo = conv_case(rng, dtype, 3, 9, 7, ci, co, kernel, (1, 1), "same")
    want = np.empty_like(x)
    ref.conv2d_backward_input(dy, wt, want, *geo, 1)
    first = None
    for n_threads in (1, 2, 3):
        got = np.full_like(x, np.nan)
        conv.conv2d_backward_input(dy, wt, got, *geo, n_threads)
        assert_close(got, want, dtype)
        if first is None:
            first = got
        np.testing.assert_array_equal(got, first)


@pytest.mark.parametrize("band_bytes", [1, 5000])
@pytest.mark.parametrize("kernel, strides, channels", [((3, 3), (1, 1), (16, 16)),
                                                       ((2, 3), (2, 1), (5, 37)),
                                                       ((1, 1), (1, 1), (70, 20))], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_gradient_in_row_bands_is_bitwise_unbanded(band_bytes, kernel, strides, channels,
                                                          dtype, simd_path):
    """dW over bands of output rows (one row each, or a few) sums every element in the order of
    one sweep over the whole image: the same bits, db included."""
    ci, co = channels
    rng = np.random.default_rng(ci + co)
    x, wt, bias, dy, geo = conv_case(rng, dtype, 3, 11, 9, ci, co, kernel, strides, "same")
    got = []
    for bound in (band_bytes, 1 << 30):
        previous = conv._set_band_bytes(bound)
        try:
            dw, db = np.empty_like(wt), np.empty_like(bias)
            conv.conv2d_backward_weight(x, dy, dw, db, *geo, 2)
        finally:
            conv._set_band_bytes(previous)
        got.append((dw, db))
    np.testing.assert_array_equal(got[0][0], got[1][0])
    np.testing.assert_array_equal(got[0][1], got[1][1])
    want = np.empty_like(wt)
    ref.conv2d_backward_weight(x, dy, want, None, *geo, 1)
    assert_close(got[0][0], want, dtype)


# (kernel, c_in, c_out): dW tiles of one vector of channels take 24 taps (the first 23 and db)
# then the last ones 8 at a time on AVX-512; tap counts below, at and past those heights.
DW_TAPS = [((1, 1), 5, 16), ((1, 1), 23, 10), ((1, 1), 24, 16), ((3, 3), 3, 16),
           ((3, 3), 5, 12), ((3, 3), 16, 16), ((2, 3), 9, 7)]


@pytest.mark.parametrize("kernel, ci, co", DW_TAPS, ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
def test_weight_gradient_of_narrow_layers_matches_reference(kernel, ci, co, with_bias, simd_path):
    rng = np.random.default_rng(ci * co)
    x, wt, bias, dy, geo = conv_case(rng, np.float32, 3, 7, 6, ci, co, kernel, (1, 1), "same")
    db = np.full(co, np.nan, np.float32) if with_bias else None
    results = []
    for n_threads in (1, 2, 3):
        dw = np.full(wt.shape, np.nan, np.float32)
        conv.conv2d_backward_weight(x, dy, dw, db, *geo, n_threads)
        results.append((dw, None if db is None else db.copy()))
    want_dw, want_db = np.empty(wt.shape, np.float32), np.empty(co, np.float32)
    ref.conv2d_backward_weight(x, dy, want_dw, want_db if with_bias else None, *geo, 1)
    assert_close(results[0][0], want_dw, np.float32)
    if with_bias:
        assert_close(results[0][1], want_db, np.float32)
    for dw, db_got in results[1:]:
        np.testing.assert_array_equal(dw, results[0][0])
        np.testing.assert_array_equal(db_got, results[0][1])


def test_read_only_inputs():
    rng = np.random.default_rng(4)
    x, wt, bias, dy, geo = conv_case(rng, np.float32, 2, 5, 5, 3, 8, (3, 3), (1, 1), "same")
    for a in (x, wt, bias, dy):
        a.setflags(write=False)
    for g, w in zip(run_conv_kernels(conv, x, wt, bias, dy, geo, True, 2),
                    run_conv_kernels(ref, x, wt, bias, dy, geo, True, 2)):
        assert_close(g, w, np.float32)


def test_weight_gradients_are_overwritten():
    rng = np.random.default_rng(5)
    x, wt, bias, dy, geo = conv_case(rng, np.float32, 2, 5, 5, 3, 8, (3, 3), (1, 1), "same")
    dw, db = np.full_like(wt, np.nan), np.full_like(bias, np.nan)
    conv.conv2d_backward_weight(x, dy, dw, db, *geo, 2)
    assert np.isfinite(dw).all() and np.isfinite(db).all()


def test_inconsistent_shapes_raise():
    x = np.zeros((2, 5, 5, 3), np.float32)
    with pytest.raises(ValueError, match="inconsistent convolution"):
        conv.conv2d_forward(x, np.zeros((3, 3, 4, 8), np.float32), None,
                            np.zeros((2, 3, 3, 8), np.float32), None, 1, 1, 0, 0, False, 1,
                            1)


@pytest.mark.parametrize("case", [
    ((3, 3), (1, 1), "valid", (32, 64)),
    ((3, 3), (1, 1), "same", (3, 37)),
    ((2, 3), (2, 1), "same", (5, 70)),
    ((3, 3), (1, 1), "same", (16, 37)),
], ids=grid_id)
def test_thread_count_does_not_change_results(case, simd_path):
    # 19 images make eight dW chunks (6, 4, 3, 2, 1, 1, 1, 1), so partial sums really are split
    # across threads
    kernel, strides, padding, (ci, co) = case
    rng = np.random.default_rng(6)
    x, wt, bias, dy, geo = conv_case(rng, np.float32, 19, 9, 8, ci, co, kernel, strides, padding)
    one = run_conv_kernels(conv, x, wt, bias, dy, geo, True, 1)
    for n_threads in (2, 3):
        for a, b in zip(one, run_conv_kernels(conv, x, wt, bias, dy, geo, True, n_threads)):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("kernel, strides, padding, ci", [
    ((3, 2), (2, 1), "same", 3),
    ((3, 3), (2, 2), "valid", 3),
    ((3, 3), (1, 1), "same", 6),  # dX as a forward convolution
    ((2, 4), (1, 1), "same", 5),
])
def test_gradients_by_central_differences(kernel, strides, padding, ci):
    rng = np.random.default_rng(7)
    x, wt, bias, g_out, geo = conv_case(rng, np.float64, 2, 5, 6, ci, 4, kernel, strides, padding)

    def loss():
        out = np.empty(g_out.shape)
        conv.conv2d_forward(x, wt, bias, out, None, *geo, False, 1, 1)
        return float((out * g_out).sum())

    dx, dw, db = np.empty_like(x), np.empty_like(wt), np.empty_like(bias)
    conv.conv2d_backward_input(g_out, wt, dx, *geo, 1)
    conv.conv2d_backward_weight(x, g_out, dw, db, *geo, 1)
    for analytic, param in ((dx, x), (dw, wt), (db, bias)):
        np.testing.assert_allclose(analytic, numeric_grad(loss, param), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("relu", [0, 1, 2], ids=["linear", "relu", "relu6"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_forward_residual_is_the_add_before_the_activation_bitwise(relu, dtype, n_threads,
                                                                    simd_path):
    """With a residual, out = act((conv + bias) + residual): the conv rounded to out's type,
    then one addition, bit for bit the composition, at any thread count."""
    rng = np.random.default_rng(3)
    x, wt, bias, dy, geo = conv_case(rng, dtype, 5, 7, 6, 3, 20, (3, 3), (1, 1), "same")
    residual = (rng.standard_normal(dy.shape) * 3).astype(dtype)
    plain, got = np.empty_like(dy), np.empty_like(dy)
    conv.conv2d_forward(x, wt, bias, plain, None, *geo, 0, 1, n_threads)
    conv.conv2d_forward(x, wt, bias, got, None, *geo, relu, 1, n_threads, residual)
    want = plain + residual
    if relu:
        want = np.maximum(want, 0)
    if relu == 2:
        want = np.minimum(want, 6)
    np.testing.assert_array_equal(got, want)
    assert (relu != 2) or (got == 6).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("ci", [3, 8])
def test_backward_input_applies_the_input_relus_backward_bitwise(dtype, n_threads, ci, simd_path):
    """With relu_output (x, a relu's output), dX is the plain dX zeroed where x <= 0."""
    rng = np.random.default_rng(4)
    x, wt, _, dy, geo = conv_case(rng, dtype, 5, 7, 6, ci, 20, (3, 3), (1, 1), "same")
    relu_output = np.maximum(x, 0)
    want, got = np.empty_like(x), np.empty_like(x)
    conv.conv2d_backward_input(dy, wt, want, *geo, n_threads)
    conv.conv2d_backward_input(dy, wt, got, *geo, n_threads, relu_output)
    want[relu_output <= 0] = 0
    np.testing.assert_array_equal(got, want)


def test_residual_and_relu_output_are_checked():
    from fastcnn._ops import conv as conv_ops
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    y = conv_ops.conv2d_forward(x, k, None, (1, 1), "same")
    with pytest.raises(ValueError, match="residual"):
        conv_ops.conv2d_forward(x, k, None, (1, 1), "same", residual=y[:, :5])
    with pytest.raises(ValueError, match="residual"):
        conv_ops.conv2d_forward(x, k, None, (1, 1), "same", residual=y, dilation_rate=(2, 2))
    with pytest.raises(ValueError, match="residual"):
        conv_ops.conv2d_forward(x, k, None, (1, 1), "same", residual=y,
                                moments=np.empty((1, 2, 4)))
    with pytest.raises(ValueError, match="relu_output"):
        conv_ops.conv2d_backward_input(y, k, x.shape, (1, 1), "same", relu_output=x[:1])
    with pytest.raises(ValueError, match="relu_output"):
        conv_ops.conv2d_backward_input(y, k, x.shape, (1, 1), "same", relu_output=x, groups=1,
                                       dilation_rate=(2, 2))
    with pytest.raises(ValueError, match="residual"):
        conv.conv2d_forward(x, k, None, np.empty_like(y), None, 1, 1, 1, 1, 0, 1, 1, y[:1])
    with pytest.raises(ValueError, match="bn_grad_means"):  # a statistic missing
        conv.conv2d_backward(x, y, k, np.empty_like(k), None, None, 1, 1, 1, 1, False, 1, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("input_relu", [False, True])
@pytest.mark.parametrize("strides, ci", [((2, 1), 5), ((1, 1), 8)])
def test_backward_in_one_pass_is_bitwise_the_two_kernels(dtype, n_threads, input_relu, strides,
                                                         ci, simd_path):
    rng = np.random.default_rng(6)
    x, wt, bias, dy, geo = conv_case(rng, dtype, 11, 7, 6, ci, 20, (3, 3), strides, "same")
    if input_relu:
        x = np.maximum(x, 0)
    dw, db, dx = np.empty_like(wt), np.empty_like(bias), np.empty_like(x)
    conv.conv2d_backward(x, dy, wt, dw, db, dx, *geo, input_relu, n_threads)
    want_dw, want_db, want_dx = np.empty_like(wt), np.empty_like(bias), np.empty_like(x)
    conv.conv2d_backward_weight(x, dy, want_dw, want_db, *geo, n_threads)
    conv.conv2d_backward_input(dy, wt, want_dx, *geo, n_threads, x if input_relu else None)
    for got, want in ((dw, want_dw), (db, want_db), (dx, want_dx)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("relu_max", [None, np.inf, 6.0], ids=["linear", "relu", "relu6"])
@pytest.mark.parametrize("ci", [5, 6])  # dX of 3*5 columns by its narrow tiles, of 3*6 as forward
def test_backward_makes_the_batchnorm_dx_bitwise(dtype, n_threads, relu_max, ci, simd_path):
    """With a training batch normalisation of the conv's output, the one-pass backward takes
    that normalisation's dy and gives the gradients that its dx (batchnorm_backward's) gives."""
    from fastcnn._ops import normalization
    rng = np.random.default_rng(7)
    x, wt, bias, _, geo = conv_case(rng, dtype, 11, 7, 6, ci, 20, (3, 3), (1, 1), "same")
    z = np.empty((11, 7, 6, 20), dtype)
    conv.conv2d_forward(x, wt, bias, z, None, *geo, 0, 1, n_threads)
    gamma = (rng.random(20) + 0.5).astype(dtype)
    beta = (rng.standard_normal(20) * 0.5).astype(dtype)
    mean, inv_std = np.empty(20, dtype), np.empty(20, dtype)
    relu = relu_max is not None
    cap = relu_max if relu_max != np.inf else None
    normalization.batchnorm_forward_training(
        z, gamma, beta, np.zeros(20, dtype), np.ones(20, dtype), 0.9, 1e-3, relu=relu,
        relu_max=cap, mean=mean, inv_std=inv_std, n_threads=n_threads)
    dy = rng.standard_normal(z.shape).astype(dtype)
    grads = lambda: (np.empty(20, dtype), np.empty(20, dtype))
    dgamma, dbeta = grads()
    dz, _ = normalization.batchnorm_backward(z, dy, gamma, beta, mean, inv_std, True, dgamma,
                                             dbeta, relu=relu, relu_max=cap,
                                             n_threads=n_threads)
    want_dw, want_db, want_dx = np.empty_like(wt), np.empty_like(bias), np.empty_like(x)
    conv.conv2d_backward(x, dz, wt, want_dw, want_db, want_dx, *geo, False, n_threads)
    means = np.empty((2, 20))
    dgamma2, dbeta2 = grads()
    assert normalization.batchnorm_backward(
        z, dy, gamma, beta, mean, inv_std, True, dgamma2, dbeta2, relu=relu, relu_max=cap,
        need_dx=False, grad_means=means, n_threads=n_threads)[0] is None
    np.testing.assert_array_equal(dgamma2, dgamma)
    np.testing.assert_array_equal(dbeta2, dbeta)
    recipe = normalization.BatchNormInputGradient(z, mean, inv_std, gamma, beta, means, relu,
                                                  cap)
    from fastcnn._ops import conv as conv_ops
    dw, dx = conv_ops.conv2d_backward(x, dy, wt, (1, 1), "same", db=(db := np.empty_like(bias)),
                                      batchnorm=recipe, n_threads=n_threads)
    for got, want in ((dw, want_dw), (db, want_db), (dx, want_dx)):
        np.testing.assert_array_equal(got, want)
    dw_only, none = conv_ops.conv2d_backward(x, dy, wt, (1, 1), "same", need_dx=False,
                                             batchnorm=recipe, n_threads=n_threads)
    assert none is None
    np.testing.assert_array_equal(dw_only, want_dw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("relu_max", [None, np.inf, 6.0], ids=["linear", "relu", "relu6"])
@pytest.mark.parametrize("parts", ["residual", "two-parts", "both"])
def test_backward_makes_the_batchnorm_dx_from_the_normalised_gradient(dtype, n_threads, relu_max,
                                                                     parts, simd_path):
    """Where the normalisation adds a residual before its relu, or its output's gradient comes
    in two parts, its sums pass writes g, the normalised value's gradient (as the residual's
    gradient), and the conv's backward makes dx from g: the bits of batchnorm_backward's dx."""
    from fastcnn._ops import conv as conv_ops
    from fastcnn._ops import normalization
    rng = np.random.default_rng(8)
    x, wt, bias, _, geo = conv_case(rng, dtype, 9, 7, 6, 6, 20, (3, 3), (1, 1), "same")
    z = conv_ops.conv2d_forward(x, wt, bias, (1, 1), "same", n_threads=n_threads)
    gamma = (rng.random(20) + 0.5).astype(dtype)
    beta = (rng.standard_normal(20) * 0.5).astype(dtype)
    residual = rng.standard_normal(z.shape).astype(dtype) if parts != "two-parts" else None
    dy2 = rng.standard_normal(z.shape).astype(dtype) if parts != "residual" else None
    relu, cap = relu_max is not None, relu_max if relu_max != np.inf else None
    _, mean, inv_std = normalization.batchnorm_forward_training(
        z, gamma, beta, np.zeros(20, dtype), np.ones(20, dtype), 0.9, 1e-3, residual=residual,
        relu=relu, relu_max=cap, n_threads=n_threads)
    dy = rng.standard_normal(z.shape).astype(dtype)
    sums = lambda: (np.empty(20, dtype), np.empty(20, dtype))
    dz, _ = normalization.batchnorm_backward(z, dy, gamma, beta, mean, inv_std, True, *sums(),
                                             residual=residual, relu=relu, relu_max=cap, dy2=dy2,
                                             n_threads=n_threads)
    want_dw, want_dx = conv_ops.conv2d_backward(x, dz, wt, (1, 1), "same", n_threads=n_threads)
    means = np.empty((2, 20))
    _, g = normalization.batchnorm_backward(z, dy, gamma, beta, mean, inv_std, True, *sums(),
                                            residual=residual, relu=relu, relu_max=cap, dy2=dy2,
                                            need_dx=False, need_dres=True, grad_means=means,
                                            n_threads=n_threads)
    recipe = normalization.BatchNormInputGradient(z, mean, inv_std, gamma, beta, means, relu,
                                                  cap, g_given=True)
    dw, dx = conv_ops.conv2d_backward(x, g, wt, (1, 1), "same", batchnorm=recipe,
                                      n_threads=n_threads)
    np.testing.assert_array_equal(dw, want_dw)
    np.testing.assert_array_equal(dx, want_dx)
    ref_dw, ref_dx = np.empty_like(wt), np.empty_like(x)
    ref.conv2d_backward(x, g, wt, ref_dw, None, ref_dx, *geo, False, 1,
                        *recipe.kernel_args(dtype, z.shape))
    assert_close(dw, ref_dw, dtype)
    assert_close(dx, ref_dx, dtype)


# Input normalisation: (kernel, strides, padding) with a canvas (padded, cut by the stride) and
# without one (1x1 valid, read in place when not normalised).
INPUT_BN_CASES = [((3, 3), (1, 1), "same"), ((3, 3), (2, 2), "same"), ((1, 1), (1, 1), "valid"),
                  ((3, 2), (2, 1), "valid")]


def input_bn_case(rng, dtype, ci, relu_max, n_threads):
    """x with a mean and spread of its own per channel, its training batch normalisation's
    InputBatchNorm (relu capped at relu_max; None: linear) and that normalisation's output."""
    from fastcnn._ops import normalization
    x = (rng.standard_normal((7, 9, 8, ci)) * rng.uniform(0.5, 2, ci)
         + rng.standard_normal(ci)).astype(dtype)
    gamma = (rng.random(ci) + 0.5).astype(dtype)
    beta = (rng.standard_normal(ci) * 0.5).astype(dtype)
    relu, cap = relu_max is not None, relu_max if relu_max != np.inf else None
    y, mean, inv_std = normalization.batchnorm_forward_training(
        x, gamma, beta, np.zeros(ci, dtype), np.ones(ci, dtype), 0.9, 1e-3, relu=relu,
        relu_max=cap, n_threads=n_threads)
    return x, normalization.InputBatchNorm(mean, inv_std, gamma, beta, relu, cap), y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("relu_max", [None, np.inf, 6.0], ids=["linear", "relu", "relu6"])
@pytest.mark.parametrize("case", INPUT_BN_CASES, ids=lambda c: f"k{c[0]}-s{c[1]}-{c[2]}")
def test_input_normalised_as_loaded_is_bitwise_the_normalised_input(dtype, n_threads, relu_max,
                                                                     case, simd_path):
    """A conv that normalises its input as it loads it gives, forward (with the moments of its
    own output) and backward, the bits of the conv of the normalisation's output."""
    from fastcnn._ops import conv as conv_ops
    kernel, strides, padding = case
    rng = np.random.default_rng(11)
    x, bn, y = input_bn_case(rng, dtype, 6, relu_max, n_threads)
    wt = rng.standard_normal((*kernel, 6, 20)).astype(dtype)
    bias = rng.standard_normal(20).astype(dtype)
    shape = conv_ops.conv2d_forward(y, wt, bias, strides, padding, n_threads=n_threads).shape
    moments = lambda: np.empty(conv_ops.batchnorm_partial_shape(shape))
    want_m, got_m = moments(), moments()
    want = conv_ops.conv2d_forward(y, wt, bias, strides, padding, relu=True, moments=want_m,
                                   n_threads=n_threads)
    got = conv_ops.conv2d_forward(x, wt, bias, strides, padding, relu=True, moments=got_m,
                                  input_batchnorm=bn, n_threads=n_threads)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_m, want_m)
    dy = rng.standard_normal(shape).astype(dtype)
    grads = lambda: (np.empty_like(wt), np.empty_like(bias))
    (want_dw, want_db), (got_dw, got_db) = grads(), grads()
    want_dw, want_dx = conv_ops.conv2d_backward(y, dy, wt, strides, padding, dw=want_dw,
                                                db=want_db, n_threads=n_threads)
    got_dw, got_dx = conv_ops.conv2d_backward(x, dy, wt, strides, padding, dw=got_dw, db=got_db,
                                              input_batchnorm=bn, n_threads=n_threads)
    for g, w in ((got_dw, want_dw), (got_db, want_db), (got_dx, want_dx)):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("relu_max", [None, np.inf, 6.0], ids=["linear", "relu", "relu6"])
@pytest.mark.parametrize("hw", [(16, 16), (16, 8), (8, 8)], ids=["half-image-chunks",
                                                                 "image-chunks",
                                                                 "two-image-chunks"])
def test_backward_sums_the_input_normalisations_gradient_bitwise(dtype, n_threads, relu_max,
                                                                 hw, simd_path):
    """The conv's backward sums the gradient sums of the normalisation of its input as it
    writes dX, that normalisation's dy: batchnorm_backward given them (sums_given) gives the
    bits of its own sums pass, on chunks of half an image, one and two images (and a short
    last chunk of 11 images)."""
    from fastcnn._ops import conv as conv_ops
    from fastcnn._ops import normalization
    rng = np.random.default_rng(15)
    x = (rng.standard_normal((11, *hw, 64)) + 0.3).astype(dtype)
    gamma = (rng.random(64) + 0.5).astype(dtype)
    beta = (rng.standard_normal(64) * 0.5).astype(dtype)
    relu, cap = relu_max is not None, relu_max if relu_max != np.inf else None
    _, mean, inv_std = normalization.batchnorm_forward_training(
        x, gamma, beta, np.zeros(64, dtype), np.ones(64, dtype), 0.9, 1e-3, relu=relu,
        relu_max=cap, n_threads=n_threads)
    chunk = normalization.batchnorm_chunk_rows(x.shape)
    assert chunk == 128 and conv_ops.batchnorm_sums_fit(x.shape)  # 8192 values
    partial = np.full(normalization.batchnorm_partial_shape(x.shape), np.nan)
    bn = normalization.InputBatchNorm(mean, inv_std, gamma, beta, relu, cap, partial)
    wt = rng.standard_normal((3, 3, 64, 16)).astype(dtype)
    dy = rng.standard_normal((11, *hw, 16)).astype(dtype)
    _, dx = conv_ops.conv2d_backward(x, dy, wt, (1, 1), "same", input_batchnorm=bn,
                                     n_threads=n_threads)
    runs = []
    for sums_given in (True, False):
        grads = np.empty(64, dtype), np.empty(64, dtype)
        means = np.empty((2, 64))
        normalization.batchnorm_backward(
            x, dx, gamma, beta, mean, inv_std, True, *grads, relu=relu, relu_max=cap,
            need_dx=False, partial=partial.copy() if sums_given else None, grad_means=means,
            sums_given=sums_given, n_threads=n_threads)
        runs.append((*grads, means))
    for got, want in zip(*runs):
        np.testing.assert_array_equal(got, want)
    want_partial = ref.chunk_grad_sums(x.reshape(-1, 64), dx.reshape(-1, 64), gamma, beta, mean,
                                       inv_std, relu, cap or np.inf, chunk)
    np.testing.assert_allclose(partial, want_partial, rtol=1e-9 if dtype == np.float64 else 1e-4,
                               atol=1e-6 * np.abs(want_partial).max())


def test_backward_refuses_gradient_sums_that_do_not_fit_its_chunks():
    from fastcnn._ops import conv as conv_ops
    from fastcnn._ops import normalization
    rng = np.random.default_rng(16)
    x, bn, _ = input_bn_case(rng, np.float32, 2, None, 1)  # 9x8x2: one chunk of 7 images
    assert not conv_ops.batchnorm_sums_fit(x.shape)
    wt = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    dy = np.ones((7, 9, 8, 4), np.float32)
    partial = np.empty(normalization.batchnorm_partial_shape(x.shape))
    with pytest.raises(ValueError, match="in_chunk_rows"):
        conv_ops.conv2d_backward(x, dy, wt, (1, 1), "same", input_batchnorm=bn._replace(
            grad_partial=partial))
    with pytest.raises(ValueError, match="in_partial with an input normalisation and dx"):
        conv.conv2d_backward(x, dy, wt, np.empty_like(wt), None, None, 1, 1, 1, 1, False, 1,
                             **bn.kernel_args(np.float32, x.shape), in_partial__k2c=partial,
                             in_chunk_rows=72)
    with pytest.raises(ValueError, match="sums_given"):
        normalization.batchnorm_backward(x, dy[..., :2], bn.gamma, bn.beta, bn.mean, bn.inv_std,
                                         True, np.empty(2, np.float32), np.empty(2, np.float32),
                                         need_dres=True, partial=partial, sums_given=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", INPUT_BN_CASES, ids=lambda c: f"k{c[0]}-s{c[1]}-{c[2]}")
def test_input_normalisation_matches_the_reference(dtype, case):
    from fastcnn._ops import conv as conv_ops
    kernel, strides, padding = case
    rng = np.random.default_rng(12)
    x, bn, _ = input_bn_case(rng, dtype, 5, 6.0, 2)
    wt = rng.standard_normal((*kernel, 5, 9)).astype(dtype)
    _, top, left = conv_ops._conv_geometry(x.shape, wt.shape, strides, padding)
    args = bn.kernel_args(dtype, x.shape)
    results = []
    for module in (conv, ref):
        out = np.empty(conv_ops.conv2d_forward(x, wt, None, strides, padding).shape, dtype)
        module.conv2d_forward(x, wt, None, out, None, *strides, top, left, 0, 1, 2, None, **args)
        dy = np.random.default_rng(13).standard_normal(out.shape).astype(dtype)
        dw, dx = np.empty_like(wt), np.empty_like(x)
        module.conv2d_backward(x, dy, wt, dw, None, dx, *strides, top, left, False, 2, **args)
        results.append((out, dw, dx))
    for got, want in zip(*results):
        assert_close(got, want, dtype)


def test_input_normalisation_refusals():
    from fastcnn._ops import conv as conv_ops
    from fastcnn._ops import normalization
    rng = np.random.default_rng(14)
    x, bn, _ = input_bn_case(rng, np.float32, 4, None, 1)
    wt = rng.standard_normal((3, 3, 4, 8)).astype(np.float32)
    with pytest.raises(TypeError, match="input_batchnorm"):
        conv_ops.conv2d_forward(x, wt, None, (1, 1), "same", input_batchnorm=(1, 2))
    with pytest.raises(ValueError, match="dilated or grouped"):
        conv_ops.conv2d_forward(x, wt, None, (1, 1), "same", dilation_rate=(2, 2),
                                input_batchnorm=bn)
    with pytest.raises(ValueError, match="mean"):
        conv_ops.conv2d_forward(x, wt, None, (1, 1), "same",
                                input_batchnorm=bn._replace(mean=bn.mean[:3]))
    dy = np.ones((7, 9, 8, 8), np.float32)
    with pytest.raises(ValueError, match="input_relu"):
        conv_ops.conv2d_backward(x, dy, wt, (1, 1), "same", input_relu=True, input_batchnorm=bn)
    with pytest.raises(ValueError, match="all None or all"):
        conv.conv2d_forward(x, wt, None, np.empty((7, 9, 8, 8), np.float32), None, 1, 1, 1, 1, 0,
                            1, 1, None, bn.mean, None, bn.gamma, bn.beta)
    assert isinstance(bn, normalization.InputBatchNorm)
