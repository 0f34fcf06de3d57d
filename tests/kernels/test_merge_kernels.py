"""The merge kernels against their twins, bitwise: the sum of k arrays is added left to right in
the twin's order, and concatenation only copies. Lengths around the kernels' steps, the output
being one of the inputs, and any thread count."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import merge

RUN = 4096  # elements per parallel step in the kernels (_threads.pxi)
DTYPES = [np.float32, np.float64]


def spread(rng, shape, dtype):
    """Values over many orders of magnitude, so that a sum in another order rounds differently."""
    return (rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 7, shape)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [0, 1, 255, 257, RUN - 1, RUN, RUN + 1, 3 * RUN + 17, 40_001])
def test_add_equals_the_twin_bitwise(n, k, dtype, rng):
    inputs = [spread(rng, n, dtype) for _ in range(k)]
    got, want = np.full(n, np.nan, dtype), np.full(n, np.nan, dtype)
    merge.add_forward(inputs, got, 2)
    ref.add_forward(inputs, want, 2)
    np.testing.assert_array_equal(got, want)


def test_add_sums_left_to_right():
    # (1 + 1e8) + -1e8 is 0 in float32, where 1e8's neighbours are 8 apart; 1 + (1e8 + -1e8) is 1.
    inputs = [np.full(5, v, np.float32) for v in (1, 1e8, -1e8)]
    out = np.empty(5, np.float32)
    merge.add_forward(inputs, out, 1)
    np.testing.assert_array_equal(out, 0)
    merge.add_forward(inputs[::-1], out, 1)
    np.testing.assert_array_equal(out, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, position", [(1, 0), (2, 0), (2, 1), (4, 0), (4, 2), (4, 3)])
@pytest.mark.parametrize("n", [257, 3 * RUN + 17, 40_001])
def test_add_out_may_be_any_input(n, k, position, dtype, rng):
    """out being inputs[0] is the engine's grad_total += grad; any other input works too."""
    inputs = [spread(rng, n, dtype) for _ in range(k)]
    want = np.empty(n, dtype)
    ref.add_forward(inputs, want, 1)
    merge.add_forward(inputs, inputs[position], 2)
    np.testing.assert_array_equal(inputs[position], want)


def test_add_out_may_be_every_input_at_once(rng):
    x = spread(rng, 50_000, np.float64)
    want = x + x + x
    merge.add_forward([x, x, x], x, 2)
    np.testing.assert_array_equal(x, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_is_bitwise_the_same_for_any_thread_count(dtype, rng):
    inputs = [spread(rng, 10 * RUN + 33, dtype) for _ in range(3)]
    results = []
    for n_threads in (1, 2, 3):
        out = np.empty_like(inputs[0])
        merge.add_forward(inputs, out, n_threads)
        results.append(out)
    for out in results[1:]:
        np.testing.assert_array_equal(out, results[0])


def test_add_refuses_no_inputs_inputs_of_another_length_or_dtype():
    out = np.empty(4, np.float32)
    with pytest.raises(ValueError, match="at least one input"):
        merge.add_forward([], out, 1)
    with pytest.raises(ValueError, match="4 elements, received 3 in input 1"):
        merge.add_forward([np.ones(4, np.float32), np.ones(3, np.float32)], out, 1)
    with pytest.raises(ValueError, match="dtype mismatch"):
        merge.add_forward([np.ones(4, np.float64)], out, 1)


# outer, the parts' widths: many narrow rows, parts of no width, and one row of parts wider than
# a run (a concatenation along the first axis)
COLUMNS = [(1, (1,)), (0, (3, 4)), (5, (0, 0, 2)), (7, (3, 0, RUN + 1, 1)),
           (1, (2 * RUN + 5, 3 * RUN, 1)), (3000, (16, 32, 5)), (2, (RUN - 1, RUN, 2))]


def parts_of(rng, outer, widths, dtype):
    return [spread(rng, (outer, w), dtype) for w in widths]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("outer, widths", COLUMNS)
def test_concatenate_forward_equals_the_twin(outer, widths, dtype, rng):
    inputs = parts_of(rng, outer, widths, dtype)
    got, want = (np.full((outer, sum(widths)), np.nan, dtype) for _ in range(2))
    merge.concatenate_forward(inputs, got, 2)
    ref.concatenate_forward(inputs, want, 2)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("outer, widths", COLUMNS)
def test_concatenate_backward_equals_the_twin_and_undoes_the_forward(outer, widths, dtype, rng):
    inputs = parts_of(rng, outer, widths, dtype)
    dy = np.empty((outer, sum(widths)), dtype)
    merge.concatenate_forward(inputs, dy, 2)
    got = [np.full(a.shape, np.nan, dtype) for a in inputs]
    want = [np.full(a.shape, np.nan, dtype) for a in inputs]
    merge.concatenate_backward(dy, got, 2)
    ref.concatenate_backward(dy, want, 2)
    for g, w, a in zip(got, want, inputs):
        np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(g, a)


@pytest.mark.parametrize("outer, widths", [(1, (5 * RUN + 3, RUN)), (2000, (24, 1, 40))])
def test_concatenate_is_the_same_for_any_thread_count(outer, widths, rng):
    inputs = parts_of(rng, outer, widths, np.float32)
    joined, splits = [], []
    for n_threads in (1, 2, 3):
        out = np.empty((outer, sum(widths)), np.float32)
        merge.concatenate_forward(inputs, out, n_threads)
        outs = [np.empty_like(a) for a in inputs]
        merge.concatenate_backward(out, outs, n_threads)
        joined.append(out)
        splits.append(outs)
    for out, outs in zip(joined[1:], splits[1:]):
        np.testing.assert_array_equal(out, joined[0])
        for g, w in zip(outs, splits[0]):
            np.testing.assert_array_equal(g, w)


def test_concatenate_refuses_parts_that_do_not_fill_the_rows():
    out = np.empty((3, 5), np.float32)
    with pytest.raises(ValueError, match="at least one part"):
        merge.concatenate_forward([], out, 1)
    with pytest.raises(ValueError, match="3 rows in every part, received 2 in part 1"):
        merge.concatenate_forward([np.ones((3, 2), np.float32), np.ones((2, 3), np.float32)],
                                  out, 1)
    with pytest.raises(ValueError, match="5 columns wide in all, received 4"):
        merge.concatenate_backward(out, [np.ones((3, 2), np.float32)] * 2, 1)
    target = np.zeros((3, 5), np.float32)
    target.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        merge.concatenate_backward(out, [target], 1)
