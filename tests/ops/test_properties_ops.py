"""Property tests (hypothesis) of the kernels, called through the ops room (fastcnn._ops),
against the NumPy twins in ``fastcnn._reference``: random layer geometries and input shapes, plus invariants that
hold for any input (softmax rows sum to 1, cross-entropy gradient rows sum to 0, the max-pool
argmax points at its window's maximum, 1 and 2 threads agree bitwise)."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastcnn
from fastcnn import _reference as ref
from fastcnn._ops import activation as activation_ops
from fastcnn._ops import checks
from fastcnn._ops import conv as conv_ops
from fastcnn._ops import dense as dense_ops
from fastcnn._ops import loss as loss_ops
from fastcnn._ops import pool as pool_ops
from conftest import assert_close

# Moderate example counts keep the whole module well under a minute on two cores; no example
# database, so a run leaves no files behind.
settings.register_profile("fastcnn", max_examples=40, deadline=None, database=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = settings.get_profile("fastcnn")


@st.composite
def window_cases(draw, max_channels=20):
    """(x shape, window, strides, padding) whose output has at least one pixel; the channel
    count crosses the 16-wide SIMD blocks of the conv kernels."""
    window = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    lowest = window if padding == "valid" else (1, 1)
    shape = (draw(st.integers(1, 3)), draw(st.integers(lowest[0], 10)),
             draw(st.integers(lowest[1], 10)), draw(st.integers(1, max_channels)))
    return shape, window, strides, padding


def data(seed, shape, dtype=np.float32, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def with_threads(n, fn):
    fastcnn.set_num_threads(n)
    try:
        return fn()
    finally:
        fastcnn.set_num_threads(None)


def conv_all(x, kernel, bias, dy, strides, padding, relu):
    out = conv_ops.conv2d_forward(x, kernel, bias, strides, padding, relu=relu)
    dx = conv_ops.conv2d_backward_input(dy, kernel, x.shape, strides, padding)
    db = None if bias is None else np.empty_like(bias)
    dw = conv_ops.conv2d_backward_weight(x, dy, kernel.shape, strides, padding, db=db)
    return out, dx, dw, db


@PROFILE
@given(case=window_cases(), filters=st.integers(1, 20), use_bias=st.booleans(), relu=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_conv_matches_reference(case, filters, use_bias, relu, dtype, seed):
    shape, window, strides, padding = case
    x = data(seed, shape, dtype)
    kernel = data(seed + 1, (*window, shape[3], filters), dtype)
    bias = data(seed + 2, (filters,), dtype) if use_bias else None
    (oh, ow), (top, left) = checks.window_output_shape(shape[1:3], window, strides, padding)
    dy = data(seed + 3, (shape[0], oh, ow, filters), dtype)
    geometry = (*strides, top, left)

    out, dx, dw, db = conv_all(x, kernel, bias, dy, strides, padding, relu)
    want_out, want_dx, want_dw = np.empty_like(out), np.empty_like(x), np.empty_like(kernel)
    want_db = None if bias is None else np.empty_like(bias)
    ref.conv2d_forward(x, kernel, bias, want_out, None, *geometry, relu, 1, 1)
    ref.conv2d_backward_input(dy, kernel, want_dx, *geometry, 1)
    ref.conv2d_backward_weight(x, dy, want_dw, want_db, *geometry, 1)
    for got, want in ((out, want_out), (dx, want_dx), (dw, want_dw), (db, want_db)):
        if want is not None:
            assert_close(got, want, dtype)


@PROFILE
@given(case=window_cases(max_channels=6), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from([np.float32, np.float64]), ties=st.booleans())
def test_max_pooling_matches_reference_and_argmax_points_at_a_maximum(case, seed, dtype, ties):
    shape, window, strides, padding = case
    x = data(seed, shape, dtype)
    if ties:  # few distinct values: the first maximum of each window must win
        x = np.round(x).astype(dtype)
    out, argmax = pool_ops.maxpool2d_forward(x, window, strides, padding)
    want, want_argmax = np.empty_like(out), np.empty_like(argmax)
    (_, _), (top, left) = checks.window_output_shape(shape[1:3], window, strides, padding)
    ref.maxpool2d_forward(x, want, want_argmax, *window, *strides, top, left, 1)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(argmax, want_argmax)

    n = shape[0]
    flat = x.reshape(n, -1)
    np.testing.assert_array_equal(flat[np.arange(n)[:, None], argmax.reshape(n, -1)], out.reshape(n, -1))
    # the value at the argmax is the maximum of the cells its window covers inside the input
    h, w, c = shape[1:]
    rows, cols, chans = np.unravel_index(argmax, (h, w, c))
    oy = np.arange(out.shape[1])[None, :, None, None] * strides[0] - top
    ox = np.arange(out.shape[2])[None, None, :, None] * strides[1] - left
    assert ((rows >= oy) & (rows < oy + window[0]) & (cols >= ox) & (cols < ox + window[1])).all()
    assert (chans == np.arange(c)).all()

    dy = data(seed + 1, out.shape, dtype)
    want_dx = np.empty_like(x)
    ref.maxpool2d_backward(dy, argmax, want_dx, 1)
    assert_close(pool_ops.maxpool2d_backward(dy, argmax, x.shape), want_dx, dtype)


@PROFILE
@given(case=window_cases(max_channels=6), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_average_pooling_matches_reference(case, seed, dtype):
    shape, window, strides, padding = case
    x = data(seed, shape, dtype)
    out = pool_ops.avgpool2d_forward(x, window, strides, padding)
    dy = data(seed + 1, out.shape, dtype)
    dx = pool_ops.avgpool2d_backward(dy, x.shape, window, strides, padding)
    (_, _), (top, left) = checks.window_output_shape(shape[1:3], window, strides, padding)
    want_out, want_dx = np.empty_like(out), np.empty_like(x)
    ref.avgpool2d_forward(x, want_out, *window, *strides, top, left, 1)
    ref.avgpool2d_backward(dy, want_dx, *window, *strides, top, left, 1)
    assert_close(out, want_out, dtype)
    assert_close(dx, want_dx, dtype)


logit_batches = st.tuples(st.integers(1, 40), st.integers(1, 30), st.integers(0, 2**32 - 1),
                          st.sampled_from([1e-3, 1.0, 30.0, 1e4]))


@PROFILE
@given(batch=logit_batches, dtype=st.sampled_from([np.float32, np.float64]))
def test_softmax_rows_sum_to_one(batch, dtype):
    n, k, seed, scale = batch
    p = activation_ops.activation_forward("softmax", data(seed, (n, k), dtype, scale))
    assert (p >= 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5 if dtype == np.float32 else 1e-12)


@PROFILE
@given(batch=logit_batches, dtype=st.sampled_from([np.float32, np.float64]), sparse=st.booleans())
def test_cross_entropy_gradient_rows_sum_to_zero(batch, dtype, sparse):
    n, k, seed, scale = batch
    logits = data(seed, (n, k), dtype, scale)
    labels = np.random.default_rng(seed).integers(0, k, n)
    if sparse:
        loss, grad = loss_ops.sparse_softmax_cross_entropy(logits, labels, 1.0 / n)
    else:
        loss, grad = loss_ops.softmax_cross_entropy(logits, np.eye(k, dtype=dtype)[labels], 1.0 / n)
    assert np.isfinite(loss).all() and (loss >= 0).all()
    # each row is (softmax - onehot) / n: its entries sum to zero and stay within [-1/n, 1/n].
    # The kernel divides exp(z - max z) by its own sum, so the rounding of the exps cancels and
    # the logits' size does not enter. With u = eps / 2 and sum |grad row| <= 2 / n, a row sum
    # strays by at most: (k + 1) u / n normalising in double, u / n rounding the softmax to dtype,
    # 6 u / n forming and rounding (p - t) / n, and 2 (k - 1) u / n in this test's own sum:
    # (3k + 6) u / n in all, within 2 (k + 2) eps / n.
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=2 * (k + 2) * eps / n)
    assert (np.abs(grad) <= (1 + 8 * eps) / n).all()
    want_loss, want_grad = np.empty_like(loss), np.empty_like(grad)
    if sparse:
        ref.sparse_softmax_cross_entropy(logits, labels, want_grad, want_loss, 1.0 / n, 1)
    else:
        ref.softmax_cross_entropy(logits, np.eye(k)[labels], want_grad, want_loss, 1.0 / n, 1)
    assert_close(loss, want_loss, dtype)
    assert_close(grad, want_grad, dtype)


@PROFILE
@given(case=window_cases(), filters=st.integers(1, 20), seed=st.integers(0, 2**32 - 1),
       units=st.integers(1, 20))
def test_one_and_two_threads_agree_bitwise(case, filters, seed, units):
    shape, window, strides, padding = case
    x = data(seed, (shape[0] * 9, *shape[1:]))  # enough images for dW to span several chunks
    kernel = data(seed + 1, (*window, shape[3], filters))
    bias = data(seed + 2, (filters,))
    (oh, ow), _ = checks.window_output_shape(shape[1:3], window, strides, padding)
    dy = data(seed + 3, (x.shape[0], oh, ow, filters))
    flat = x.reshape(len(x), -1)
    dense_kernel = data(seed + 4, (flat.shape[1], units))
    dense_dy = data(seed + 5, (len(x), units))
    logits = data(seed + 6, (len(x), units), scale=10.0)

    def everything():
        pooled, argmax = pool_ops.maxpool2d_forward(x, window, strides, padding)
        return (*conv_all(x, kernel, bias, dy, strides, padding, relu=True), pooled, argmax,
                pool_ops.maxpool2d_backward(pooled, argmax, x.shape),
                pool_ops.avgpool2d_forward(x, window, strides, padding),
                dense_ops.dense_forward(flat, dense_kernel, bias=None),
                dense_ops.dense_backward_input(dense_dy, dense_kernel),
                dense_ops.dense_backward_weight(flat, dense_dy),
                *loss_ops.softmax_cross_entropy(logits, activation_ops.activation_forward("softmax", logits), 0.5),
                activation_ops.activation_forward("softmax", logits))

    for one, two in zip(with_threads(1, everything), with_threads(2, everything)):
        assert one.dtype == two.dtype
        np.testing.assert_array_equal(one, two)
