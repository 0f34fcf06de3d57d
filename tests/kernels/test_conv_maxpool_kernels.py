"""The fused convolution + max pooling kernels of conv.pyx (float32) against their NumPy twin and
against the separate kernels: every SIMD path, K slices, threads, the input relu and dropout."""
import itertools
import zlib

import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import conv
from fastcnn._ops import conv as conv_ops
from fastcnn._ops import dropout as dropout_ops
from fastcnn._ops import pool as pool_ops
from conftest import assert_close, conv_maxpool_case


def run_all(module, x, wt, bias, dy, geo, relu, pool, pool_strides, n_threads, need_dx=True,
            input_relu=False, dropout=(0, 0.0)):
    """Forward (pooled output and argmax), then dW, db and dX, from one implementation;
    dropout is (seed, rate)."""
    out = np.empty(dy.shape, np.float32)
    argmax = np.empty(dy.shape, np.int32)
    module.conv2d_maxpool_forward(x, wt, bias, out, argmax, *geo, relu, *pool, *pool_strides,
                                  n_threads, *dropout)
    dw, db = np.empty_like(wt), np.empty_like(bias)
    dx = np.empty_like(x) if need_dx else None
    skipped = module.conv2d_maxpool_backward(x, dy, out, argmax, wt, dw, db, dx, *geo, relu,
                                             *pool, *pool_strides, input_relu, n_threads,
                                             *dropout)
    assert skipped == 0
    return out, argmax, dw, db, dx


# Pools that tile the conv output (the vector unpooling) and ones that overlap or leave gaps
# (the scatter); channel counts on and off the 16-lane grid.
POOLS = [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((2, 2), (1, 1)), ((3, 2), (3, 2)), ((2, 2), (3, 3))]


CONVS = [((3, 3), (1, 1), "valid", (1, 32)), ((3, 3), (1, 1), "same", (3, 37)),
         ((2, 3), (2, 1), "same", (5, 70)), ((1, 1), (1, 1), "valid", (4, 16))]


GRID = list(itertools.product(CONVS, POOLS))


def grid_id(case):
    ((kh, kw), (sh, sw), padding, (ci, co)), ((ph, pw), (psh, psw)) = case
    return f"k{kh}x{kw}-s{sh}x{sw}-{padding}-c{ci}to{co}-pool{ph}x{pw}s{psh}x{psw}"


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_matches_reference(case, relu, simd_path):
    (kernel, strides, padding, (ci, co)), (pool, pool_strides) = case
    rng = np.random.default_rng(zlib.crc32(grid_id(case).encode()))
    x, wt, bias, dy, geo = conv_maxpool_case(rng, 3, 11, 10, ci, co, kernel, strides, padding, pool,
                                     pool_strides)
    got = run_all(conv, x, wt, bias, dy, geo, relu, pool, pool_strides, 2)
    want = run_all(ref, x, wt, bias, dy, geo, relu, pool, pool_strides, 2)
    np.testing.assert_array_equal(got[1], want[1])  # the argmax, exactly
    for g, w in zip(got[:1] + got[2:], want[:1] + want[2:]):
        assert_close(g, w, np.float32)


def test_forward_in_k_slices_matches_reference(conv_panel_bytes):
    rng = np.random.default_rng(2)
    x, wt, bias, dy, geo = conv_maxpool_case(rng, 2, 13, 13, 32, 64, (3, 3), (1, 1), "valid", (2, 2), (2, 2))
    got = run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2)
    want = run_all(ref, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2)
    assert_close(got[0], want[0], np.float32)


def test_equals_the_separate_kernels_on_mnist_conv2(simd_path):
    """Cutting the 11x11 conv output to the 10x10 the pooling reads changes no result."""
    rng = np.random.default_rng(1)
    x, wt, bias, dy, geo = conv_maxpool_case(rng, 9, 13, 13, 32, 64, (3, 3), (1, 1), "valid", (2, 2),
                                     (2, 2))
    out, argmax, dw, db, dx = run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2)
    z = conv_ops.conv2d_forward(x, wt, bias, (1, 1), "valid", relu=True)
    pooled, _ = pool_ops.maxpool2d_forward(z, (2, 2), (2, 2), "valid")
    np.testing.assert_array_equal(out, pooled)
    # the separate backward: the pooling's (argmax indexes the 10x10 part), then dW and dX over
    # the whole 11x11 output, whose last row and column get no gradient
    dz = np.zeros_like(z)
    dz[:, :10, :10] = pool_ops.maxpool2d_backward(dy, argmax, (9, 10, 10, 64), relu_output=out)
    sep_db = np.empty_like(db)
    sep_dw = conv_ops.conv2d_backward_weight(x, dz, wt.shape, (1, 1), "valid", db=sep_db)
    sep_dx = conv_ops.conv2d_backward_input(dz, wt, x.shape, (1, 1), "valid")
    for a, b in ((dw, sep_dw), (db, sep_db), (dx, sep_dx)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.abs(b).max())


@pytest.mark.parametrize("case", [GRID[0], GRID[6], GRID[12]], ids=grid_id)
def test_thread_count_does_not_change_results(case, simd_path):
    (kernel, strides, padding, (ci, co)), (pool, pool_strides) = case
    rng = np.random.default_rng(2)
    # 19 images make eight dW chunks (6, 4, 3, 2, 1, 1, 1, 1), so partial sums really are split
    # across threads
    x, wt, bias, dy, geo = conv_maxpool_case(rng, 19, 9, 10, ci, co, kernel, strides, padding, pool,
                                     pool_strides)
    one = run_all(conv, x, wt, bias, dy, geo, True, pool, pool_strides, 1)
    for n_threads in (2, 3):
        for a, b in zip(one, run_all(conv, x, wt, bias, dy, geo, True, pool, pool_strides,
                                     n_threads)):
            np.testing.assert_array_equal(a, b)


def test_input_relu_masks_dx_where_the_input_is_not_positive(simd_path):
    rng = np.random.default_rng(7)
    x, wt, bias, dy, geo = conv_maxpool_case(rng, 3, 12, 12, 16, 32, (3, 3), (1, 1), "same", (2, 2), (2, 2))
    x = np.maximum(x, 0)  # a relu's output: about half exact zeros
    plain = run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2)
    masked = run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2, input_relu=True)
    want = run_all(ref, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2, input_relu=True)
    for a, b in zip(plain[:4], masked[:4]):  # forward, dW and db are unchanged
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(masked[4], np.where(x > 0, plain[4], 0))
    assert_close(masked[4], want[4], np.float32)
    assert (plain[4][x == 0] != 0).any()  # so the mask did something


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("case", [GRID[0], GRID[6], GRID[13]], ids=grid_id)
def test_dropout_matches_reference(case, relu, simd_path):
    (kernel, strides, padding, (ci, co)), (pool, pool_strides) = case
    rng = np.random.default_rng(8)
    # 19 images: the backward's dW chunks put images of one mask on both threads
    x, wt, bias, dy, geo = conv_maxpool_case(rng, 19, 11, 10, ci, co, kernel, strides, padding, pool,
                                     pool_strides)
    dropout = (2**64 - 5, 0.3)  # a seed past 2**63 reaches the kernel unchanged
    got = run_all(conv, x, wt, bias, dy, geo, relu, pool, pool_strides, 2, dropout=dropout)
    want = run_all(ref, x, wt, bias, dy, geo, relu, pool, pool_strides, 2, dropout=dropout)
    np.testing.assert_array_equal(got[1], want[1])
    for g, w in zip(got[:1] + got[2:], want[:1] + want[2:]):
        assert_close(g, w, np.float32)
    plain = run_all(conv, x, wt, bias, dy, geo, relu, pool, pool_strides, 2)[0]
    assert 0.2 < np.mean(got[0][plain != 0] == 0) < 0.4  # the rate, where the pooling gave > 0
    for n_threads in (1, 3):
        for a, b in zip(got, run_all(conv, x, wt, bias, dy, geo, relu, pool, pool_strides,
                                     n_threads, dropout=dropout)):
            np.testing.assert_array_equal(a, b)


def test_dropout_equals_the_dropout_kernel_after_the_fused_step(simd_path):
    """Same mask, same values: the forward is the fused step, then dropout_forward of its
    output; the backward is dropout_backward of dy, then the fused step's backward."""
    rng = np.random.default_rng(9)
    x, wt, bias, dy, geo = conv_maxpool_case(rng, 5, 13, 13, 32, 64, (3, 3), (1, 1), "valid", (2, 2),
                                     (2, 2))
    seed, rate = 12345, 0.5
    plain = run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2)
    dropped = dropout_ops.dropout_forward(plain[0], seed, rate)
    dy_masked = dropout_ops.dropout_backward(dy, seed, rate)
    # the relu's backward reads the output after the dropout: positive where it was and is kept
    _, dx = conv_ops.conv2d_maxpool_backward(x, dy_masked, plain[0], plain[1], wt, (1, 1), "valid",
                                             (2, 2), (2, 2), relu=True, dw=plain[2], db=plain[3])
    fused_run = run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2, dropout=(seed, rate))
    np.testing.assert_array_equal(fused_run[0], dropped)
    np.testing.assert_array_equal(fused_run[1], plain[1])
    for a, b in zip(fused_run[2:], (plain[2], plain[3], dx)):
        np.testing.assert_array_equal(a, b)


def test_dropout_rate_is_checked_by_the_kernels():
    rng = np.random.default_rng(3)
    x, wt, bias, dy, geo = conv_maxpool_case(rng, 2, 8, 8, 3, 4, (3, 3), (1, 1), "valid", (2, 2), (2, 2))
    for rate in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2, dropout=(1, rate))


def test_without_dx_still_gives_dw():
    rng = np.random.default_rng(3)
    x, wt, bias, dy, geo = conv_maxpool_case(rng, 4, 28, 28, 1, 32, (3, 3), (1, 1), "valid", (2, 2),
                                     (2, 2))
    full = run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2)
    no_dx = run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2, need_dx=False)
    for a, b in zip(full[:4], no_dx[:4]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pool, pool_strides", [((2, 2), (2, 2)), ((3, 3), (2, 2))])
def test_argmax_outside_z_is_skipped_and_counted_as_by_the_twin(pool, pool_strides, simd_path):
    rng = np.random.default_rng(5)
    x, wt, bias, dy, geo = conv_maxpool_case(rng, 2, 8, 8, 3, 32, (3, 3), (1, 1), "valid", pool,
                                             pool_strides)
    out = np.empty(dy.shape, np.float32)
    argmax = np.empty(dy.shape, np.int32)
    conv.conv2d_maxpool_forward(x, wt, bias, out, argmax, *geo, False, *pool, *pool_strides, 2)
    argmax[0, 0, 0, :2] = -1
    argmax[1, -1, -1, 5] = 10**6
    results = []
    for module in (conv, ref):
        dw, db, dx = np.empty_like(wt), np.empty_like(bias), np.empty_like(x)
        skipped = module.conv2d_maxpool_backward(x, dy, out, argmax, wt, dw, db, dx, *geo, False,
                                                 *pool, *pool_strides, False, 2)
        results.append((skipped, dw, db, dx))
    (got, *got_grads), (want, *want_grads) = results
    assert got == want == 3
    for g, w in zip(got_grads, want_grads):
        assert_close(g, w, np.float32)
