"""PyTorch as an oracle: conv, pooling and the loss, forward and backward, to float32 round-off."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from fastcnn._ops import conv as conv_ops
from fastcnn._ops import loss as loss_ops
from fastcnn._ops import pool as pool_ops

CONV_CASES = [  # (N, H, W, C, O, kernel, strides, padding)
    (4, 13, 13, 32, 64, (3, 3), (1, 1), "valid"),
    (2, 28, 28, 1, 32, (3, 3), (1, 1), "valid"),
    (2, 9, 10, 3, 8, (2, 3), (2, 1), "valid"),
    (2, 8, 8, 5, 7, (3, 3), (1, 1), "same"),  # symmetric padding, which torch can express
    (1, 11, 11, 4, 6, (5, 5), (3, 3), "valid"),
]


def to_torch(a, requires_grad=False):
    t = torch.tensor(np.ascontiguousarray(a), dtype=torch.float32)
    return t.requires_grad_(requires_grad)


def nchw(a):
    return a.permute(0, 3, 1, 2)


def nhwc(t):
    return t.permute(0, 2, 3, 1).detach().numpy()


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_torch(case):
    n, h, w, c, o, k, s, padding = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    kernel = rng.standard_normal((*k, c, o)).astype(np.float32) * 0.2
    bias = rng.standard_normal(o).astype(np.float32)
    out = conv_ops.conv2d_forward(x, kernel, bias, s, padding, relu=False)

    tx, tk, tb = to_torch(x, True), to_torch(kernel, True), to_torch(bias, True)
    pad = (k[0] // 2, k[1] // 2) if padding == "same" else 0
    ty = F.conv2d(nchw(tx), tk.permute(3, 2, 0, 1), tb, stride=s, padding=pad)
    np.testing.assert_allclose(out, nhwc(ty), rtol=1e-4, atol=1e-4)

    dy = rng.standard_normal(out.shape).astype(np.float32)
    ty.backward(nchw(to_torch(dy)))
    dx = conv_ops.conv2d_backward_input(dy, kernel, x.shape, s, padding)
    db = np.empty_like(bias)
    dw = conv_ops.conv2d_backward_weight(x, dy, kernel.shape, s, padding, db=db)
    scale = np.abs(dy).max() * np.sqrt(h * w * n)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, tk.grad.numpy(), rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("pool,stride", [(2, 2), (3, 2), (3, 1)])
def test_maxpool_matches_torch(pool, stride):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 13, 11, 6)).astype(np.float32)
    out, argmax = pool_ops.maxpool2d_forward(x, (pool, pool), (stride, stride), "valid")
    tx = to_torch(x, True)
    ty = F.max_pool2d(nchw(tx), pool, stride)
    np.testing.assert_array_equal(out, nhwc(ty))
    dy = rng.standard_normal(out.shape).astype(np.float32)
    ty.backward(nchw(to_torch(dy)))
    np.testing.assert_allclose(pool_ops.maxpool2d_backward(dy, argmax, x.shape), tx.grad.numpy(),
                               rtol=1e-6, atol=1e-6)


def test_avgpool_matches_torch():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 10, 9, 4)).astype(np.float32)
    out = pool_ops.avgpool2d_forward(x, (2, 2), (2, 2), "valid")
    tx = to_torch(x, True)
    ty = F.avg_pool2d(nchw(tx), 2, 2)
    np.testing.assert_allclose(out, nhwc(ty), rtol=1e-6, atol=1e-6)
    dy = rng.standard_normal(out.shape).astype(np.float32)
    ty.backward(nchw(to_torch(dy)))
    np.testing.assert_allclose(pool_ops.avgpool2d_backward(dy, x.shape, (2, 2), (2, 2), "valid"),
                               tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("sparse", [False, True])
def test_softmax_cross_entropy_matches_torch(sparse):
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((64, 10)) * 4).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    if sparse:
        loss, grad = loss_ops.sparse_softmax_cross_entropy(logits, labels, 1 / 64)
    else:
        loss, grad = loss_ops.softmax_cross_entropy(logits, np.eye(10, dtype=np.float32)[labels], 1 / 64)
    tz = to_torch(logits, True)
    tl = F.cross_entropy(tz, torch.tensor(labels))
    tl.backward()
    assert loss.mean() == pytest.approx(tl.item(), rel=1e-5)
    np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-5, atol=1e-7)
