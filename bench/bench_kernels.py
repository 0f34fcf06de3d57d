"""Pooling, the fused loss and dense kernels on the MNIST-convnet shapes, at 1 and 2 threads.

Each benchmark first checks the kernel against fastcnn._reference, so a fast wrong kernel
cannot win.  Run: pytest bench/bench_kernels.py --benchmark-only
"""
import numpy as np

from fastcnn import _reference as ref
from fastcnn._ops import dense, pool
from fastcnn._ops import loss as loss_ops

RNG = np.random.default_rng(0)
X_POOL = RNG.standard_normal((128, 11, 11, 64), dtype=np.float32)   # conv2 output
LOGITS = RNG.standard_normal((128, 10), dtype=np.float32)
LABELS = RNG.integers(0, 10, 128)
X_DENSE = RNG.standard_normal((128, 1600), dtype=np.float32)
W_DENSE = RNG.standard_normal((1600, 10), dtype=np.float32) * 0.02
B_DENSE = np.zeros(10, np.float32)


def test_maxpool2d_forward(benchmark, threads):
    out, argmax = pool.maxpool2d_forward(X_POOL, (2, 2), (2, 2), "valid")
    expected, expected_argmax = np.empty_like(out), np.empty_like(argmax)
    ref.maxpool2d_forward(X_POOL, expected, expected_argmax, 2, 2, 2, 2, 0, 0, threads)
    assert np.array_equal(out, expected) and np.array_equal(argmax, expected_argmax)
    benchmark(pool.maxpool2d_forward, X_POOL, (2, 2), (2, 2), "valid", out, argmax)


def test_maxpool2d_backward(benchmark, threads):
    out, argmax = pool.maxpool2d_forward(X_POOL, (2, 2), (2, 2), "valid")
    dx = pool.maxpool2d_backward(out, argmax, X_POOL.shape)
    expected = np.empty_like(dx)
    ref.maxpool2d_backward(out, argmax, expected, threads)
    np.testing.assert_array_equal(dx, expected)
    benchmark(pool.maxpool2d_backward, out, argmax, X_POOL.shape, dx)


def test_sparse_softmax_cross_entropy(benchmark, threads):
    loss, grad = loss_ops.sparse_softmax_cross_entropy(LOGITS, LABELS, 1 / 128)
    expected_loss, expected_grad = np.empty_like(loss), np.empty_like(grad)
    ref.sparse_softmax_cross_entropy(LOGITS, LABELS, expected_grad, expected_loss, 1 / 128, threads)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-8)
    benchmark(loss_ops.sparse_softmax_cross_entropy, LOGITS, LABELS, 1 / 128, grad, loss)


def test_dense_forward(benchmark, threads):
    out = dense.dense_forward(X_DENSE, W_DENSE, B_DENSE)
    expected = np.empty_like(out)
    ref.dense_forward(X_DENSE, W_DENSE, B_DENSE, expected, False, threads)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    benchmark(dense.dense_forward, X_DENSE, W_DENSE, B_DENSE, False, out)


def test_dense_backward(benchmark, threads):
    dy = RNG.standard_normal((128, 10), dtype=np.float32)
    dw, db = np.empty_like(W_DENSE), np.empty_like(B_DENSE)
    dx = np.empty_like(X_DENSE)
    expected_dw, expected_db = np.empty_like(dw), np.empty_like(db)
    dense.dense_backward_weight(X_DENSE, dy, dw, db)
    ref.dense_backward_weight(X_DENSE, dy, expected_dw, expected_db, threads)
    np.testing.assert_allclose(dw, expected_dw, rtol=1e-4, atol=1e-4)

    def step():
        dense.dense_backward_weight(X_DENSE, dy, dw, db)
        dense.dense_backward_input(dy, W_DENSE, dx)

    benchmark(step)
