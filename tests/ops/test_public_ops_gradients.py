"""Every differentiable op's gradient, through the engine (traced, planned, run backward), in
float64 against central differences of sum(f(x) * upstream)."""
import numpy as np
import pytest

from fastcnn import ops
from fastcnn.ops.function import Function
from conftest import numeric_grad


def check_gradients(fn, *arrays, wrt=None, rtol=1e-6, atol=1e-8, eps=1e-6, seed=0):
    """The engine's gradients of sum(fn(*arrays) * upstream) for the arguments ``wrt`` (all
    float ones by default) against central differences."""
    arrays = [np.array(a) for a in arrays]
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else wrt
    out = np.asarray(fn(*arrays))
    upstream = np.random.default_rng(seed).normal(size=out.shape)
    value, grads = Function(fn).value_and_grad(arrays, upstream, wrt)
    np.testing.assert_allclose(value, out, rtol=1e-12)
    for i, grad in zip(wrt, grads, strict=True):
        numeric = numeric_grad(lambda: float(np.sum(np.asarray(fn(*arrays)) * upstream)),
                               arrays[i], eps)
        np.testing.assert_allclose(grad, numeric, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of argument {i}")


def _rng():
    return np.random.default_rng(7)


def _apart(shape, low=0.3):
    """Values at least ``low`` away from zero and from each other: no kink of abs, max or
    clip within a finite-difference step."""
    rng = _rng()
    size = int(np.prod(shape))
    values = (np.arange(size) - size / 2 + 0.5) * low + rng.uniform(-0.05, 0.05, size)
    return rng.permutation(values).reshape(shape)


BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum"]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)),
                                    ((3,), ())], ids=str)
def test_binary_op_gradients(name, shapes):
    a = _apart(shapes[0])
    b = _apart(shapes[1]) + 0.11
    if name == "divide":
        b = np.abs(b) + 0.5  # well away from the pole
    check_gradients(getattr(ops, name), a, b)


def test_power_gradients():
    check_gradients(ops.power, np.abs(_apart((3, 4))) + 0.5, _apart((4,)))
    check_gradients(lambda x: x ** 3, _apart((3, 4)))


UNARY = {"negative": None, "square": None, "sqrt": "positive", "abs": None, "exp": None,
         "log": "positive", "log1p": "positive", "expm1": None, "log2": "positive",
         "log10": "positive", "sin": None, "cos": None}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_op_gradients(name):
    x = _apart((3, 4))
    if UNARY[name] == "positive":
        x = np.abs(x) + 0.2
    check_gradients(getattr(ops, name), x)


@pytest.mark.parametrize("axis", [None, 0, 2], ids=str)
def test_cumsum_gradients(axis):
    check_gradients(lambda v: ops.cumsum(v, axis=axis), _apart((2, 3, 4)))


def test_stop_gradient_passes_none():
    x = _apart((3, 4))
    _, (grad,) = Function(lambda v: v * 2 + ops.stop_gradient(v) * v).value_and_grad(
        [x], 1.0, [0])
    np.testing.assert_allclose(grad, 2 + x)


def test_clip_and_where_gradients():
    x = _apart((4, 5))
    check_gradients(lambda v: ops.clip(v, -1.0, 1.0), x)
    y = _apart((5,)) * 2
    check_gradients(lambda a, b: ops.where(a > 0, a * 2, b), x, y)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "std", "logsumexp"])
@pytest.mark.parametrize("axis", [None, 1, (0, 2), -1], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_gradients(name, axis, keepdims):
    fn = getattr(ops, name)
    check_gradients(lambda v: fn(v, axis=axis, keepdims=keepdims), _apart((2, 3, 4)))


def test_max_gradient_splits_evenly_at_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]])
    _, (grad,) = Function(lambda v: ops.max(v, axis=1)).value_and_grad([x], 1.0, [0])
    np.testing.assert_array_equal(grad, [[0, 0.5, 0.5], [0.5, 0, 0.5]])


SHAPE_FNS = {
    "reshape": lambda x: ops.reshape(x, (4, 6)),
    "transpose": lambda x: ops.transpose(x, (1, 2, 0)),
    "expand_dims": lambda x: ops.expand_dims(x, 1),
    "squeeze": lambda x: ops.squeeze(ops.expand_dims(x, 0)),
    "concatenate": lambda x: ops.concatenate([x, x * 2, x[:, :1]], axis=1),
    "stack": lambda x: ops.stack([x, x * 3], axis=1),
    "split": lambda x: ops.split(x, [1], axis=2)[1] * 2 + ops.split(x, [3], axis=2)[0][..., :1],
    "tile": lambda x: ops.tile(x, (1, 2, 3)),
    "repeat": lambda x: ops.repeat(x, 3, axis=1),
    "repeat_counts": lambda x: ops.repeat(x, np.array([2, 0, 1]), axis=1),
    "repeat_flat": lambda x: ops.repeat(x, 2),
    "pad": lambda x: ops.pad(x, ((1, 0), (0, 2), (1, 1)), constant_values=3.0),
    "cast": lambda x: ops.cast(x, "float32") * 1.0,
    "slice": lambda x: x[1:, ::2, -1] * x[:1, 1:, 0],
    "advanced_index": lambda x: x[:, [0, 0, 2]],
    "take": lambda x: ops.take(x, np.array([2, 0, 2]), axis=1),
    "take_flat": lambda x: ops.take(x, np.array([[1, 5], [1, 0]])),
    "take_along_axis": lambda x: ops.take_along_axis(x, np.array([[[3, 3], [0, 1], [2, 2]]]),
                                                     axis=2),
}


@pytest.mark.parametrize("name", sorted(SHAPE_FNS))
def test_shape_op_gradients(name):
    # through float32, central differences need a step far above float32's rounding; the
    # function is linear, so a large step costs nothing
    eps, rtol = (1e-2, 1e-5) if name == "cast" else (1e-6, 1e-6)
    check_gradients(SHAPE_FNS[name], _apart((2, 3, 4)), rtol=rtol, atol=1e-6, eps=eps)


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)),
                                    ((3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4,))],
                         ids=str)
def test_matmul_gradients(shapes):
    check_gradients(ops.matmul, _apart(shapes[0]), _apart(shapes[1]) * 0.5)


@pytest.mark.parametrize("subscripts,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,ij->i", [(3, 4), (3, 4)]), ("i,j->ij", [(3,), (4,)]),
    ("...ij,jk->...ik", [(2, 3, 4), (4, 5)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ijk->i", [(2, 3, 4)]), ("ij,k->i", [(2, 3), (4,)])], ids=str)
def test_einsum_gradients(subscripts, shapes):
    arrays = [_apart(s) * 0.3 for s in shapes]
    check_gradients(lambda *xs: ops.einsum(subscripts, *xs), *arrays)


def test_dot_and_tensordot_gradients():
    check_gradients(ops.dot, _apart((2, 3, 4)), _apart((5, 4, 2)) * 0.2)
    check_gradients(lambda a, b: ops.tensordot(a, b, axes=([1, 2], [1, 0])),
                    _apart((2, 3, 4)), _apart((4, 3, 5)) * 0.2)


def test_gradients_at_fan_out_are_summed():
    check_gradients(lambda x: x * x + ops.exp(x) * x - ops.sum(x, axis=0), _apart((3, 4)) * 0.2)
