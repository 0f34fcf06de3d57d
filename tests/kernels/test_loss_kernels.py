"""The loss kernels against their twins, the fused softmax + cross-entropy beside the softmax it
shares, float64 gradient checks, label checks and thread independence."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import activation, loss
from conftest import numeric_grad


def run(module, kind, y_pred, target, threads=2):
    """(per-row loss, gradient) from the kernel or twin ``kind`` of module, at grad_scale 1 / N."""
    grad, rows = np.empty_like(y_pred), np.empty(len(y_pred), y_pred.dtype)
    getattr(module, kind)(y_pred, target, grad, rows, 1 / len(y_pred), threads)
    return rows, grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["softmax_cross_entropy", "sparse_softmax_cross_entropy"])
def test_fused_loss_matches_reference(kind, dtype, rng):
    logits = (rng.standard_normal((33, 10)) * 5).astype(dtype)
    labels = rng.integers(0, 10, 33)
    target = labels if kind.startswith("sparse") else np.eye(10, dtype=dtype)[labels]
    rows, grad = run(loss, kind, logits, target)
    ref_rows, ref_grad = run(ref, kind, logits, target)
    np.testing.assert_allclose(rows, ref_rows, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-6)  # each gradient row sums to 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_the_one_the_fused_loss_uses(dtype, rng):
    """Off the label, sparse cross-entropy's gradient at grad_scale 1 is the softmax itself."""
    logits = (rng.standard_normal((50, 10)) * 5).astype(dtype)
    labels = rng.integers(0, 10, 50)
    grad, rows = np.empty_like(logits), np.empty(50, dtype)
    loss.sparse_softmax_cross_entropy(logits, labels, grad, rows, 1.0, 1)
    y = np.empty_like(logits)
    activation.softmax_forward(logits, y, 1)
    off_label = np.arange(10) != labels[:, None]
    np.testing.assert_array_equal(y[off_label], grad[off_label])


def test_fused_loss_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0], [-3e38, 3e38, 0]], np.float32)
    rows, grad = run(loss, "sparse_softmax_cross_entropy", logits, np.array([1, 1]))
    assert np.all(np.isfinite(rows)) and np.all(np.isfinite(grad))
    assert rows[0] == pytest.approx(2e4) and rows[1] == 0


@pytest.mark.parametrize("kind", ["softmax_cross_entropy", "sparse_softmax_cross_entropy"])
def test_fused_loss_gradient_finite_differences(kind, rng):
    logits = rng.standard_normal((4, 6))
    labels = rng.integers(0, 6, 4)
    target = labels if kind.startswith("sparse") else np.eye(6)[labels]
    _, grad = run(loss, kind, logits, target)
    mean = lambda: float(run(loss, kind, logits, target)[0].mean())
    np.testing.assert_allclose(grad, numeric_grad(mean, logits), rtol=1e-6, atol=1e-9)


def test_soft_targets_match_reference(rng):
    logits = (rng.standard_normal((40, 7)) * 3).astype(np.float32)
    target = (rng.dirichlet(np.ones(7), 40) * rng.uniform(0.5, 2, (40, 1))).astype(np.float32)
    rows, grad = run(loss, "softmax_cross_entropy", logits, target)
    ref_rows, ref_grad = run(ref, "softmax_cross_entropy", logits, target)
    np.testing.assert_allclose(rows, ref_rows, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)


def test_labels_out_of_range_are_refused_by_the_kernels(out_of_range_labels):
    kind, bad, logits, labels = out_of_range_labels
    with pytest.raises(ValueError, match=rf"labels in \[0, 10\), received values from .*{bad}\b"):
        run(loss, kind, logits, labels)


@pytest.mark.parametrize("kind", ["softmax_cross_entropy", "sparse_softmax_cross_entropy"])
def test_fused_loss_threads_agree(kind, rng):
    logits = rng.standard_normal((5000, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 5000)
    target = labels if kind.startswith("sparse") else np.eye(10, dtype=np.float32)[labels]
    one = run(loss, kind, logits, target, threads=1)
    two = run(loss, kind, logits, target, threads=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))


DENSE_TARGET_KERNELS = ["mean_squared_error", "binary_crossentropy",
                        "sigmoid_binary_crossentropy", "categorical_hinge"]


def _inputs(kind, shape, dtype, rng):
    """Predictions and targets that suit the kernel: probabilities for binary_crossentropy
    (some beyond the clip), one-hot rows for the hinges, labels for multiclass_hinge."""
    n, k = shape
    y_pred = (rng.standard_normal(shape) * 2).astype(dtype)
    if kind == "binary_crossentropy":
        y_pred = rng.random(shape).astype(dtype)
        y_pred.flat[::7] = 0  # clipped
        y_pred.flat[3::11] = 1
    labels = rng.integers(0, k, n)
    if kind == "multiclass_hinge":
        return y_pred, labels
    if kind == "categorical_hinge":
        return y_pred, np.eye(k, dtype=dtype)[labels]
    return y_pred, rng.random(shape).astype(dtype)


@pytest.mark.parametrize("kind", DENSE_TARGET_KERNELS + ["multiclass_hinge"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (33, 10), (7, 1), (5, 3)])
def test_kernels_match_reference(kind, dtype, shape, rng):
    y_pred, target = _inputs(kind, shape, dtype, rng)
    rows, grad = run(loss, kind, y_pred, target)
    ref_rows, ref_grad = run(ref, kind, y_pred, target)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(rows, ref_rows, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, ref_grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", DENSE_TARGET_KERNELS + ["multiclass_hinge"])
def test_kernels_threads_agree(kind, rng):
    y_pred, target = _inputs(kind, (4000, 10), np.float32, rng)
    one = run(loss, kind, y_pred, target, threads=1)
    two = run(loss, kind, y_pred, target, threads=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
