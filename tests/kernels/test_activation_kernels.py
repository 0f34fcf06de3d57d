"""The activation kernels (relu, sigmoid, tanh, softmax) against their twins, float64 gradient
checks, and thread independence."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import activation
from conftest import numeric_grad

POINTWISE = ["relu", "sigmoid", "tanh"]
TOL = {np.float32: 2e-6, np.float64: 1e-13}


@pytest.mark.parametrize("name", POINTWISE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 7, 100_003])
def test_pointwise_match_reference(name, dtype, size, rng):
    x = (rng.standard_normal(size) * 4).astype(dtype)
    forward = getattr(activation, f"{name}_forward")
    backward = getattr(activation, f"{name}_backward")
    y, ref_y = np.empty_like(x), np.empty_like(x)
    forward(x, y, 2)
    getattr(ref, f"{name}_forward")(x, ref_y, 2)
    np.testing.assert_allclose(y, ref_y, rtol=TOL[dtype], atol=TOL[dtype])
    dy = rng.standard_normal(size).astype(dtype)
    dx, ref_dx = np.empty_like(x), np.empty_like(x)
    backward(y, dy, dx, 2)
    getattr(ref, f"{name}_backward")(y, dy, ref_dx, 2)
    np.testing.assert_allclose(dx, ref_dx, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("name", POINTWISE)
def test_pointwise_gradient_finite_differences(name, rng):
    x = rng.standard_normal(50) * 2
    x[np.abs(x) < 1e-3] = 0.5  # keep relu away from its kink
    probe = rng.standard_normal(50)
    forward = getattr(activation, f"{name}_forward")
    backward = getattr(activation, f"{name}_backward")

    def f():
        y = np.empty_like(x)
        forward(x, y, 1)
        return float((y * probe).sum())

    y = np.empty_like(x)
    forward(x, y, 1)
    dx = np.empty_like(x)
    backward(y, probe, dx, 1)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", POINTWISE + ["softmax"])
def test_activations_threads_agree(name, rng):
    """Past the threading threshold, 1 and 2 threads give bitwise the same forward and backward."""
    x = (rng.standard_normal((5000, 10)) * 4).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    forward = getattr(activation, f"{name}_forward")
    backward = getattr(activation, f"{name}_backward")
    if name != "softmax":
        x, dy = x.reshape(-1), dy.reshape(-1)
    results = []
    for threads in (1, 2):
        y, dx = np.empty_like(x), np.empty_like(x)
        forward(x, y, threads)
        backward(y, dy, dx, threads)
        results.append((y, dx))
    assert all(np.array_equal(a, b) for a, b in zip(*results))


def test_sigmoid_extremes_are_finite():
    x = np.array([-1e4, -100, 0, 100, 1e4], np.float32)
    y = np.empty_like(x)
    activation.sigmoid_forward(x, y, 1)
    assert np.all(np.isfinite(y)) and y[0] == 0 and y[-1] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_forward_backward(dtype, rng):
    x = (rng.standard_normal((9, 10)) * 30).astype(dtype)
    y, ref_y = np.empty_like(x), np.empty_like(x)
    activation.softmax_forward(x, y, 2)
    ref.softmax_forward(x, ref_y, 2)
    # Both compute in double: the exps differ by an ulp each, the sums of K (in other orders) by
    # (K - 1) eps, 1 / s * e against e / s by 1.5; float32 rounds 1.5 eps32 (or half subnormals).
    k, eps, eps64 = x.shape[1], np.finfo(dtype).eps, np.finfo(np.float64).eps
    rtol = (k + 3) * eps64 + (1.5 * eps if dtype == np.float32 else 0)
    np.testing.assert_allclose(y, ref_y, rtol=rtol, atol=np.finfo(dtype).smallest_subnormal)
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-6)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, ref_dx = np.empty_like(x), np.empty_like(x)
    activation.softmax_backward(y, dy, dx, 2)
    ref.softmax_backward(y, dy, ref_dx, 2)
    # dot's K products and sums, dy - dot and the product by y each round at worst in the dtype,
    # relative to what they combine; the results round once more (half a subnormal at least).
    y64, dy64 = y.astype(np.float64), np.abs(dy.astype(np.float64))
    size = y64 * (dy64 + (dy64 * y64).sum(axis=1, keepdims=True))
    bound = (k + 2) * eps * size + eps * np.abs(ref_dx) + np.finfo(dtype).smallest_subnormal
    assert np.all(np.abs(dx - ref_dx.astype(np.float64)) <= bound)


def test_softmax_gradient_finite_differences(rng):
    x = rng.standard_normal((3, 5))
    probe = rng.standard_normal((3, 5))

    def f():
        y = np.empty_like(x)
        activation.softmax_forward(x, y, 1)
        return float((y * probe).sum())

    y = np.empty_like(x)
    activation.softmax_forward(x, y, 1)
    dx = np.empty_like(x)
    activation.softmax_backward(y, probe, dx, 1)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-9)
