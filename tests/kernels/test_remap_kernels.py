"""The remap kernels (per-image index maps) against their twins: the adjoint, float64 gradient
checks, threads and broadcast maps."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import remap
from conftest import numeric_grad, random_maps

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def run_remap(module, x, rows, cols, fill_value=1.5, threads=2):
    out = np.full((x.shape[0], rows.shape[1], cols.shape[1], x.shape[3]), np.nan, x.dtype)
    module.remap2d_forward(x, rows, cols, fill_value, out, threads)
    return out


def run_remap_back(module, dy, rows, cols, x_shape, threads=2):
    dx = np.full(x_shape, np.nan, dy.dtype)
    module.remap2d_backward(dy, rows, cols, dx, threads)
    return dx


@pytest.mark.parametrize("shape,out_hw", [((2, 5, 6, 3), (7, 4)), ((1, 1, 1, 1), (3, 2)),
                                          ((4, 8, 8, 1), (8, 8))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_remap_matches_reference(shape, out_hw, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    rows = random_maps(rng, shape[0], out_hw[0], shape[1])
    cols = random_maps(rng, shape[0], out_hw[1], shape[2])
    out = run_remap(remap, x, rows, cols)
    np.testing.assert_array_equal(out, run_remap(ref, x, rows, cols))
    dy = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_allclose(run_remap_back(remap, dy, rows, cols, shape),
                               run_remap_back(ref, dy, rows, cols, shape),
                               rtol=TOL[dtype], atol=TOL[dtype])


def test_remap_backward_is_the_adjoint(rng):
    """<remap(x), dy> == <x, remap_backward(dy)> with zero fill, even where maps repeat pixels."""
    x = rng.standard_normal((3, 6, 5, 2))
    rows = random_maps(rng, 3, 9, 6)
    cols = random_maps(rng, 3, 4, 5)
    dy = rng.standard_normal((3, 9, 4, 2))
    lhs = (run_remap(remap, x, rows, cols, fill_value=0.0) * dy).sum()
    rhs = (x * run_remap_back(remap, dy, rows, cols, x.shape)).sum()
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_remap_gradient_finite_differences(rng):
    x = rng.standard_normal((2, 4, 3, 2))
    rows, cols = random_maps(rng, 2, 5, 4), random_maps(rng, 2, 4, 3)
    probe = rng.standard_normal((2, 5, 4, 2))
    loss = lambda: float((run_remap(remap, x, rows, cols) * probe).sum())
    np.testing.assert_allclose(run_remap_back(remap, probe, rows, cols, x.shape),
                               numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


def test_remap_threads_and_broadcast_maps(rng):
    x = rng.standard_normal((32, 28, 28, 4)).astype(np.float32)
    rows = random_maps(rng, 32, 30, 28)
    cols = random_maps(rng, 32, 28, 28)
    assert np.array_equal(run_remap(remap, x, rows, cols, threads=1),
                          run_remap(remap, x, rows, cols, threads=2))
    dy = rng.standard_normal((32, 30, 28, 4)).astype(np.float32)
    assert np.array_equal(run_remap_back(remap, dy, rows, cols, x.shape, threads=1),
                          run_remap_back(remap, dy, rows, cols, x.shape, threads=2))
    # one map for every image, as a stride-0 view, equals the map repeated
    shared = np.broadcast_to(rows[:1], rows.shape)
    np.testing.assert_array_equal(run_remap(remap, x, shared, cols),
                                  run_remap(remap, x, np.repeat(rows[:1], 32, axis=0), cols))
