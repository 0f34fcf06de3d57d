"""float64 through the SIMD templates: the conv and dense kernels in float64 run the same C code
as float32, compiled per element type and SIMD path, so float64 is checked here on every path:
against the NumPy twins, by central differences, and for thread-count invariance."""
import numpy as np
import pytest

from conftest import numeric_grad, run_conv_kernels, run_dense_kernels
from fastcnn import _reference as ref
from fastcnn._ext import conv, dense

PATHS = ("scalar", "avx2", "avx512")
TOL = 1e-12


@pytest.fixture(params=PATHS[:PATHS.index(conv.simd_path()) + 1])
def f64_path(request):
    """Both modules on one SIMD path (each module holds its own level)."""
    previous = [m.simd_path() for m in (conv, dense)]
    for m in (conv, dense):
        assert m._set_simd_path(request.param) == request.param
    yield request.param
    for m, p in zip((conv, dense), previous):
        m._set_simd_path(p)


def assert_f64_close(got, want):
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL * max(1.0, np.abs(want).max()))


def conv_case(rng, n, h, w, ci, co, kernel, strides, pads):
    (kh, kw), (sh, sw), (pt, pl) = kernel, strides, pads
    oh, ow = (h + 2 * pt - kh) // sh + 1, (w + 2 * pl - kw) // sw + 1
    x = rng.standard_normal((n, h, w, ci))
    wt = rng.standard_normal((kh, kw, ci, co))
    return x, wt, rng.standard_normal(co), rng.standard_normal((n, oh, ow, co)), (sh, sw, pt, pl)


# c_in 1 and 3 (the narrow dX), c_out off every vector grid, past one 32-double block and one
# 64-float block; strides and padding that leave input rows unread
CONV_CASES = [(1, 5, (3, 3), (1, 1), (1, 1)), (3, 16, (5, 5), (2, 2), (2, 2)),
              (8, 37, (2, 3), (2, 1), (0, 1)), (5, 70, (3, 3), (3, 3), (0, 0)),
              (24, 33, (1, 1), (1, 1), (0, 0))]


@pytest.mark.parametrize("ci, co, kernel, strides, pads", CONV_CASES, ids=str)
def test_conv_float64_matches_reference(ci, co, kernel, strides, pads, f64_path):
    rng = np.random.default_rng(ci * 100 + co)
    case = conv_case(rng, 2, 9, 7, ci, co, kernel, strides, pads)
    for got, want in zip(run_conv_kernels(conv, *case, True, 2),
                         run_conv_kernels(ref, *case, True, 2)):
        assert_f64_close(got, want)


@pytest.mark.parametrize("panel_bytes", [4, 300, 3000])
def test_conv_float64_forward_in_k_slices(panel_bytes, f64_path):
    rng = np.random.default_rng(panel_bytes)
    x, wt, bias, dy, geo = conv_case(rng, 2, 9, 8, 24, 40, (3, 3), (1, 1), (1, 1))
    previous = conv._set_panel_bytes(panel_bytes)
    try:
        got = np.empty(dy.shape)
        conv.conv2d_forward(x, wt, bias, got, None, *geo, True, 1, 2)
    finally:
        conv._set_panel_bytes(previous)
    want = np.empty(dy.shape)
    ref.conv2d_forward(x, wt, bias, want, None, *geo, True, 1, 2)
    assert_f64_close(got, want)


# general kernels (outputs past 14, past one 32-double block) and narrow ones (up to 14)
DENSE_SHAPES = [(5, 3, 17), (37, 70, 40), (100, 33, 130), (128, 300, 10), (19, 1000, 13),
                (3, 8, 2), (33, 900, 14)]


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=str)
def test_dense_float64_matches_reference(shape, f64_path):
    rng = np.random.default_rng(sum(shape))
    n, k, o = shape
    case = (rng.standard_normal((n, k)), rng.standard_normal((k, o)), rng.standard_normal(o),
            rng.standard_normal((n, o)))
    for got, want in zip(run_dense_kernels(dense, *case, True, 2),
                         run_dense_kernels(ref, *case, True, 2)):
        assert_f64_close(got, want)


def test_float64_thread_count_does_not_change_results(f64_path):
    rng = np.random.default_rng(6)
    case = conv_case(rng, 19, 9, 8, 5, 37, (3, 3), (1, 1), (1, 1))
    one = run_conv_kernels(conv, *case, True, 1)
    for n_threads in (2, 3):
        for a, b in zip(one, run_conv_kernels(conv, *case, True, n_threads)):
            assert np.array_equal(a, b)
    for n, k, o in [(70, 50, 40), (70, 300, 10)]:
        dcase = (rng.standard_normal((n, k)), rng.standard_normal((k, o)),
                 rng.standard_normal(o), rng.standard_normal((n, o)))
        one = run_dense_kernels(dense, *dcase, True, 1)
        for n_threads in (2, 3):
            for a, b in zip(one, run_dense_kernels(dense, *dcase, True, n_threads)):
                assert np.array_equal(a, b)


def check_gradients(forward, backward, g_out, params):
    """backward() gives the analytic gradients of sum(forward() * g_out) for params, in order."""
    def loss():
        return float((forward() * g_out).sum())

    for analytic, param in zip(backward(), params):
        np.testing.assert_allclose(analytic, numeric_grad(loss, param), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("ci, co, kernel, strides, pads",
                         [(3, 4, (3, 2), (2, 1), (1, 0)), (2, 37, (2, 2), (1, 1), (1, 1))],
                         ids=str)
def test_conv_float64_gradients_by_central_differences(ci, co, kernel, strides, pads, f64_path):
    rng = np.random.default_rng(7)
    x, wt, bias, g_out, geo = conv_case(rng, 2, 5, 4, ci, co, kernel, strides, pads)

    def forward():
        out = np.empty(g_out.shape)
        conv.conv2d_forward(x, wt, bias, out, None, *geo, False, 1, 1)
        return out

    def backward():
        dx, dw, db = np.empty_like(x), np.empty_like(wt), np.empty_like(bias)
        conv.conv2d_backward_input(g_out, wt, dx, *geo, 1)
        conv.conv2d_backward_weight(x, g_out, dw, db, *geo, 1)
        return dx, dw, db

    check_gradients(forward, backward, g_out, (x, wt, bias))


@pytest.mark.parametrize("n, k, o", [(4, 6, 5), (3, 20, 37)], ids=str)
def test_dense_float64_gradients_by_central_differences(n, k, o, f64_path):
    rng = np.random.default_rng(4)
    x, w, bias, g_out = (rng.standard_normal((n, k)), rng.standard_normal((k, o)),
                         rng.standard_normal(o), rng.standard_normal((n, o)))

    def forward():
        out = np.empty(g_out.shape)
        dense.dense_forward(x, w, bias, out, False, 1)
        return out

    def backward():
        dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(bias)
        dense.dense_backward_input(g_out, w, dx, 1)
        dense.dense_backward_weight(x, g_out, dw, db, 1)
        return dx, dw, db

    check_gradients(forward, backward, g_out, (x, w, bias))
