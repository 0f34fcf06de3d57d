"""The planner's fusion of elementwise op chains into one program (engine/elementwise.py): the
same values and gradients, bit for bit, as the ops run one by one (fuse=False); a fused chain's
gradients against finite differences; the arrays a plan did not expect (run member by member);
a model and a custom loss that train through fused steps; the unary ops' program path on arrays
NumPy lays out otherwise."""
import numpy as np
import pytest

import fastcnn
from fastcnn import ops
from fastcnn._ops import threads
from fastcnn.engine.elementwise import ElementwiseStep
from fastcnn.engine.execution import Execution
from fastcnn.engine.graph import FlatGraph, Graph
from fastcnn.engine.plan import make_plan
from fastcnn.engine.tensor import KerasTensor
from fastcnn.ops.function import Function
from conftest import numeric_grad, step_names, training_plan

DTYPES = [np.float32, np.float64]


def mse(t, p):
    return ops.mean(ops.square(t - p), axis=-1)


def chain(t, p):
    """Every kind of member: unary functions, clip, constants, a row operand, a last-axis sum."""
    a = ops.exp(-ops.abs(t * p) / 3.0) + ops.clip(p, -0.5, 0.5) * ops.log1p(ops.square(t))
    b = ops.maximum(a, t) - ops.minimum(p, 0.25) + ops.sqrt(ops.abs(p) + 1.0)
    row = ops.max(ops.stop_gradient(p), axis=-1, keepdims=True)
    return ops.sum(b / (ops.cos(p) + 2.0) + ops.sin(t) * row, axis=-1, keepdims=True)


def read_inside_and_outside(t, p):
    """p read by the chain and by a max outside it, whose gradient part the engine adds in
    another order than the unfused plan does."""
    return ops.sum(ops.sin(p) * t * ops.max(p, axis=-1, keepdims=True), axis=-1)


def fan_out(t, p):
    """Values read at several places inside the chain."""
    a = ops.sin(p) * t
    return ops.mean(a * a + ops.cos(a) - ops.maximum(a, t), axis=-1)


def read_outside(t, p):
    """A chain value read by a matmul whose result another op reads with it: two chains."""
    a = ops.exp(p * 0.5)
    b = ops.matmul(a, np.full((5, 5), 0.1, a.dtype))
    return ops.sum(ops.log(a + b) * t, axis=-1)


def powers(t, p):
    """power by Python numbers and by a tensor."""
    return ops.mean((t - p) ** 2 + ops.abs(p) ** 1.5 + (ops.abs(t) + 0.5) ** p, axis=-1)


def huber(t, p):
    """where on comparisons made in the chain; a comparison read after the chain too."""
    e = t - p
    small = ops.abs(e) <= 0.5
    loss = ops.where(small, 0.5 * ops.square(e), 0.5 * ops.abs(e) - 0.125)
    return ops.mean(loss + ops.where(e > p, e, 0.0) * ops.cast(small, "float32"), axis=-1)


def periodic(t, p):
    """mod and floor_divide in the chain: values, and no gradient through them."""
    return ops.mean(ops.mod(t, 0.75) * p + ops.floor_divide(p, -0.5) * t + ops.mod(p, t),
                    axis=-1)


FUNCTIONS = {"mse": mse, "chain": chain, "fan_out": fan_out, "read_outside": read_outside,
             "powers": powers, "huber": huber, "periodic": periodic}


def run_plan(fn, arrays, upstream, fuse, feed=None):
    """(output, input gradients, plan) of fn's graph traced on ``arrays`` and run (on ``feed``,
    by default the arrays) by the engine's execution, fused or not."""
    graph = Function(fn).graph([(a.shape, a.dtype) for a in arrays])
    plan = make_plan(FlatGraph(graph, False), fuse, loss_outputs=[True],
                     input_grads=[True] * len(arrays))
    ex = Execution(plan)
    out = np.array(ex.forward(feed or arrays)[0])
    ex.backward([np.asarray(np.broadcast_to(upstream, out.shape), out.dtype)])
    return out, ex.input_gradients, plan


def _arrays(rng, dtype, shape=(6, 5)):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(2)]


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_fused_equals_unfused_bitwise(name, dtype, rng):
    fn, arrays = FUNCTIONS[name], _arrays(rng, dtype)
    upstream = rng.standard_normal(np.shape(fn(*arrays))).astype(dtype)
    fused = run_plan(fn, arrays, upstream, True)
    unfused = run_plan(fn, arrays, upstream, False)
    assert any(isinstance(s, ElementwiseStep) for s in fused[2].steps)
    assert not any(isinstance(s, ElementwiseStep) for s in unfused[2].steps)
    np.testing.assert_array_equal(fused[0], unfused[0])
    for got, want in zip(fused[1], unfused[1]):
        np.testing.assert_array_equal(got, want)
    # and Function's one-call path (one step) or execution gives the same again
    out, grads = Function(fn).value_and_grad(arrays, upstream, (0, 1))
    np.testing.assert_array_equal(out, fused[0])
    for got, want in zip(grads, fused[1]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(), (1,), (3, 1), (2, 3, 4)], ids=str)
def test_fused_chains_of_any_rank(shape, rng):
    """0-d values too; unfused, the engine cannot sum two gradient parts of a 0-d value, so
    those are checked against the same values laid out as (1,)."""
    def fn(t, p):
        return ops.exp(t * p) / (ops.abs(p) + 1.0) - ops.square(t)

    arrays = _arrays(rng, np.float64, shape)
    upstream = rng.standard_normal(shape)
    fused = run_plan(fn, arrays, upstream, True)
    assert isinstance(fused[2].steps[0], ElementwiseStep)
    unfused = run_plan(fn, [a.reshape(shape or (1,)) for a in arrays],
                       upstream.reshape(shape or (1,)), False)
    out, grads = Function(fn).value_and_grad(arrays, upstream, (0, 1))
    for got in (fused, (out, grads)):
        assert got[0].shape == shape
        np.testing.assert_array_equal(got[0], unfused[0].reshape(shape))
        for g, want in zip(got[1], unfused[1]):
            assert g.shape == shape
            np.testing.assert_array_equal(g, want.reshape(shape))


def test_chains_are_planned_as_documented():
    t = KerasTensor((4, 5), "float32")
    p = KerasTensor((4, 5), "float32")
    steps = make_plan(FlatGraph(Graph([t, p], mse(t, p)), False), True).steps
    assert len(steps) == 1 and len(steps[0].calls) == 3  # subtract, square, mean
    steps = make_plan(FlatGraph(Graph([t, p], read_outside(t, p)), False), True).steps
    # multiply and exp before the matmul; add, log, multiply and sum after it
    assert [len(s.calls) if isinstance(s, ElementwiseStep) else 1 for s in steps] == [2, 1, 4]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_gradient_parts_from_inside_and_outside_a_chain_agree_to_round_off(dtype, rng):
    arrays = _arrays(rng, dtype)
    upstream = rng.standard_normal(6).astype(dtype)
    fused, unfused = (run_plan(read_inside_and_outside, arrays, upstream, fuse)
                      for fuse in (True, False))
    np.testing.assert_array_equal(fused[0], unfused[0])
    for got, want in zip(fused[1], unfused[1]):
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=1e-30)


@pytest.mark.parametrize("fn", [mse, fan_out, read_outside, read_inside_and_outside, powers,
                                huber],
                         ids=lambda f: f.__name__)
def test_fused_gradients_match_finite_differences(fn, rng):
    arrays = _arrays(rng, np.float64, (3, 5))
    upstream = rng.standard_normal(np.shape(fn(*arrays)))
    _, grads = Function(fn).value_and_grad(arrays, upstream, (0, 1))
    for x, grad in zip(arrays, grads):
        numeric = numeric_grad(lambda: float(np.sum(np.asarray(fn(*arrays)) * upstream)), x)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_arrays_the_plan_did_not_expect_run_member_by_member(rng):
    """Traced on (None, 5) tensors: arrays that broadcast (1, 5) against (4, 5), or mix float32
    with float64, run the ops one by one, as fuse=False does."""
    def fn(t, p):
        return ops.sum(ops.square(t - p) * 2.0, axis=-1)

    t = KerasTensor((None, 5), "float32")
    p = KerasTensor((None, 5), "float32")
    graph = Graph([t, p], fn(t, p))
    feeds = [[rng.standard_normal((1, 5)).astype(np.float32),
              rng.standard_normal((4, 5)).astype(np.float32)],
             [rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal((4, 5))]]
    for feed in feeds:
        results = []
        for fuse in (True, False):
            plan = make_plan(FlatGraph(graph, False), fuse, loss_outputs=[True],
                             input_grads=[True, True])
            ex = Execution(plan)
            out = np.array(ex.forward(feed)[0])
            ex.backward([np.ones_like(out)])
            results.append((out, ex.input_gradients))
        np.testing.assert_array_equal(results[0][0], results[1][0])
        for got, want in zip(results[0][1], results[1][1]):
            assert got.shape == want.shape
            np.testing.assert_array_equal(got, want)


def test_fused_step_does_not_depend_on_the_thread_count(rng):
    arrays = _arrays(rng, np.float32, (400, 300))
    runs = []
    saved = threads.get_num_threads()
    try:
        for n in (1, 2, 3):
            threads.set_num_threads(n)
            runs.append(Function(chain).value_and_grad(arrays, 1.0, (0, 1)))
    finally:
        threads.set_num_threads(saved)
    for out, grads in runs[1:]:
        np.testing.assert_array_equal(out, runs[0][0])
        for got, want in zip(grads, runs[0][1]):
            np.testing.assert_array_equal(got, want)


def _model(fuse):
    fastcnn.utils.set_random_seed(3)
    inputs = fastcnn.Input((6,))
    x = fastcnn.layers.Dense(8)(inputs)
    x = ops.square(x) * 0.5 - ops.abs(x) + ops.exp(ops.minimum(x, 0.0))
    model = fastcnn.Model(inputs, fastcnn.layers.Dense(3)(x))
    model.compile(fastcnn.optimizers.SGD(0.05), "mse", fuse=fuse)
    return model


def test_a_model_trains_alike_fused_or_not(rng):
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = rng.standard_normal((32, 3)).astype(np.float32)
    models = [_model(fuse) for fuse in (True, False)]
    for model in models:
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    assert "ElementwiseStep" in step_names(training_plan(models[0]))
    assert "ElementwiseStep" not in step_names(training_plan(models[1], fuse=False))
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("weighted", [False, True])
def test_ops_mse_loss_equals_the_builtin(weighted, rng):
    y_pred = rng.standard_normal((16, 4)).astype(np.float32)
    y_true = rng.standard_normal((16, 4)).astype(np.float32)
    weights = rng.random(16) if weighted else None
    results = []
    for identifier in ("mse", mse):
        loss_fn = fastcnn.losses.get(identifier)
        grad, loss = np.empty_like(y_pred), np.empty(16, np.float32)
        loss_fn.forward_backward(y_pred, loss_fn.check_targets(y_true, (4,)), False, grad, loss,
                                 sample_weight=weights)
        results.append((loss, grad))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-6, atol=1e-9)


UNARY = ["exp", "log", "log1p", "expm1", "sqrt", "square", "abs", "negative", "sign", "sin",
         "cos", "floor", "log2", "log10"]


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_unary_ops_on_any_layout(name, dtype, rng):
    """Transposed and sliced views, 0-d arrays and empty arrays, against NumPy."""
    fn, want_fn = getattr(ops, name), getattr(np, name)
    base = np.abs(rng.standard_normal((6, 8))).astype(dtype) + 0.25
    cases = [base.T, base[::2, 1:5], np.asarray(base[0, 0]), base[:0], base[:, :0]]
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for x in cases:
        got = fn(x)
        assert got.shape == x.shape and got.dtype == x.dtype
        np.testing.assert_allclose(got, want_fn(x), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("exponent", [2, 3, 0.5, -1.5])
def test_power_by_a_number_matches_numpy(dtype, exponent, rng):
    x = np.abs(rng.standard_normal((4, 6))).astype(dtype) + 0.1
    got = ops.power(x, exponent)
    assert got.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, np.power(x, exponent), rtol=tol)
    _, (grad,) = Function(lambda v: v ** exponent).value_and_grad([x], 1.0, (0,))
    np.testing.assert_allclose(grad, exponent * np.power(x, exponent - 1), rtol=4 * tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_clip_program_matches_numpy(dtype, rng):
    x = (rng.standard_normal((5, 7)) * 2).astype(dtype)
    x[0, 0] = np.nan
    np.testing.assert_array_equal(ops.clip(x, -1, 0.5), np.clip(x, -1, 0.5))
    _, (grad,) = Function(lambda v: ops.clip(v, -1, 0.5)).value_and_grad([x], 1.0, (0,))
    np.testing.assert_array_equal(grad, ((x >= -1) & (x <= 0.5)).astype(dtype))
