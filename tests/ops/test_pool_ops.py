"""The pooling wrappers: global pooling against NumPy and central differences, and inputs
read-only or strided."""
import numpy as np
import pytest

from fastcnn._ops import pool as pool_ops
from conftest import numeric_grad, variants


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 4, 6), (2, 7, 1, 3)])
def test_global_pooling_matches_numpy(shape, rng):
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(pool_ops.global_avgpool2d_forward(x), x.mean(axis=(1, 2)), rtol=1e-14)
    out, argmax = pool_ops.global_maxpool2d_forward(x)
    np.testing.assert_array_equal(out, x.max(axis=(1, 2)))
    n, c = out.shape
    flat = x.reshape(n, -1, c).argmax(axis=1)  # numpy keeps the first maximum too
    np.testing.assert_array_equal(argmax, flat * c + np.arange(c))

    dy = rng.standard_normal((n, c))
    expected = np.zeros_like(x).reshape(n, -1, c)
    expected[np.arange(n)[:, None], flat, np.arange(c)] = dy
    np.testing.assert_array_equal(pool_ops.global_maxpool2d_backward(dy, argmax, x.shape),
                                  expected.reshape(x.shape))
    np.testing.assert_allclose(pool_ops.global_avgpool2d_backward(dy, x.shape),
                               np.broadcast_to(dy[:, None, None, :] / (shape[1] * shape[2]), shape),
                               rtol=1e-14)


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_global_pooling_gradient_finite_differences(kind, rng):
    x = rng.standard_normal((2, 3, 4, 3))
    probe = rng.standard_normal((2, 3))
    if kind == "avg":
        loss = lambda: float((pool_ops.global_avgpool2d_forward(x) * probe).sum())
        dx = pool_ops.global_avgpool2d_backward(probe, x.shape)
    else:
        loss = lambda: float((pool_ops.global_maxpool2d_forward(x)[0] * probe).sum())
        dx = pool_ops.global_maxpool2d_backward(probe, pool_ops.global_maxpool2d_forward(x)[1], x.shape)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


def test_ops_accept_readonly_and_strided(rng):
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    expected, _ = pool_ops.maxpool2d_forward(x, (2, 2), (2, 2), "valid")
    for name, v in variants(x).items():
        got, _ = pool_ops.maxpool2d_forward(v, (2, 2), (2, 2), "valid")
        np.testing.assert_array_equal(got, expected, err_msg=name)
