"""The loss kernels of the regression, focal and Dice losses: float64 gradients against finite
differences, their formulas at chosen points, and results bitwise the same for 1, 2 and 3
threads."""
import numpy as np
import pytest

from fastcnn._ops import loss as loss_ops
from conftest import numeric_grad


def _inputs(kind, shape, rng):
    """Predictions and targets away from the kinks and clips, where finite differences hold."""
    n, k = shape
    z = rng.standard_normal(shape) * 2
    p = rng.uniform(0.05, 0.95, shape)
    t = rng.random(shape)
    onehot = np.eye(k)[rng.integers(0, k, n)]
    return {
        "mean_absolute_error": (z, t, {}),
        "huber": (z, t, {"delta": 0.8}),
        "log_cosh": (z * 5, t, {}),
        "kl_divergence": (p, t / t.sum(axis=1, keepdims=True), {}),
        "poisson": (p + 0.5, np.floor(t * 5), {}),
        "categorical_focal_crossentropy": (p, onehot, {"alpha": np.linspace(0.2, 1, k),
                                                       "gamma": 1.5}),
        "categorical_focal_logits": (z, t, {"alpha": 0.25, "gamma": 2.0, "from_logits": True}),
        "binary_focal_crossentropy": (p, np.round(t), {"apply_class_balancing": True,
                                                       "gamma": 2.0}),
        "binary_focal_logits": (z, t, {"gamma": 0.5, "from_logits": True}),
        "dice": (p, np.round(t), {}),
    }[kind]


KINDS = ["mean_absolute_error", "huber", "log_cosh", "kl_divergence", "poisson",
         "categorical_focal_crossentropy", "categorical_focal_logits", "binary_focal_crossentropy",
         "binary_focal_logits", "dice"]


def _run(kind, y_pred, target, options, n_threads=2):
    name = kind.replace("_logits", "_crossentropy")
    return getattr(loss_ops, name)(y_pred, target, 1 / len(y_pred), n_threads=n_threads,
                                   **options)


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_finite_differences(kind, rng):
    y_pred, target, options = _inputs(kind, (5, 4), rng)
    _, grad = _run(kind, y_pred, target, options)
    numeric = numeric_grad(lambda: float(_run(kind, y_pred, target, options)[0].mean()), y_pred)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_threads_agree_bitwise(kind, rng):
    y_pred, target, options = _inputs(kind, (4000, 10), rng)
    y_pred, target = y_pred.astype(np.float32), target.astype(np.float32)
    results = [_run(kind, y_pred, target, options, n_threads=t) for t in (1, 2, 3)]
    for loss, grad in results[1:]:
        assert np.array_equal(loss, results[0][0]) and np.array_equal(grad, results[0][1])


def test_huber_is_quadratic_then_linear():
    errors = np.array([[-3.0, -0.5, 0.0, 0.5, 3.0]])
    loss, grad = loss_ops.huber(errors, np.zeros_like(errors), 1.0, delta=1.0)
    # 0.5 e^2 inside delta, delta |e| - delta^2 / 2 beyond, averaged over the row
    assert loss[0] == pytest.approx(np.mean([2.5, 0.125, 0, 0.125, 2.5]))
    np.testing.assert_allclose(grad[0] * 5, [-1, -0.5, 0, 0.5, 1])


def test_log_cosh_does_not_overflow():
    errors = np.array([[-1e4, 1e4, 0.0]], np.float32)
    loss, grad = loss_ops.log_cosh(errors, np.zeros_like(errors), 1.0)
    assert loss[0] == pytest.approx((2 * (1e4 - np.log(2))) / 3, rel=1e-6)
    np.testing.assert_allclose(grad[0] * 3, [-1, 1, 0])


def test_kl_divergence_clips_both_sides_and_sums():
    p = np.array([[0.0, 0.5, 0.5]])
    t = np.array([[0.0, 0.25, 0.75]])
    loss, grad = loss_ops.kl_divergence(p, t, 1.0)
    tc, pc = np.clip(t, 1e-7, 1), np.clip(p, 1e-7, 1)
    assert loss[0] == pytest.approx(np.sum(tc * np.log(tc / pc)))
    assert grad[0, 0] == 0  # the clip bites there


def test_focal_losses_without_focus_are_the_cross_entropies(rng):
    p = rng.uniform(0.05, 1, (6, 4))
    t = np.eye(4)[rng.integers(0, 4, 6)]
    loss, _ = loss_ops.categorical_focal_crossentropy(p, t, 1.0, alpha=1.0, gamma=0.0)
    o = p / p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss, -(t * np.log(o)).sum(axis=1), rtol=1e-12)
    b = rng.uniform(0.05, 0.95, (6, 4))
    loss, _ = loss_ops.binary_focal_crossentropy(b, t, 1.0, gamma=0.0)
    np.testing.assert_allclose(loss, -(t * np.log(b) + (1 - t) * np.log(1 - b)).mean(axis=1),
                               rtol=1e-12)


def test_options_are_checked():
    p = np.full((2, 3), 0.5)
    with pytest.raises(ValueError, match="delta > 0"):
        loss_ops.huber(p, p, 1.0, delta=0)
    with pytest.raises(ValueError, match="gamma >= 0"):
        loss_ops.binary_focal_crossentropy(p, p, 1.0, gamma=-1)
    with pytest.raises(ValueError, match=r"alpha to be a finite number or one per class \(3\)"):
        loss_ops.categorical_focal_crossentropy(p, p, 1.0, alpha=[0.5, 0.5])
