"""fastcnn.ops on arrays against NumPy, over shapes, broadcasting and dtypes; and the shape and
dtype each op infers on symbolic tensors against what it returns on arrays."""
import numpy as np
import pytest

from fastcnn import ops
from fastcnn.engine.tensor import KerasTensor

SHAPE_PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((5,), ()), ((), ()),
               ((2, 3, 1), (1, 1, 5))]
DTYPES = [np.float32, np.float64, np.int32]


def _array(rng, shape, dtype, positive=False):
    a = rng.normal(size=shape) * 3
    if positive:
        a = np.abs(a) + 0.5
    return np.asarray(a).astype(dtype) if np.dtype(dtype).kind == "f" else \
        np.asarray(np.round(a)).astype(dtype)


BINARY = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
          "divide": np.true_divide, "maximum": np.maximum, "minimum": np.minimum,
          "power": np.power, "equal": np.equal, "not_equal": np.not_equal,
          "greater": np.greater, "greater_equal": np.greater_equal, "less": np.less,
          "less_equal": np.less_equal, "mod": np.mod, "floor_divide": np.floor_divide}
UNARY = {"negative": np.negative, "square": np.square, "sqrt": np.sqrt, "abs": np.abs,
         "exp": np.exp, "log": np.log, "log1p": np.log1p, "sign": np.sign, "expm1": np.expm1,
         "log2": np.log2, "log10": np.log10, "sin": np.sin, "cos": np.cos, "floor": np.floor,
         "round": np.round, "isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite,
         "stop_gradient": np.positive}


def _assert_same(got, want):
    assert isinstance(got, np.ndarray) and type(got) is np.ndarray
    assert got.shape == np.shape(want)
    assert got.dtype == np.asarray(want).dtype
    np.testing.assert_allclose(got, want, rtol=1e-6 if got.dtype == np.float32 else 1e-12,
                               equal_nan=True)


def _symbolic(shape, dtype):
    return KerasTensor(shape, np.dtype(dtype).name, any_rank=True)


def _check_spec(fn, arrays, result):
    """fn on symbolic tensors of the arrays' shapes and dtypes infers the result's."""
    out = fn(*[_symbolic(a.shape, a.dtype) for a in arrays])
    assert out.shape == result.shape
    assert np.dtype(out.dtype) == result.dtype


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_binary_ops_match_numpy(name, shapes, dtype, rng):
    positive = name in ("power", "mod", "floor_divide")
    a, b = (_array(rng, s, dtype, positive) for s in shapes)
    if name == "power":
        b = (b % 3).astype(dtype)
    fn = getattr(ops, name)
    with np.errstate(all="ignore"):
        want = BINARY[name](a, b)
    got = fn(a, b)
    _assert_same(got, want)
    _check_spec(fn, [a, b], got)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_keep_the_dtype_with_a_python_number(name, rng):
    a = _array(rng, (3, 4), np.float32, positive=True)
    got = getattr(ops, name)(a, 2.0)
    want = BINARY[name](a, 2.0)
    _assert_same(got, want)
    out = getattr(ops, name)(_symbolic((None, 4), "float32"), 2.0)
    assert out.shape == (None, 4) and out.dtype == want.dtype.name


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", [(3, 4), (5,), (), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_ops_match_numpy(name, shape, dtype, rng):
    a = _array(rng, shape, dtype, positive=name in ("sqrt", "log", "log1p", "log2", "log10"))
    got = getattr(ops, name)(a)
    _assert_same(got, UNARY[name](a))
    _check_spec(getattr(ops, name), [a], got)


@pytest.mark.parametrize("axis", [None, 0, 2, -1], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cumsum_matches_numpy(axis, dtype, rng):
    a = _array(rng, (3, 4, 5), dtype)
    got = ops.cumsum(a, axis=axis)
    want = np.cumsum(a, axis=axis)
    if dtype == np.float32:
        # running sums accumulate in double: each within one float32 rounding of the exact
        # sum (NumPy's float32 running sum drifts further)
        exact = np.cumsum(a.astype(np.float64), axis=axis)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_less(np.abs(got - exact), 6e-8 * np.abs(exact) + 1e-30)
    else:
        _assert_same(got, want)
    _check_spec(lambda x: ops.cumsum(x, axis=axis), [a], got)


def test_creation_functions_take_keras_dtypes():
    assert ops.zeros((2, 3)).dtype == np.float32 and ops.zeros((2, 3)).shape == (2, 3)
    np.testing.assert_array_equal(ops.ones(3, dtype="int32"), [1, 1, 1])
    np.testing.assert_array_equal(ops.full((2,), 7), [7, 7])
    np.testing.assert_array_equal(ops.eye(3, k=1), np.eye(3, k=1))
    assert ops.eye(2).dtype == np.float32
    assert ops.arange(5).dtype == np.int32 and ops.arange(0.0, 1.0, 0.25).dtype == np.float32
    np.testing.assert_array_equal(ops.arange(2, 8, 3), [2, 5])


def test_clip_where_and_logical_ops_match_numpy(rng):
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(4,))
    _assert_same(ops.clip(a, -0.5, 0.5), np.clip(a, -0.5, 0.5))
    _assert_same(ops.where(a > 0, a, b), np.where(a > 0, a, b))
    _assert_same(ops.logical_and(a > 0, b > 0), np.logical_and(a > 0, b > 0))
    _assert_same(ops.logical_not(a > 0), a <= 0)
    out = ops.where(_symbolic((None, 4), "bool"), _symbolic((None, 4), "float32"), 0.0)
    assert out.shape == (None, 4) and out.dtype == "float32"


REDUCTIONS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "var": np.var,
              "std": np.std, "prod": np.prod, "argmax": np.argmax, "argmin": np.argmin}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_reductions_match_numpy(name, axis, keepdims, dtype, rng):
    if name.startswith("arg") and isinstance(axis, tuple):
        return
    a = _array(rng, (3, 4, 5), dtype)
    fn = getattr(ops, name)
    got = fn(a, axis=axis, keepdims=keepdims)
    want = REDUCTIONS[name](a, axis=axis, keepdims=keepdims)
    if dtype == np.float32 and name in ("sum", "mean"):
        # float32 sums accumulate in double: against the float64 sum, within float32 rounding
        # of the terms' magnitude (NumPy's own float32 sum is no closer)
        exact = REDUCTIONS[name](a.astype(np.float64), axis=axis, keepdims=keepdims)
        scale = REDUCTIONS[name](np.abs(a).astype(np.float64), axis=axis, keepdims=keepdims)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_less(np.abs(got - exact), 1e-7 * scale + 1e-30)
        np.testing.assert_allclose(got, want, rtol=0, atol=4e-7 * float(scale.max()))
    else:
        _assert_same(got, want)
    _check_spec(lambda x: fn(x, axis=axis, keepdims=keepdims), [a], got)


@pytest.mark.parametrize("axis", [None, 1, (0, 1)], ids=str)
def test_logsumexp_matches_its_definition_and_stays_finite(axis, rng):
    a = rng.normal(size=(3, 4)) * 5
    want = np.log(np.sum(np.exp(a), axis=axis))
    _assert_same(ops.logsumexp(a, axis=axis), want)
    big = np.full((2, 3), 1000.0)
    np.testing.assert_allclose(ops.logsumexp(big, axis=1), 1000 + np.log(3))


def test_reductions_refuse_a_bad_axis(rng):
    with pytest.raises(ValueError, match="Expected axis in"):
        ops.sum(rng.normal(size=(3, 4)), axis=2)


SHAPE_CASES = [
    ("reshape", lambda x: ops.reshape(x, (4, -1)), lambda x: np.reshape(x, (4, -1))),
    ("transpose", lambda x: ops.transpose(x, (2, 0, 1)), lambda x: np.transpose(x, (2, 0, 1))),
    ("transpose_default", ops.transpose, np.transpose),
    ("expand_dims", lambda x: ops.expand_dims(x, 1), lambda x: np.expand_dims(x, 1)),
    ("expand_dims_many", lambda x: ops.expand_dims(x, (0, -1)),
     lambda x: np.expand_dims(x, (0, -1))),
    ("squeeze", lambda x: ops.squeeze(x[:, :1]), lambda x: np.squeeze(x[:, :1])),
    ("concatenate", lambda x: ops.concatenate([x, x * 2], axis=1),
     lambda x: np.concatenate([x, x * 2], axis=1)),
    ("stack", lambda x: ops.stack([x, x], axis=-1), lambda x: np.stack([x, x], axis=-1)),
    ("tile", lambda x: ops.tile(x, (2, 1, 3)), lambda x: np.tile(x, (2, 1, 3))),
    ("repeat", lambda x: ops.repeat(x, 2, axis=1), lambda x: np.repeat(x, 2, axis=1)),
    ("repeat_flat", lambda x: ops.repeat(x, 2), lambda x: np.repeat(x, 2)),
    ("pad", lambda x: ops.pad(x, ((0, 1), (2, 0), (1, 1))),
     lambda x: np.pad(x, ((0, 1), (2, 0), (1, 1)))),
    ("pad_reflect", lambda x: ops.pad(x, 1, mode="reflect"), lambda x: np.pad(x, 1, "reflect")),
    ("cast", lambda x: ops.cast(x, "int32"), lambda x: x.astype(np.int32)),
    ("slice", lambda x: x[1:, ::2, -1], lambda x: x[1:, ::2, -1]),
    ("slice_none", lambda x: x[None, ..., 0], lambda x: x[None, ..., 0]),
    ("take", lambda x: ops.take(x, np.array([2, 0, 2]), axis=1),
     lambda x: np.take(x, [2, 0, 2], axis=1)),
    ("take_flat", lambda x: ops.take(x, np.array([[1, 5], [7, 0]])),
     lambda x: np.take(x, [[1, 5], [7, 0]])),
    ("take_along_axis", lambda x: ops.take_along_axis(x, np.argsort(x, axis=2), axis=2),
     lambda x: np.sort(x, axis=2)),
    ("swapaxes", lambda x: ops.swapaxes(x, 0, 2), lambda x: np.swapaxes(x, 0, 2)),
]


@pytest.mark.parametrize("name,fn,want", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_shape_ops_match_numpy(name, fn, want, dtype, rng):
    a = _array(rng, (2, 3, 4), dtype)
    got = fn(a)
    _assert_same(got, want(a))
    if name != "take_along_axis":  # its indices come from the values
        _check_spec(fn, [a], got)


def test_split_matches_numpy(rng):
    a = rng.normal(size=(4, 6))
    for got, want in zip(ops.split(a, 3, axis=1), np.split(a, 3, axis=1), strict=True):
        _assert_same(got, want)
    for got, want in zip(ops.split(a, [1, 3]), np.split(a, [1, 3]), strict=True):
        _assert_same(got, want)
    outs = ops.split(_symbolic((None, 6), "float32"), 3, axis=1)
    assert [o.shape for o in outs] == [(None, 2)] * 3


def test_shape_of_symbolic_tensors_keeps_unknown_sizes():
    x = _symbolic((None, 3, 4), "float32")
    assert ops.shape(x) == (None, 3, 4)
    assert ops.reshape(x, (-1, 12)).shape == (None, 12)
    assert ops.reshape(x, (None, -1)).shape == (None, 12)
    assert ops.reshape(x, (None, 2, -1)).shape == (None, 2, 6)
    assert ops.reshape(x, (ops.shape(x)[0], 4, 3)).shape == (None, 4, 3)
    np.testing.assert_array_equal(ops.reshape(np.ones((5, 3, 4)), (None, -1)), np.ones((5, 12)))
    assert x[:, 1].shape == (None, 4)
    assert x[1:].shape == (None, 3, 4)
    assert ops.concatenate([x, x], axis=0).shape == (None, 3, 4)
    assert ops.mean(x, axis=0).shape == (3, 4)


MATRIX_SHAPES = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)),
                 ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4,))]


@pytest.mark.parametrize("shapes", MATRIX_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_matmul_matches_numpy(shapes, dtype, rng):
    a, b = (_array(rng, s, dtype) for s in shapes)
    got = ops.matmul(a, b)
    _assert_same(got, np.matmul(a, b))
    _check_spec(ops.matmul, [a, b], got)
    if isinstance(got, np.ndarray) and a.ndim > 1 and b.ndim > 1:
        assert ((_symbolic(a.shape, a.dtype) @ _symbolic(b.shape, b.dtype)).shape == got.shape)


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (4,)), ((2, 3, 4), (5, 4, 2)),
                                    ((), (3,))], ids=str)
def test_dot_and_tensordot_match_numpy(shapes, rng):
    a, b = (rng.normal(size=s) for s in shapes)
    _assert_same(ops.dot(a, b), np.dot(a, b))
    c, d = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 3, 5))
    _assert_same(ops.tensordot(c, d, axes=([1, 2], [1, 0])),
                 np.tensordot(c, d, axes=([1, 2], [1, 0])))


EINSUMS = [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
           ("ij->ji", [(3, 4)]), ("ij,ij->i", [(3, 4), (3, 4)]), ("i,j->ij", [(3,), (4,)]),
           ("...ij,jk->...ik", [(2, 3, 4), (4, 5)]), ("bhwc,cd->bhwd", [(2, 3, 3, 4), (4, 2)]),
           ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]), ("ij,jk", [(3, 4), (4, 5)]),
           ("ijk->", [(2, 3, 4)])]


@pytest.mark.parametrize("subscripts,shapes", EINSUMS, ids=[e[0] for e in EINSUMS])
def test_einsum_matches_numpy(subscripts, shapes, rng):
    arrays = [rng.normal(size=s) for s in shapes]
    got = ops.einsum(subscripts, *arrays)
    _assert_same(got, np.einsum(subscripts, *arrays))
    _check_spec(lambda *xs: ops.einsum(subscripts, *xs), arrays, got)


def test_conversions():
    a = np.arange(6.0).reshape(2, 3)
    assert type(ops.convert_to_tensor([[1, 2], [3, 4]], dtype="float32")) is np.ndarray
    assert ops.convert_to_tensor([1, 2], dtype="float32").dtype == np.float32
    assert type(ops.convert_to_numpy(a)) is np.ndarray
    x = _symbolic((None, 3), "float32")
    assert ops.convert_to_tensor(x) is x
    assert ops.convert_to_tensor(x, "float64").dtype == "float64"
    with pytest.raises(TypeError, match="no values"):
        ops.convert_to_numpy(x)


def test_symbolic_operators_record_the_ops():
    x = _symbolic((None, 3), "float32")
    for out in (x + 1, 1 - x, x * x, 2.0 / x, x ** 2, -x, abs(x), x @ np.ones((3, 2), np.float32),
                np.ones(3, np.float32) * x, x > 0, x == 1.0, x[:, 0]):
        assert isinstance(out, KerasTensor) and out.node is not None
    assert (x > 0).dtype == "bool"
    assert (x @ np.ones((3, 2), np.float32)).shape == (None, 2)


def test_symbolic_tensor_refuses_truth_numpy_functions_and_iteration():
    x = _symbolic((None, 3), "float32")
    with pytest.raises(TypeError, match="truth value"):
        bool(x > 0)
    with pytest.raises(TypeError, match="NumPy's exp cannot run on a symbolic tensor"):
        np.exp(x)
    with pytest.raises(TypeError, match="no values"):
        np.mean(x)
    with pytest.raises(TypeError, match="cannot be iterated"):
        list(x)


def test_broadcasting_mismatch_is_refused():
    with pytest.raises(ValueError, match="broadcast"):
        ops.add(_symbolic((None, 3), "float32"), _symbolic((None, 4), "float32"))
    with pytest.raises(ValueError):
        ops.add(np.ones((2, 3)), np.ones((2, 4)))


def test_bad_operands_and_arguments_are_refused_by_name():
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="Expected a tensor, an array of real numbers"):
        ops.add(x, None)
    with pytest.raises(TypeError, match="Expected a tensor, an array of real numbers"):
        ops.exp(np.array(["a"]))
    with pytest.raises(ValueError, match="within int64's range"):
        ops.multiply(x, 2**70)
    with pytest.raises(ValueError, match="Expected indices_or_sections to be a positive int"):
        ops.split(x, 0)
    with pytest.raises(ValueError, match="getitem: invalid arguments"):
        ops.getitem(x, 5)
    with pytest.raises(ValueError, match="Expected axis"):
        ops.batch_normalization(x, 0.0, 1.0, axis=4)
