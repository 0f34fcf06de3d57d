"""The elementwise merge kernels (Add, Subtract, Multiply, Average, Maximum, Minimum with
broadcasting) and the transpose they give Permute: NumPy's broadcasting and left-to-right fold
as the forward oracle, bitwise; central differences in float64 and torch for the gradients;
TensorFlow's tie rule for Maximum/Minimum; any thread count bitwise alike; refusals."""
import numpy as np
import pytest

from fastcnn._ext import merge as kernels
from fastcnn._ops import merge
from conftest import numeric_grad, variants

OPS = ("add", "subtract", "multiply", "average", "maximum", "minimum")
DTYPES = [np.float32, np.float64]
# Shapes broadcast by NumPy's rules: equal, a size of 1 along leading, middle and last axes, a
# lower rank, a scalar-like (1,) and a long last axis crossing the kernels' blocks and runs.
BROADCASTS = [
    [(4, 5, 6), (4, 5, 6)],
    [(3, 1, 6), (3, 5, 1)],
    [(2, 3, 4, 5), (5,)],
    [(2, 3, 4, 5), (1, 3, 1, 5), (2, 1, 4, 1)],
    [(7, 1), (1,)],
    [(2, 9000), (1, 9000)],
    [(3, 700), (3, 1)],
    [(0, 4), (1, 4)],
]


def case(rng, shapes, op, dtype):
    if op == "subtract":
        shapes = shapes[:2]
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def numpy_fold(op, xs):
    """Keras's merge: the inputs folded left to right (average: the sum over the count)."""
    combine = {"add": np.add, "average": np.add, "subtract": np.subtract,
               "multiply": np.multiply, "maximum": np.maximum, "minimum": np.minimum}[op]
    total = xs[0]
    for x in xs[1:]:
        total = combine(total, x)
    return total / len(xs) if op == "average" else total


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
@pytest.mark.parametrize("op", OPS)
def test_forward_is_numpys_left_to_right_fold_bitwise(op, shapes, dtype, rng):
    xs = case(rng, shapes, op, dtype)
    got = merge.elementwise_forward(op, xs, n_threads=2)
    want = numpy_fold(op, xs)
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def objective_grads(op, xs, upstream):
    """The kernels' gradients of sum(op(xs) * upstream) with respect to each input."""
    return [merge.elementwise_backward(op, upstream, xs, i, n_threads=2) for i in range(len(xs))]


@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(2, 1, 3), (1, 4, 3), (4, 1)],
                                    [(5, 3), (1,)]], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_gradients_match_central_differences_in_float64(op, shapes, rng):
    xs = case(rng, shapes, op, np.float64)
    upstream = rng.standard_normal(np.broadcast_shapes(*(x.shape for x in xs)))
    grads = objective_grads(op, xs, upstream)
    for x, g in zip(xs, grads):
        numeric = numeric_grad(lambda: float(np.sum(numpy_fold(op, xs) * upstream)), x)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


TORCH_FOLDS = {"add": lambda a, b: a + b, "subtract": lambda a, b: a - b,
               "multiply": lambda a, b: a * b, "average": lambda a, b: a + b,
               "maximum": lambda a, b: __import__("torch").maximum(a, b),
               "minimum": lambda a, b: __import__("torch").minimum(a, b)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BROADCASTS[:7], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_forward_and_gradients_match_torch(op, shapes, dtype, rng):
    torch = pytest.importorskip("torch")
    xs = case(rng, shapes, op, dtype)  # continuous values: no ties, where torch splits
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    total = ts[0]
    for t in ts[1:]:
        total = TORCH_FOLDS[op](total, t)
    if op == "average":
        total = total / len(ts)
    upstream = rng.standard_normal(total.shape).astype(dtype)
    (total * torch.tensor(upstream)).sum().backward()
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merge.elementwise_forward(op, xs), total.detach().numpy(), **tol)
    for got, t in zip(objective_grads(op, xs, upstream), ts):
        np.testing.assert_allclose(got, t.grad.numpy(), **tol)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_ties_send_the_whole_gradient_to_the_first_input_holding_the_extreme(op):
    """TensorFlow's maximum(x, y) passes the gradient to x where x >= y (minimum: x <= y), and
    Keras folds the inputs left to right, so of equal extremes the first input gets it all."""
    sign = 1 if op == "maximum" else -1
    a = sign * np.array([1.0, 2.0, 5.0, 3.0], np.float32)
    b = sign * np.array([1.0, 4.0, 5.0, 3.0], np.float32)  # ties a, ties c, ties both, ties both
    c = sign * np.array([0.0, 4.0, 5.0, 3.0], np.float32)
    dy = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    grads = objective_grads(op, [a, b, c], dy)
    np.testing.assert_array_equal(grads[0], [1, 0, 3, 4])
    np.testing.assert_array_equal(grads[1], [0, 2, 0, 0])
    extreme = numpy_fold(op, [a, b, c])
    holds = np.array([x == extreme for x in (a, b, c)])
    first = holds.argmax(axis=0)  # the first input that holds the extreme
    for i, g in enumerate(grads):
        np.testing.assert_array_equal(g, np.where(first == i, dy, 0))
    np.testing.assert_array_equal(sum(grads), dy)  # nothing lost or counted twice


def test_maximum_and_minimum_propagate_nan_as_numpy_does():
    a = np.array([np.nan, 1.0, 2.0], np.float32)
    b = np.array([0.0, np.nan, 1.0], np.float32)
    for op, f in (("maximum", np.maximum), ("minimum", np.minimum)):
        np.testing.assert_array_equal(merge.elementwise_forward(op, [a, b]), f(a, b))


def test_a_broadcast_gradient_is_the_sum_over_the_repeated_axes(rng):
    x = rng.standard_normal((4, 3, 5)).astype(np.float64)
    bias = rng.standard_normal((3, 1)).astype(np.float64)
    dy = rng.standard_normal((4, 3, 5))
    np.testing.assert_allclose(merge.elementwise_backward("add", dy, [x, bias], 1),
                               dy.sum(axis=(0, 2))[:, None], rtol=1e-12)
    np.testing.assert_allclose(merge.elementwise_backward("multiply", dy, [x, bias], 1),
                               (dy * x).sum(axis=(0, 2))[:, None], rtol=1e-12)
    np.testing.assert_allclose(merge.elementwise_backward("subtract", dy, [x, bias], 1),
                               -dy.sum(axis=(0, 2))[:, None], rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [[(64, 40, 40), (64, 40, 40), (64, 40, 40)],
                                    [(64, 40, 40), (1, 40, 1)], [(64, 1600), (64, 1)],
                                    [(300, 300), (1, 300)]], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_bitwise_the_same_for_any_thread_count(op, shapes, dtype, rng):
    xs = case(rng, shapes, op, dtype)
    dy = rng.standard_normal(np.broadcast_shapes(*(x.shape for x in xs))).astype(dtype)
    runs = []
    for n_threads in (1, 2, 3):
        runs.append([merge.elementwise_forward(op, xs, n_threads=n_threads)]
                    + [merge.elementwise_backward(op, dy, xs, i, n_threads=n_threads)
                       for i in range(len(xs))])
    for run in runs[1:]:
        for got, want in zip(run, runs[0]):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axes", [((2, 3, 4, 5), (0, 3, 1, 2)), ((2, 3, 4, 5), (0, 2, 3, 1)),
                                         ((3, 4, 5), (2, 1, 0)), ((6, 7), (1, 0)),
                                         ((2, 1, 3), (0, 2, 1)), ((5, 6), (0, 1)),
                                         ((64, 50, 70), (0, 2, 1))])
def test_transpose_is_numpys_and_thread_independent(shape, axes, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    for n_threads in (1, 2, 3):
        got = merge.transpose(x, axes, n_threads=n_threads)
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, x.transpose(axes))


def test_layout_collapses_to_one_axis_when_nothing_is_broadcast():
    out_shape, shape, strides = merge.broadcast_layout([(4, 5, 6), (4, 5, 6)])
    assert out_shape == (4, 5, 6) and shape.tolist() == [120] and strides.tolist() == [[1], [1]]
    _, shape, strides = merge.broadcast_layout([(4, 5, 6), (1, 5, 6)])
    assert shape.tolist() == [4, 30] and strides.tolist() == [[30, 1], [0, 1]]


def layout(shape, strides):
    return np.array(shape, np.intp), np.array(strides, np.intp)


@pytest.mark.parametrize("call, message", [
    (lambda x, out: kernels.elementwise_forward("modulo", [x, x], *layout([4], [[1], [1]]), out, 1),
     "op"),
    (lambda x, out: kernels.elementwise_forward("subtract", [x, x, x],
                                                *layout([4], [[1], [1], [1]]), out, 1), "two inputs"),
    (lambda x, out: kernels.elementwise_forward("copy", [x, x], *layout([4], [[1], [1]]), out, 1),
     "one input"),
    (lambda x, out: kernels.elementwise_forward("add", [x, x], *layout([4], [[1], [2]]), out, 1),
     "reach"),
    (lambda x, out: kernels.elementwise_forward("add", [x, x], *layout([4], [[1]]), out, 1),
     "strides of shape"),
    (lambda x, out: kernels.elementwise_forward("add", [x, x], *layout([2], [[1], [1]]), out, 1),
     "out of 2"),
    (lambda x, out: kernels.elementwise_backward("add", out, [x, x], *layout([4], [[1], [1]]), 2,
                                                 out, 1), "index"),
], ids=["op", "subtract", "copy", "reach", "strides", "out", "index"])
def test_kernels_refuse_layouts_that_reach_outside_their_arrays(call, message):
    x, out = np.ones(4, np.float32), np.empty(4, np.float32)
    with pytest.raises(ValueError, match=message):
        call(x, out)


@pytest.mark.parametrize("call, message", [
    (lambda: merge.elementwise_forward("modulo", [np.ones(3), np.ones(3)]), "op"),
    (lambda: merge.elementwise_forward("add", [np.ones(3), np.ones(4)]), "broadcast"),
    (lambda: merge.elementwise_forward("subtract", [np.ones(3)] * 3), "exactly two"),
    (lambda: merge.elementwise_forward("add", []), "inputs"),
    (lambda: merge.elementwise_backward("add", np.ones(4), [np.ones(3), np.ones(3)], 0), "dy"),
    (lambda: merge.elementwise_backward("add", np.ones(3), [np.ones(3), np.ones(3)], 2), "index"),
    (lambda: merge.transpose(np.ones((2, 3)), (0, 0)), "axes"),
    (lambda: merge.transpose(np.ones((2, 3)), (0, 1, 2)), "axes"),
])
def test_ops_refuse_bad_arguments_by_name(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("kind", ["contiguous", "strided", "readonly"])
@pytest.mark.parametrize("op", OPS)
def test_strided_and_read_only_inputs_give_the_same_results(op, kind, rng):
    xs = [rng.standard_normal((3, 4, 5)).astype(np.float32),
          rng.standard_normal((4, 1)).astype(np.float32)]
    dy = rng.standard_normal((3, 4, 5)).astype(np.float32)
    held = [variants(x)[kind] for x in xs]
    np.testing.assert_array_equal(merge.elementwise_forward(op, held), numpy_fold(op, xs))
    for i in range(2):
        np.testing.assert_array_equal(merge.elementwise_backward(op, variants(dy)[kind], held, i),
                                      merge.elementwise_backward(op, dy, xs, i))
    np.testing.assert_array_equal(merge.transpose(variants(xs[0])[kind], (2, 0, 1)),
                                  xs[0].transpose(2, 0, 1))
