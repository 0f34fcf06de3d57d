"""The 3x3 stride-1 convolutions of 32 channels or more on each side, which the kernels run as
Winograd's F(2x2, 3x3) (forward, and dX where it is the forward of dY): against the direct twins
and the twin of the algorithm itself, across padding, odd and even output sizes, channel counts
off the vector grid, epilogues, SIMD paths and thread counts, and bitwise where two paths must
agree."""
import zlib

import numpy as np
import pytest

from conftest import assert_close, conv_case, numeric_grad, run_conv_kernels
from fastcnn import _reference as ref
from fastcnn._ext import conv
from fastcnn._reference import pool as ref_pool

# (h, w, padding, c_in, c_out): even and odd outputs, bands of one and several tile rows, one
# tile row or column, channels off the 8- and 16-lane grids and past a 64-channel block
CASES = [(8, 8, "same", 32, 32), (9, 7, "same", 32, 40), (7, 10, "valid", 40, 32),
         (5, 31, "same", 40, 70), (3, 3, "valid", 32, 33), (16, 4, "same", 33, 32),
         (1, 6, "same", 32, 32)]


def case_id(case):
    h, w, padding, ci, co = case
    return f"{h}x{w}-{padding}-c{ci}to{co}"


def make_case(case, dtype, n=3):
    h, w, padding, ci, co = case
    rng = np.random.default_rng(zlib.crc32(case_id(case).encode()))
    return conv_case(rng, dtype, n, h, w, ci, co, (3, 3), (1, 1), padding)


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_the_direct_twins(case, dtype, simd_path):
    x, wt, bias, dy, geo = make_case(case, dtype)
    got = run_conv_kernels(conv, x, wt, bias, dy, geo, True, 2)
    want = run_conv_kernels(ref, x, wt, bias, dy, geo, True, 2)
    for g, w in zip(got, want):
        assert_close(g, w, dtype)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_float64_is_the_algorithm_to_round_off(case):
    """The kernel's forward and its dX-as-forward against the algorithm's own twin, in float64:
    tighter than against the direct convolution, so an indexing slip in a transform shows."""
    x, wt, _, dy, (sh, sw, pt, pl) = make_case(case, np.float64)
    out = np.empty(dy.shape)
    conv.conv2d_forward(x, wt, None, out, None, sh, sw, pt, pl, False, 1, 2)
    want = ref.conv.conv2d_winograd(x, wt, *dy.shape[1:3], pt, pl)
    np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-13 * np.abs(want).max())
    if x.shape[1:3] == dy.shape[1:3]:  # "same": dX is the forward of dY with the kernel turned
        dx = np.empty_like(x)
        conv.conv2d_backward_input(dy, wt, dx, sh, sw, pt, pl, 2)
        turned = np.ascontiguousarray(wt[::-1, ::-1].transpose(0, 1, 3, 2))
        want = ref.conv.conv2d_winograd(dy, turned, *x.shape[1:3], 2 - pt, 2 - pl)
        np.testing.assert_allclose(dx, want, rtol=1e-13, atol=1e-13 * np.abs(want).max())


@pytest.mark.parametrize("relu", [0, 1, 2])
def test_epilogues_match_the_direct_twin(relu, simd_path):
    """bias, relu and relu6 (flag 2) after the back transform, NaN kept by both activations."""
    x, wt, bias, dy, geo = make_case(CASES[1], np.float32)
    x[0, 2, 3, :] = np.nan
    out = np.empty(dy.shape, np.float32)
    want = np.empty_like(out)
    conv.conv2d_forward(x, wt, bias, out, None, *geo, relu, 1, 2)
    ref.conv2d_forward(x, wt, bias, want, None, *geo, relu != 0, 1, 2)
    if relu == 2:
        want = np.where(want > 6, np.float32(6), want)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    assert_close(np.nan_to_num(out), np.nan_to_num(want), np.float32)


@pytest.mark.parametrize("case", CASES[:4], ids=case_id)
def test_bitwise_for_any_thread_count(case):
    x, wt, bias, dy, geo = make_case(case, np.float32, n=5)
    first = run_conv_kernels(conv, x, wt, bias, dy, geo, True, 1)
    for threads in (2, 3):
        for g, w in zip(run_conv_kernels(conv, x, wt, bias, dy, geo, True, threads), first):
            np.testing.assert_array_equal(g, w)


def test_float64_gradients_by_finite_differences():
    """dX of a "same" 3x3 conv runs as the Winograd forward of dY; checked against central
    differences of the loss sum(conv(x) * dy), whose forward is Winograd's too."""
    x, wt, _, dy, geo = make_case((4, 5, "same", 32, 32), np.float64, n=1)

    def loss():
        out = np.empty(dy.shape)
        conv.conv2d_forward(x, wt, None, out, None, *geo, False, 1, 1)
        return float((out * dy).sum())

    dx = np.empty_like(x)
    conv.conv2d_backward_input(dy, wt, dx, *geo, 1)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("pool", [(2, 2), (3, 2)])
def test_fused_max_pooling_keeps_the_bits(pool):
    """The fused conv + pool computes only the rows its windows read (an odd count with a 3x3
    window of stride 2): the bits are those of the whole conv, then the pooling."""
    (k, s), n = pool, 2
    x, wt, bias, _, (sh, sw, pt, pl) = conv_case(np.random.default_rng(5), np.float32, n, 12, 11,
                                                 32, 32, (3, 3), (1, 1), "same")
    full = np.empty((n, 12, 11, 32), np.float32)
    conv.conv2d_forward(x, wt, bias, full, None, sh, sw, pt, pl, True, 1, 2)
    ph, pw = (12 - k) // s + 1, (11 - k) // s + 1
    want = np.empty((n, ph, pw, 32), np.float32)
    ref_pool.maxpool2d_forward(full, want, np.empty(want.shape, np.int32), k, k, s, s, 0, 0, 2)
    got = np.empty_like(want)
    conv.conv2d_maxpool_forward(x, wt, bias, got, None, sh, sw, pt, pl, True, k, k, s, s, 2)
    np.testing.assert_array_equal(got, want)
