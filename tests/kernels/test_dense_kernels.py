"""The dense kernels against their NumPy twins, across shape, dtype, SIMD path and thread count,
plus float64 finite-difference gradient checks of the kernels themselves."""
import numpy as np
import pytest

from conftest import assert_close, numeric_grad, run_dense_kernels
from fastcnn import _reference as ref
from fastcnn._ext import dense


def make_case(rng, dtype, n, k, o):
    x = rng.standard_normal((n, k)).astype(dtype)
    w = rng.standard_normal((k, o)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype)
    dy = rng.standard_normal((n, o)).astype(dtype)
    return x, w, bias, dy


# (n, in, out): single rows and columns, out off the 16-lane grid, past one 64-wide block,
# rows past one dW chunk, and the MNIST head. Outputs up to 14 take the narrow kernels
# (dense_narrow.h): there, inputs fewer than one vector, an odd output count, rows past one
# 16-row block with a lone last row, inputs over several L1 spans with a tail, and the widest
# narrow layer beside the first that is not.
SHAPES = [(1, 1, 1), (5, 3, 17), (37, 70, 10), (100, 33, 130), (128, 1600, 10), (3, 8, 2),
          (19, 1000, 13), (33, 900, 14), (9, 40, 15)]


def check_shape(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x, w, bias, dy = make_case(rng, dtype, *shape)
    for g, want in zip(run_dense_kernels(dense, x, w, bias, dy, True, 2),
                       run_dense_kernels(ref, x, w, bias, dy, True, 2)):
        assert_close(g, want, dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_float32_matches_reference(shape, simd_path):
    check_shape(shape, np.float32)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_float64_matches_reference(shape):
    check_shape(shape, np.float64)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_float32_matches_the_float64_kernels(shape, simd_path):
    """float32 and float64 are two compilations of the same templates, and the float64 one is
    checked by finite differences; this ties the float32 one to it: every SIMD path's float32
    kernels against the float64 kernels on the same inputs, at float32 tolerances."""
    rng = np.random.default_rng(sum(shape))
    x, w, bias, dy = make_case(rng, np.float32, *shape)
    want = run_dense_kernels(dense, *(a.astype(np.float64) for a in (x, w, bias, dy)), True, 2)
    for g, wanted in zip(run_dense_kernels(dense, x, w, bias, dy, True, 2), want):
        assert_close(g, wanted, np.float32)


@pytest.mark.parametrize("shape", [(37, 70, 20), (100, 33, 130), (128, 1600, 16)], ids=str)
def test_forward_in_k_slices_matches_reference(shape, dense_panel_bytes, simd_path):
    rng = np.random.default_rng(sum(shape))
    x, w, bias, dy = make_case(rng, np.float32, *shape)
    got, want = np.empty(dy.shape, np.float32), np.empty(dy.shape, np.float32)
    dense.dense_forward(x, w, bias, got, True, 2)
    ref.dense_forward(x, w, bias, want, True, 2)
    assert_close(got, want, np.float32)


@pytest.mark.parametrize("use_bias, relu", [(False, False), (False, True), (True, False)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_and_relu_options(use_bias, relu, dtype):
    rng = np.random.default_rng(1)
    x, w, bias, dy = make_case(rng, dtype, 9, 20, 21)
    bias = bias if use_bias else None
    for g, want in zip(run_dense_kernels(dense, x, w, bias, dy, relu, 1),
                       run_dense_kernels(ref, x, w, bias, dy, relu, 1)):
        assert_close(g, want, dtype)


def test_read_only_inputs():
    rng = np.random.default_rng(2)
    x, w, bias, dy = make_case(rng, np.float32, 7, 12, 9)
    for a in (x, w, bias, dy):
        a.setflags(write=False)
    for g, want in zip(run_dense_kernels(dense, x, w, bias, dy, True, 2),
                       run_dense_kernels(ref, x, w, bias, dy, True, 2)):
        assert_close(g, want, np.float32)


def test_inconsistent_shapes_raise():
    with pytest.raises(ValueError, match="out has shape"):
        dense.dense_forward(np.zeros((4, 3), np.float32), np.zeros((3, 5), np.float32), None,
                            np.zeros((4, 6), np.float32), False, 1)


@pytest.mark.parametrize("shape", [(100, 33, 130), (128, 1600, 10), (19, 1000, 13)], ids=str)
def test_thread_count_does_not_change_results(shape, simd_path):
    rng = np.random.default_rng(3)
    x, w, bias, dy = make_case(rng, np.float32, *shape)
    one = run_dense_kernels(dense, x, w, bias, dy, True, 1)
    for n_threads in (2, 3):
        for a, b in zip(one, run_dense_kernels(dense, x, w, bias, dy, True, n_threads)):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("shape", [(37, 70, 10), (6, 40, 3), (9, 40, 20)], ids=str)
def test_non_finite_inputs_propagate_as_in_the_reference(shape, simd_path):
    """An inf in the last row (a lone one when rows go in pairs) reaches exactly the outputs and
    gradients it reaches in the reference, and a NaN likewise, nothing more."""
    rng = np.random.default_rng(5)
    x, w, bias, dy = make_case(rng, np.float32, *shape)
    x[-1, 3], x[0, 1] = np.inf, np.nan
    for g, want in zip(run_dense_kernels(dense, x, w, bias, dy, False, 2),
                       run_dense_kernels(ref, x, w, bias, dy, False, 2)):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(want))
        np.testing.assert_array_equal(np.where(np.isinf(g), g, 0), np.where(np.isinf(want), want, 0))
        assert_close(np.where(np.isfinite(g), g, 0), np.where(np.isfinite(want), want, 0),
                     np.float32)


def test_gradients_by_central_differences():
    rng = np.random.default_rng(4)
    x, w, bias, g_out = make_case(rng, np.float64, 4, 6, 5)

    def loss():
        out = np.empty(g_out.shape)
        dense.dense_forward(x, w, bias, out, False, 1)
        return float((out * g_out).sum())

    dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(bias)
    dense.dense_backward_input(g_out, w, dx, 1)
    dense.dense_backward_weight(x, g_out, dw, db, 1)
    for analytic, param in ((dx, x), (dw, w), (db, bias)):
        np.testing.assert_allclose(analytic, numeric_grad(loss, param), rtol=1e-6, atol=1e-7)
