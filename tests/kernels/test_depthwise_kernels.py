"""The depthwise convolution kernels: PyTorch as the oracle (a convolution with groups = channels)
forward and backward on every SIMD path, finite differences in float64, bitwise independence of
the thread count, and Keras's output-shape formula over a grid."""
import itertools
import zlib

import numpy as np
import pytest

from conftest import assert_close, numeric_grad
from fastcnn._ops import depthwise as ops

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (n, h, w, c, depth_multiplier), kernel, strides, dilation, padding, bias, relu
CASES = [
    ((2, 7, 6, 5, 1), (3, 3), (1, 1), (1, 1), "same", True, False),
    ((2, 9, 8, 70, 1), (3, 3), (2, 2), (1, 1), "same", True, True),  # past a 64-channel block
    ((2, 9, 8, 70, 1), (3, 3), (2, 2), (1, 1), "valid", False, False),
    ((1, 9, 8, 3, 3), (3, 2), (1, 1), (2, 3), "same", True, False),  # depth multiplier, dilation
    ((3, 10, 9, 16, 2), (5, 5), (1, 1), (1, 1), "same", False, True),
    ((2, 12, 11, 37, 1), (7, 7), (1, 1), (1, 1), "same", True, False),  # 49 taps: more than a batch
    ((2, 12, 12, 33, 1), (3, 3), (1, 1), (3, 3), "same", False, False),
    ((2, 8, 9, 144, 1), (3, 3), (2, 1), (1, 1), "same", True, True),
    ((1, 5, 5, 1, 4), (1, 1), (3, 3), (1, 1), "valid", True, False),
    ((2, 6, 7, 9, 1), (4, 2), (3, 2), (1, 1), "same", True, False),  # padding after > before
]


def case_id(case):
    (n, h, w, c, dm), (kh, kw), (sh, sw), (rh, rw), padding, bias, relu = case
    return (f"c{c}x{dm}-k{kh}x{kw}-s{sh}x{sw}-d{rh}x{rw}-{padding}"
            f"{'-bias' if bias else ''}{'-relu' if relu else ''}")


def operands(case, dtype):
    (n, h, w, c, dm), kernel, strides, dilation, padding, bias, relu = case
    rng = np.random.default_rng(zlib.crc32(case_id(case).encode()))
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    k = rng.standard_normal((*kernel, c, dm)).astype(dtype)
    b = rng.standard_normal(c * dm).astype(dtype) if bias else None
    shape = ops.depthwise_forward(x, k, b, strides, padding, dilation).shape
    dy = rng.standard_normal(shape).astype(dtype)
    return x, k, b, dy


def run_ops(case, x, k, b, dy, n_threads=None):
    """(out, dx, dkernel, dbias) from the ops facade."""
    _, _, strides, dilation, padding, _, relu = case
    geometry = dict(strides=strides, padding=padding, dilation_rate=dilation)
    out = ops.depthwise_forward(x, k, b, **geometry, relu=relu, n_threads=n_threads)
    dx = ops.depthwise_backward_input(dy, k, x.shape, **geometry, n_threads=n_threads)
    db = None if b is None else np.empty_like(b)
    dk = ops.depthwise_backward_weight(x, dy, k.shape, **geometry, db=db, n_threads=n_threads)
    return out, dx, dk, db


def same_pads(size, k, stride, rate):
    """TensorFlow's "same" padding (before, after) for one axis: the extra cell goes after."""
    extent = (k - 1) * rate + 1
    total = max((-(-size // stride) - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def run_torch(case, x, k, b, dy):
    """The same four from torch.nn.functional.conv2d with groups = channels (no relu: the
    gradients below are of the linear part)."""
    (n, h, w, c, dm), (kh, kw), strides, dilation, padding, _, _ = case
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    # (kh, kw, c, dm) -> (c*dm, 1, kh, kw): output channel ch*dm + m is filter (ch, m)
    tk = torch.tensor(k, dtype=torch.float64, requires_grad=True)
    weight = tk.permute(2, 3, 0, 1).reshape(c * dm, 1, kh, kw)
    tb = None if b is None else torch.tensor(b, dtype=torch.float64, requires_grad=True)
    xin = tx.permute(0, 3, 1, 2)
    if padding == "same":
        (top, bottom), (left, right) = (same_pads(size, kk, s, r) for size, kk, s, r in
                                        zip((h, w), (kh, kw), strides, dilation))
        xin = F.pad(xin, (left, right, top, bottom))
    y = F.conv2d(xin, weight, tb, stride=strides, dilation=dilation, groups=c)
    y.backward(torch.tensor(dy, dtype=torch.float64).permute(0, 3, 1, 2))
    return (y.permute(0, 2, 3, 1).detach().numpy(), tx.grad.numpy(), tk.grad.numpy(),
            None if tb is None else tb.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch(case, dtype, simd_path):
    x, k, b, dy = operands(case, dtype)
    out, dx, dk, db = run_ops(case, x, k, b, dy)
    want_out, want_dx, want_dk, want_db = run_torch(case, x, k, b, dy)
    if case[-1]:  # relu: forward only; the backward above is of the linear part
        want_out = np.maximum(want_out, 0)
    for got, want in ((out, want_out), (dx, want_dx), (dk, want_dk), (db, want_db)):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[9]], ids=case_id)
def test_gradients_match_finite_differences(case):
    """float64 kernels against central differences of sum(forward(x, k, b) * dy)."""
    x, k, b, dy = operands(case, np.float64)
    linear = case[:-1] + (False,)
    _, dx, dk, db = run_ops(linear, x, k, b, dy)
    _, _, strides, dilation, padding, _, _ = case

    def objective():
        return float(np.sum(ops.depthwise_forward(x, k, b, strides, padding, dilation) * dy))

    np.testing.assert_allclose(dx, numeric_grad(objective, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dk, numeric_grad(objective, k), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, numeric_grad(objective, b), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[7]], ids=case_id)
def test_results_ignore_the_thread_count(case):
    """A batch large enough to run threaded: 1, 2 and 3 threads agree bit for bit, dW's chunk
    sums included."""
    (n, h, w, c, dm), *rest = case
    big = ((16, h * 2, w * 2, c, dm), *rest)
    x, k, b, dy = operands(big, np.float32)
    results = [run_ops(big, x, k, b, dy, n_threads=t) for t in (1, 2, 3)]
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            if want is not None:
                np.testing.assert_array_equal(got, want)


def test_partial_chunks_are_bounded():
    """dW's scratch: one chunk per output row up to 64, and fewer when the kernel is large."""
    assert ops.depthwise_partial_shape((2, 3, 3, 8), (3, 3, 8, 1)) == (6, 80)
    assert ops.depthwise_partial_shape((128, 16, 16, 144), (3, 3, 144, 1)) == (64, 1440)
    rows, values = ops.depthwise_partial_shape((128, 16, 16, 4096), (7, 7, 2048, 2))
    assert values == 49 * 4096 + 4096 and rows * values <= ops.PARTIAL_VALUES and rows >= 1


def keras_output_size(size, k, stride, rate, padding):
    """Keras's conv output size (keras.src.ops.operation_utils.compute_conv_output_shape):
    floor((size - rate*(k - 1) - 1) / stride) + 1 for "valid", floor((size - 1) / stride) + 1
    for "same"."""
    if padding == "valid":
        return (size - rate * (k - 1) - 1) // stride + 1
    return (size - 1) // stride + 1


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_output_shape_follows_keras(padding):
    for size, k, stride, rate in itertools.product((5, 8, 13), (1, 2, 3, 5), (1, 2, 3),
                                                   (1, 2, 3)):
        if stride > 1 and rate > 1:
            continue  # Keras refuses the pair
        want = keras_output_size(size, k, stride, rate, padding)
        shape = (1, size, size + 1, 2)
        if want < 1 or keras_output_size(size + 1, k, stride, rate, padding) < 1:
            with pytest.raises(ValueError, match="kernel_size"):
                ops.depthwise_forward(np.zeros(shape, np.float32), np.zeros((k, k, 2, 3)),
                                      None, (stride, stride), padding, (rate, rate))
            continue
        x = np.zeros(shape, np.float32)
        out = ops.depthwise_forward(x, np.zeros((k, k, 2, 3), np.float32), None,
                                    (stride, stride), padding, (rate, rate))
        assert out.shape == (1, want, keras_output_size(size + 1, k, stride, rate, padding), 6)


@pytest.mark.parametrize("call, message", [
    (lambda: ops.depthwise_forward(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 4, 1)), None,
                                   (1, 1), "same"), "channels"),
    (lambda: ops.depthwise_forward(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 1)), None,
                                   (1, 1), "same", (0, 1)), "dilation_rate"),
    (lambda: ops.depthwise_forward(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 1)), np.zeros(4),
                                   (1, 1), "same"), "bias"),
    (lambda: ops.depthwise_backward_weight(np.zeros((1, 5, 5, 3)), np.zeros((1, 5, 5, 3)),
                                           (3, 3, 3, 1), (1, 1), "same",
                                           partial=np.zeros((2, 5))), "partial"),
])
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
