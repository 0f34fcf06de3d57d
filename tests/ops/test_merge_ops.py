"""The merge wrappers: NumPy's sum and concatenation along any axis, the split that undoes it, the
arguments they refuse, and inputs in any layout or overlapping the output."""
import numpy as np
import pytest
from conftest import assert_refused, readonly, refusal_cases

from fastcnn._ops import merge as merge_ops

A = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
B = np.ones((2, 5, 4), np.float32)


def some(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


@refusal_cases(
    ("add not a list", lambda: merge_ops.add_forward(A), TypeError, ["inputs", "list", "ndarray"]),
    ("add none", lambda: merge_ops.add_forward([]), ValueError, ["inputs", "at least one"]),
    ("add shapes", lambda: merge_ops.add_forward([A, B]), ValueError,
     ["one shape", "(2, 3, 4)", "(2, 5, 4)"]),
    ("add dtype", lambda: merge_ops.add_forward([A, A.astype(complex)]), TypeError,
     ["inputs[1]", "complex128"]),
    ("add out shape", lambda: merge_ops.add_forward([A, A], out=np.empty((2, 3), np.float32)),
     ValueError, ["out", "(2, 3, 4)", "(2, 3)"]),
    ("add out dtype", lambda: merge_ops.add_forward([A, A.astype(np.float64)], out=A.copy()),
     ValueError, ["out", "float64", "float32"]),
    ("add out readonly", lambda: merge_ops.add_forward([A], out=readonly(A)), ValueError,
     ["out", "writeable=False"]),
    ("concat rank", lambda: merge_ops.concatenate_forward([A, B[0]]), ValueError,
     ["one rank", "(2, 3, 4)", "(5, 4)"]),
    ("concat scalars", lambda: merge_ops.concatenate_forward([np.float32(1), np.float32(2)]),
     ValueError, ["rank", "at least 1", "()"]),
    ("concat other axis", lambda: merge_ops.concatenate_forward([A, B], axis=-1), ValueError,
     ["except along axis 2", "(2, 3, 4)", "(2, 5, 4)"]),
    ("concat axis range", lambda: merge_ops.concatenate_forward([A, B], axis=3), ValueError,
     ["axis", "[-3, 3)", "axis=3"]),
    ("concat axis negative", lambda: merge_ops.concatenate_forward([A, B], axis=-4), ValueError,
     ["axis", "axis=-4"]),
    ("concat axis bool", lambda: merge_ops.concatenate_forward([A, B], axis=True), ValueError,
     ["axis", "axis=True"]),
    ("concat axis float", lambda: merge_ops.concatenate_forward([A, B], axis=1.0), ValueError,
     ["axis", "axis=1.0"]),
    ("concat not a list", lambda: merge_ops.concatenate_forward("AB"), TypeError,
     ["inputs", "list", "str"]),
    ("concat out", lambda: merge_ops.concatenate_forward([A, B], axis=1, out=np.empty((2, 7, 4))),
     ValueError, ["out", "(2, 8, 4)", "(2, 7, 4)", "float32"]),
    ("split sizes sum", lambda: merge_ops.concatenate_backward(A, [1, 1], axis=1), ValueError,
     ["sizes", "add up", "3", "axis 1", "(1, 1)"]),
    ("split sizes negative", lambda: merge_ops.concatenate_backward(A, [4, -1], axis=1),
     ValueError, ["sizes", "non-negative", "[4, -1]"]),
    ("split sizes empty", lambda: merge_ops.concatenate_backward(A, [], axis=1), ValueError,
     ["sizes", "non-empty"]),
    ("split sizes int", lambda: merge_ops.concatenate_backward(A, 3, axis=1), ValueError,
     ["sizes", "sizes=3"]),
    ("split axis", lambda: merge_ops.concatenate_backward(A, [4], axis=5), ValueError,
     ["axis", "axis=5"]),
    ("split dy scalar", lambda: merge_ops.concatenate_backward(np.float32(1), [1]), ValueError,
     ["dy", "rank", "()"]),
    ("split outs count", lambda: merge_ops.concatenate_backward(A, [1, 2], axis=1, outs=[A]),
     ValueError, ["outs", "2 arrays", "received 1"]),
    ("split outs type", lambda: merge_ops.concatenate_backward(A, [3], axis=1, outs=A), TypeError,
     ["outs", "ndarray"]),
    ("split outs shape", lambda: merge_ops.concatenate_backward(
        A, [1, 2], axis=1, outs=[np.empty((2, 1, 4), np.float32), np.empty((2, 1, 4), np.float32)]),
     ValueError, ["outs[1]", "(2, 2, 4)", "(2, 1, 4)"]),
)
def test_refusals(call, exc, fragments):
    assert_refused(call, exc, fragments)


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_is_numpys_sum_in_order(k, dtype, rng):
    inputs = [some(rng, (3, 5, 7, 2), dtype) for _ in range(k)]
    want = inputs[0].copy()
    for x in inputs[1:]:
        want += x
    got = merge_ops.add_forward(inputs)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


def test_add_promotes_as_numpy_among_float32_and_float64(rng):
    x, y = some(rng, (4, 3)), some(rng, (4, 3), np.float64)
    assert merge_ops.add_forward([x, x]).dtype == np.float32
    got = merge_ops.add_forward([x, y])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, x + y)
    ints = merge_ops.add_forward([np.arange(3), np.arange(3, dtype=np.uint8)])
    assert ints.dtype == np.float32
    np.testing.assert_array_equal(ints, [0, 2, 4])


def test_add_accumulates_into_inputs_0(rng):
    """The engine's grad_total += grad: out is inputs[0] itself."""
    total, grad = some(rng, (50, 40, 3)), some(rng, (50, 40, 3))
    want = total + grad
    got = merge_ops.add_forward([total, grad], out=total, n_threads=2)
    assert got is total
    np.testing.assert_array_equal(total, want)


def test_add_copies_an_input_that_overlaps_out_shifted(rng):
    buffer = some(rng, 20_001)
    x, out = buffer[:-1], buffer[1:]
    want = x + x
    merge_ops.add_forward([x, x], out=out)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("layout", ["strided", "fortran", "readonly", "list", "reversed"])
def test_inputs_in_any_layout_are_copied_not_reinterpreted(layout, rng):
    x = some(rng, (4, 6, 5))
    odd = {"strided": np.repeat(x, 2, axis=-1)[..., ::2], "fortran": np.asfortranarray(x),
           "readonly": readonly(x), "list": x.tolist(), "reversed": x[::-1].copy()[::-1]}[layout]
    y = some(rng, (4, 6, 5))
    values = np.asarray(odd)  # float64 from a list, as NumPy reads it
    np.testing.assert_array_equal(merge_ops.add_forward([odd, y]), values + y)
    np.testing.assert_array_equal(merge_ops.concatenate_forward([y, odd], axis=1),
                                  np.concatenate([y, values], axis=1))
    parts = merge_ops.concatenate_backward(odd, [2, 3], axis=-1)
    np.testing.assert_array_equal(parts[0], x[..., :2])
    np.testing.assert_array_equal(parts[1], x[..., 2:])


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -2, -3, -4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_concatenate_is_numpys_along_any_axis(axis, dtype, rng):
    sizes = [3, 1, 0, 2]
    shape = (2, 3, 4, 5)
    inputs = [some(rng, (*shape[:axis % 4], size, *shape[axis % 4 + 1:]), dtype) for size in sizes]
    got = merge_ops.concatenate_forward(inputs, axis=axis)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, np.concatenate(inputs, axis=axis))


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -2, -3, -4])
def test_concatenate_backward_is_numpys_split(axis, rng):
    shape, sizes = (6, 7, 5, 9), [2, 0, 3, 1]
    total = shape[axis]
    sizes = [min(s, total - sum(sizes[:i])) for i, s in enumerate(sizes)]
    sizes[-1] += total - sum(sizes)
    dy = some(rng, shape)
    got = merge_ops.concatenate_backward(dy, sizes, axis=axis)
    want = np.split(dy, np.cumsum(sizes)[:-1], axis=axis)
    assert isinstance(got, list) and len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.flags.c_contiguous and g.dtype == np.float32
        np.testing.assert_array_equal(g, w)


def test_concatenate_backward_undoes_the_forward_into_the_given_outs(rng):
    inputs = [some(rng, (3, 4, n, 2), np.float64) for n in (1, 5, 2)]
    dy = merge_ops.concatenate_forward(inputs, axis=2)
    outs = [np.full(x.shape, np.nan) for x in inputs]
    got = merge_ops.concatenate_backward(dy, [1, 5, 2], axis=2, outs=tuple(outs))
    assert all(g is o for g, o in zip(got, outs))
    for g, x in zip(got, inputs):
        np.testing.assert_array_equal(g, x)


def test_empty_outer_dimension_and_parts_of_no_width(rng):
    inputs = [np.empty((0, 3, 2), np.float32), np.empty((0, 1, 2), np.float32)]
    got = merge_ops.concatenate_forward(inputs, axis=1)
    assert got.shape == (0, 4, 2)
    assert [g.shape for g in merge_ops.concatenate_backward(got, [3, 1], axis=1)] == [
        (0, 3, 2), (0, 1, 2)]
    x = some(rng, (2, 3))
    np.testing.assert_array_equal(
        merge_ops.concatenate_forward([x, np.empty((2, 0), np.float32)], axis=1), x)
    assert merge_ops.add_forward([np.empty((0, 4))] * 3).shape == (0, 4)


def test_concatenate_copies_an_input_that_overlaps_out(rng):
    buffer = some(rng, (10, 3))
    x, y = some(rng, (5, 3)), buffer[:5]  # y is C-contiguous and is out's first half
    want = np.concatenate([x, y], axis=0)
    merge_ops.concatenate_forward([x, y], axis=0, out=buffer)
    np.testing.assert_array_equal(buffer, want)


def test_concatenate_backward_copies_dy_when_an_out_overlaps_it(rng):
    dy = some(rng, (8, 3))
    want = np.split(dy.copy(), 2)
    got = merge_ops.concatenate_backward(dy, [4, 4], axis=0, outs=[dy[4:], dy[:4]])  # a swap
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_results_do_not_depend_on_the_thread_count(n_threads, rng):
    inputs = [rng.standard_normal((64, 33, 17)).astype(np.float32) * 10.0 ** e for e in (-5, 0, 5)]
    want = (inputs[0] + inputs[1]) + inputs[2]
    np.testing.assert_array_equal(merge_ops.add_forward(inputs, n_threads=n_threads), want)
    joined = merge_ops.concatenate_forward(inputs, axis=0, n_threads=n_threads)
    np.testing.assert_array_equal(joined, np.concatenate(inputs, axis=0))
    for g, x in zip(merge_ops.concatenate_backward(joined, [64] * 3, axis=0, n_threads=n_threads),
                    inputs):
        np.testing.assert_array_equal(g, x)
