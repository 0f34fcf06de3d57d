"""The fused convolution + max pooling kernels (float32) against their NumPy twin and against
the separate kernels, and the model step that uses them."""
import inspect
import itertools
import zlib

import numpy as np
import pytest

import fastcnn
from fastcnn import _reference as ref
from fastcnn import layers
from fastcnn._ops import conv as conv_ops
from fastcnn._ops import dropout as dropout_ops
from fastcnn._ops import pool as pool_ops
from fastcnn._ext import conv
from fastcnn.layers import fused
from test_conv_kernels import assert_close, panel_bytes, simd_path  # noqa: F401 (fixtures)
from test_conv_kernels import make_case as conv_case


@pytest.mark.parametrize("name", ["conv2d_maxpool_forward", "conv2d_maxpool_backward"])
def test_signature_matches_reference(name):
    params = inspect.signature(getattr(conv, name)).parameters
    assert list(params) == list(inspect.signature(getattr(ref, name)).parameters)


def make_case(rng, n, h, w, ci, co, kernel, strides, padding, pool, pool_strides):
    """The conv case of test_conv_kernels, with dy the gradient of the pooled output."""
    x, wt, bias, dz, geo = conv_case(rng, np.float32, n, h, w, ci, co, kernel, strides, padding)
    (oh, ow), (ph, pw), (psh, psw) = dz.shape[1:3], pool, pool_strides
    dy = rng.standard_normal((n, (oh - ph) // psh + 1, (ow - pw) // psw + 1, co)).astype(np.float32)
    return x, wt, bias, dy, geo


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
    x, wt, bias, dy, geo = make_case(rng, 3, 11, 10, ci, co, kernel, strides, padding, pool,
                                     pool_strides)
    got = run_all(conv, x, wt, bias, dy, geo, relu, pool, pool_strides, 2)
    want = run_all(ref, x, wt, bias, dy, geo, relu, pool, pool_strides, 2)
    np.testing.assert_array_equal(got[1], want[1])  # the argmax, exactly
    for g, w in zip(got[:1] + got[2:], want[:1] + want[2:]):
        assert_close(g, w, np.float32)


def test_forward_in_k_slices_matches_reference(panel_bytes):
    rng = np.random.default_rng(2)
    x, wt, bias, dy, geo = make_case(rng, 2, 13, 13, 32, 64, (3, 3), (1, 1), "valid", (2, 2), (2, 2))
    got = run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2)
    want = run_all(ref, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2)
    assert_close(got[0], want[0], np.float32)


def test_equals_the_separate_kernels_on_mnist_conv2(simd_path):
    """Cutting the 11x11 conv output to the 10x10 the pooling reads changes no result."""
    rng = np.random.default_rng(1)
    x, wt, bias, dy, geo = make_case(rng, 9, 13, 13, 32, 64, (3, 3), (1, 1), "valid", (2, 2),
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
    x, wt, bias, dy, geo = make_case(rng, 19, 9, 10, ci, co, kernel, strides, padding, pool,
                                     pool_strides)
    one = run_all(conv, x, wt, bias, dy, geo, True, pool, pool_strides, 1)
    for n_threads in (2, 3):
        for a, b in zip(one, run_all(conv, x, wt, bias, dy, geo, True, pool, pool_strides,
                                     n_threads)):
            np.testing.assert_array_equal(a, b)


def test_input_relu_masks_dx_where_the_input_is_not_positive(simd_path):
    rng = np.random.default_rng(7)
    x, wt, bias, dy, geo = make_case(rng, 3, 12, 12, 16, 32, (3, 3), (1, 1), "same", (2, 2), (2, 2))
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
    x, wt, bias, dy, geo = make_case(rng, 19, 11, 10, ci, co, kernel, strides, padding, pool,
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
    x, wt, bias, dy, geo = make_case(rng, 5, 13, 13, 32, 64, (3, 3), (1, 1), "valid", (2, 2),
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


def test_dropout_rate_is_checked():
    rng = np.random.default_rng(3)
    x, wt, bias, dy, geo = make_case(rng, 2, 8, 8, 3, 4, (3, 3), (1, 1), "valid", (2, 2), (2, 2))
    for rate in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            conv_ops.conv2d_maxpool_forward(x, wt, bias, (1, 1), "valid", (2, 2), (2, 2),
                                            dropout=(1, rate))
        with pytest.raises(ValueError, match="rate"):
            run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2, dropout=(1, rate))


def test_without_dx_still_gives_dw():
    rng = np.random.default_rng(3)
    x, wt, bias, dy, geo = make_case(rng, 4, 28, 28, 1, 32, (3, 3), (1, 1), "valid", (2, 2),
                                     (2, 2))
    full = run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2)
    no_dx = run_all(conv, x, wt, bias, dy, geo, True, (2, 2), (2, 2), 2, need_dx=False)
    for a, b in zip(full[:4], no_dx[:4]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pool, pool_strides", [((2, 2), (2, 2)), ((3, 3), (2, 2))])
@pytest.mark.parametrize("co", [32, 5])
def test_argmax_outside_its_window_is_an_error(pool, pool_strides, co):
    rng = np.random.default_rng(4)
    x, wt, bias, dy, _ = make_case(rng, 2, 8, 8, 3, co, (3, 3), (1, 1), "valid", pool,
                                   pool_strides)
    out, argmax = conv_ops.conv2d_maxpool_forward(x, wt, bias, (1, 1), "valid", pool, pool_strides)
    for bad in (-1, int(argmax[0, -1, -1, 0]), 10**6):  # the last window's cell is not the first's
        corrupt = argmax.copy()
        corrupt[0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match="argmax"):
            conv_ops.conv2d_maxpool_backward(x, dy, out, corrupt, wt, (1, 1), "valid", pool,
                                             pool_strides)


def test_ops_check_shapes():
    x = np.zeros((2, 6, 6, 3), np.float32)
    wt = np.zeros((3, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match="pool_size"):
        conv_ops.conv2d_maxpool_forward(x, wt, None, (1, 1), "valid", (5, 5), (5, 5))
    out, argmax = conv_ops.conv2d_maxpool_forward(x, wt, None, (1, 1), "valid", (2, 2), (2, 2))
    with pytest.raises(ValueError, match="dy"):
        conv_ops.conv2d_maxpool_backward(x, np.zeros((2, 3, 3, 4)), out, argmax, wt, (1, 1), "valid",
                                         (2, 2), (2, 2))


def convnet(seed):
    fastcnn.utils.set_random_seed(seed)
    return fastcnn.Sequential([
        layers.Input((12, 12, 2)),
        layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, padding="same"), layers.MaxPooling2D(2, strides=1),
        layers.Flatten(), layers.Dense(3, activation="softmax")])


def test_model_runs_conv_and_pool_as_one_step():
    model = convnet(0)
    model.compile("adam", "sparse_categorical_crossentropy")
    assert [type(s).__name__ for s in model._steps] == [
        "Conv2D", "Conv2DMaxPooling2D", "Conv2DMaxPooling2D", "Flatten", "Dense"]
    # the first conv's relu backward is left to the fused step after it; the second fused step's
    # input is a pooling's, whose relu the first fused step already handles
    assert model.layers[0].relu_grad_applied_by_next
    assert [s.input_relu for s in model._steps[1:3]] == [True, False]
    # a layer called on its own is still just that layer
    x = np.random.default_rng(5).random((2, 12, 12, 2), dtype=np.float32)
    assert model.layers[1](model.layers[0](x)).shape == (2, 10, 10, 8)


def train_with_and_without(monkeypatch, attr, off, build, check):
    """Trains build() twice, the second time with Conv2DMaxPooling2D.<attr> replaced by off;
    check(model, first) runs after each compile. Returns (weights and predictions, losses) of
    each."""
    rng = np.random.default_rng(6)
    x = rng.random((40, 12, 12, 2), dtype=np.float32)
    y = rng.integers(0, 3, 40)
    results = []
    for first in (True, False):
        if not first:
            monkeypatch.setattr(fused.Conv2DMaxPooling2D, attr, staticmethod(off))
        model = build()
        model.compile("adam", "sparse_categorical_crossentropy")
        check(model, first)
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        results.append((model.get_weights() + [model.predict(x, verbose=0)],
                        history.history["loss"]))
    return results


def test_fused_training_equals_unfused(monkeypatch):
    def check(model, fuse):
        assert any(isinstance(s, fused.Conv2DMaxPooling2D) for s in model._steps) == fuse

    (fused_run, _), (plain_run, _) = train_with_and_without(
        monkeypatch, "applies", lambda a, b: False, lambda: convnet(1), check)
    for a, b in zip(fused_run, plain_run):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def dropout_net(seed, flatten):
    fastcnn.utils.set_random_seed(seed)
    return fastcnn.Sequential([
        layers.Input((12, 12, 2)),
        layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu", padding="same"), layers.MaxPooling2D(2),
        *([layers.Flatten()] if flatten else []), layers.Dropout(0.4),
        *([] if flatten else [layers.Flatten()]), layers.Dense(3, activation="softmax")])


@pytest.mark.parametrize("flatten", [True, False], ids=["flatten-dropout", "dropout-flatten"])
def test_dropout_after_the_fused_step_runs_inside_it(flatten, monkeypatch):
    """The fused step takes a Dropout after the pooling (and Flatten, which moves after it), and
    trains bitwise as the Dropout layer would on its own, with the same masks."""
    def check(model, take):
        names = [type(s).__name__ for s in model._steps]
        assert names == (["Conv2DMaxPooling2D"] * 2 + ["Flatten", "Dense"] if take else
                         ["Conv2DMaxPooling2D"] * 2 + ["Flatten", "Dropout"][::1 if flatten else -1]
                         + ["Dense"])
        assert (model._steps[1].dropout is model.layers[5 if flatten else 4]) == take

    (inside, inside_loss), (apart, apart_loss) = train_with_and_without(
        monkeypatch, "takes", lambda d: False, lambda: dropout_net(2, flatten), check)
    for a, b in zip(inside, apart):
        np.testing.assert_array_equal(a, b)
    assert inside_loss == apart_loss


def test_a_dropout_not_right_after_the_fused_step_stays_a_layer():
    model = fastcnn.Sequential([
        layers.Input((12, 12, 2)), layers.Conv2D(4, 3), layers.MaxPooling2D(2), layers.Flatten(),
        layers.Dense(8), layers.Dropout(0.5), layers.Dense(3)])
    model.compile("adam", "sparse_categorical_crossentropy")
    assert [type(s).__name__ for s in model._steps] == [
        "Conv2DMaxPooling2D", "Flatten", "Dense", "Dropout", "Dense"]
    assert model._steps[0].dropout is None
