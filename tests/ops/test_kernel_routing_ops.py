"""The ops that run on kernels rather than whole-array NumPy calls: comparisons, where, mod and
floor_divide of float arrays as programs of the program kernel (NumPy's results at the edges,
bool comparisons), var, std and logsumexp as compositions of kernel-backed ops (their values at
the edges and their gradients, traced, against finite differences), var of an array over
trailing axes as the same steps fused."""
import numpy as np
import pytest

import fastcnn
from fastcnn import ops
from fastcnn.ops import arithmetic
from fastcnn.ops import reductions
from fastcnn.ops.function import Function
from test_public_ops_gradients import check_gradients

EDGES = [0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 7.0, 0.3, -0.7, np.inf, -np.inf, np.nan]
PROGRAM_BINARY = ["mod", "floor_divide", "equal", "not_equal", "greater", "greater_equal",
                  "less", "less_equal"]


@pytest.fixture
def program_calls(monkeypatch):
    """The number of program kernel runs so far, in a one-item list."""
    calls = [0]
    run = arithmetic.programs.run

    def counted(*args, **kwargs):
        calls[0] += 1
        return run(*args, **kwargs)

    monkeypatch.setattr(arithmetic.programs, "run", counted)
    return calls


def _edge_pairs(dtype):
    a, b = np.meshgrid(np.array(EDGES, dtype), np.array(EDGES, dtype))
    return a.copy(), b.copy()


@pytest.mark.parametrize("name", PROGRAM_BINARY)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_float_binary_ops_run_the_program_kernel_with_numpys_results(name, dtype,
                                                                    program_calls):
    a, b = _edge_pairs(dtype)
    with np.errstate(all="ignore"):
        cases = [((a, b), getattr(np, name)(a, b)), ((a, -2.5), getattr(np, name)(a, -2.5)),
                 ((0.5, b), getattr(np, name)(0.5, b))]
    for args, want in cases:
        got = getattr(ops, name)(*args)
        assert type(got) is np.ndarray and got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    assert program_calls[0] == len(cases)


@pytest.mark.parametrize("name", PROGRAM_BINARY)
def test_integer_and_mixed_operands_stay_numpy(name, program_calls):
    i = np.array([[-7, 7], [3, -3]])
    with np.errstate(all="ignore"):
        for args in [(i, np.array([[2, -2], [-5, 5]])), (i.astype(np.float32), i * 1.0)]:
            got, want = getattr(ops, name)(*args), getattr(np, name)(*args)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    assert program_calls[0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_where_runs_the_program_kernel_under_bool_and_float_conditions(dtype, rng,
                                                                      program_calls):
    x, y = rng.normal(size=(2, 3, 70)).astype(dtype)
    conditions = [x > 0, np.where(x > 0.5, np.nan, np.where(x > 0, 0.0, -1.0)).astype(dtype)]
    for condition in conditions:
        for args in [(x, y), (x, 0.0), (-1.0, y)]:
            got, want = ops.where(condition, *args), np.where(condition, *args)
            assert got.dtype == want.dtype == dtype
            np.testing.assert_array_equal(got, want)
    assert program_calls[0] == 6
    got = ops.where(x[0] > 0, x[0], y[0, 0])  # broadcast: NumPy's where
    np.testing.assert_array_equal(got, np.where(x[0] > 0, x[0], y[0, 0]))
    assert program_calls[0] == 6


def test_where_gradients_through_the_program_kernel(program_calls):
    rng = np.random.default_rng(3)
    condition = rng.normal(size=(4, 5)) > 0
    x, y = rng.normal(size=(2, 4, 5))
    _, (dx, dy) = Function(lambda a, b: ops.where(condition, a, b)).value_and_grad(
        [x, y], np.arange(20.0).reshape(4, 5), [0, 1])
    np.testing.assert_array_equal(dx, np.where(condition, np.arange(20.0).reshape(4, 5), 0))
    np.testing.assert_array_equal(dy, np.where(condition, 0, np.arange(20.0).reshape(4, 5)))
    assert program_calls[0] > 0
    calls, upstream = program_calls[0], np.arange(20.0).reshape(4, 5)
    grads = arithmetic._Where().gradients(upstream, [condition, x, y], np.where(condition, x, y),
                                          [False, True, True])
    assert program_calls[0] == calls + 1  # the bool condition's gradient on the kernel too
    np.testing.assert_array_equal(grads[1], dx)
    np.testing.assert_array_equal(grads[2], dy)
    check_gradients(lambda a, b: ops.where(condition, a * 3, b), x, y)


def test_var_std_and_logsumexp_run_the_reduce_kernels(monkeypatch, rng):
    calls = []
    forward = reductions.reduce_ops.reduce_forward
    monkeypatch.setattr(reductions.reduce_ops, "reduce_forward",
                        lambda op, *a: calls.append(op) or forward(op, *a))
    x = rng.normal(size=(3, 4, 5))
    for fn, want in [(ops.var, np.var), (ops.std, np.std)]:
        np.testing.assert_allclose(fn(x, axis=(0, 2)), want(x, axis=(0, 2)), rtol=1e-13)
    np.testing.assert_allclose(ops.logsumexp(x, axis=1),
                               np.log(np.exp(x).sum(axis=1)), rtol=1e-13)
    assert calls == ["mean", "mean"] * 2 + ["max", "sum"]


@pytest.mark.parametrize("axis", [None, -1, (1, 2)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_eager_var_over_trailing_axes_is_its_composition_bit_for_bit(axis, dtype, rng):
    # one program after the mean, no array of deviations: the composition's steps, for any
    # thread count
    x = (rng.normal(size=(6, 5, 70)) * 30 + 4).astype(dtype)
    x[0, 0, :3] = [np.inf, np.nan, -0.0]
    composed = ops.mean(ops.square(ops.subtract(x, ops.mean(x, axis=axis, keepdims=True))),
                        axis=axis, keepdims=True)
    previous = fastcnn.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fastcnn.set_num_threads(threads)
            got = ops.var(x, axis=axis, keepdims=True)
            assert got.dtype == dtype and got.shape == composed.shape
            np.testing.assert_array_equal(got.view(f"u{got.itemsize}"),
                                          composed.view(f"u{got.itemsize}"))
    finally:
        fastcnn.set_num_threads(previous)
    np.testing.assert_array_equal(ops.var(x, axis=axis), composed.reshape(
        ops.var(x, axis=axis).shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_logsumexp_at_infinities_and_large_values(dtype):
    x = np.array([[-np.inf, -np.inf, -np.inf], [-np.inf, 0.0, np.log(3.0)],
                  [1e4, 1e4, -np.inf], [np.inf, 1.0, 2.0], [np.nan, 1.0, 2.0]], dtype)
    got = ops.logsumexp(x, axis=1)
    want = np.array([-np.inf, np.log(4.0), 1e4 + np.log(2.0), np.inf, np.nan], dtype)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-14)
    kept = ops.logsumexp(x, axis=(1,), keepdims=True)
    np.testing.assert_array_equal(kept, got[:, None])
    # the gradient is the softmax: none to -inf entries, finite for huge ones
    rows = np.array([[-np.inf, 0.0, np.log(3.0)], [1e4, 1e4, -np.inf]])
    _, (grad,) = Function(lambda v: ops.logsumexp(v, axis=1)).value_and_grad(
        [rows], np.ones(2), [0])
    np.testing.assert_allclose(grad, [[0, 0.25, 0.75], [0.5, 0.5, 0]], rtol=1e-14)


def test_std_gradient_at_zero_variance_is_nan():
    x = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    _, (grad,) = Function(lambda v: ops.std(v, axis=1)).value_and_grad([x], np.ones(2), [0])
    assert np.isnan(grad[0]).all() and np.isfinite(grad[1]).all()
    check_gradients(lambda v: ops.std(v, axis=1), x[1:])


@pytest.mark.parametrize("name", ["var", "std", "logsumexp"])
def test_compositions_inside_traced_layers_match_eager(name, rng):
    x = rng.normal(size=(4, 6)) * 20
    fn = getattr(ops, name)
    value, _ = Function(lambda v: fn(v * 1.0, axis=-1, keepdims=True)).value_and_grad(
        [x], np.ones((4, 1)), [0])
    np.testing.assert_allclose(value, fn(x, axis=-1, keepdims=True), rtol=1e-14)
    check_gradients(lambda v: fn(v * 0.5, axis=0), x)


def test_prod_and_cumsum_run_the_reduce_kernels(monkeypatch, rng):
    calls = []
    for name in ("reduce_forward", "cumsum"):
        kernel = getattr(reductions.reduce_ops, name)
        monkeypatch.setattr(reductions.reduce_ops, name,
                            lambda *a, kernel=kernel, name=name: calls.append(name) or kernel(*a))
    x = rng.normal(size=(3, 4, 5))
    np.testing.assert_allclose(ops.prod(x, axis=(0, 2)), np.prod(x, axis=(0, 2)), rtol=1e-13)
    np.testing.assert_array_equal(ops.cumsum(x, axis=1), np.cumsum(x, axis=1))
    _, (grad,) = Function(lambda v: ops.cumsum(v)).value_and_grad([x], np.ones(60), [0])
    np.testing.assert_array_equal(grad.reshape(-1), np.arange(60, 0, -1))
    assert calls == ["reduce_forward", "cumsum", "cumsum", "cumsum"]
    np.testing.assert_array_equal(ops.cumsum(np.arange(6).reshape(2, 3), axis=0),
                                  [[0, 1, 2], [3, 5, 7]])  # integers: NumPy's
    assert len(calls) == 4
