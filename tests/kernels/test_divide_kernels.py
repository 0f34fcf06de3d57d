"""The merge kernels' "divide" (fastcnn.ops.divide on float arrays): NumPy's broadcast division
bitwise, gradients against central differences in float64, any thread count bitwise alike."""
import numpy as np
import pytest
from conftest import numeric_grad

from fastcnn._ops import merge

BROADCASTS = [[(4, 5, 6), (4, 5, 6)], [(3, 1, 6), (3, 5, 1)], [(2, 3, 4, 5), (5,)],
              [(2, 9000), (1, 9000)], [(3, 700), (3, 1)], [(0, 4), (1, 4)]]


def operands(rng, shapes, dtype):
    a, b = (rng.standard_normal(s).astype(dtype) for s in shapes)
    return a, np.where(np.abs(b) < 0.1, 0.5, b).astype(dtype)  # no quotient near a pole


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
def test_divide_is_numpys_bitwise(shapes, dtype, rng):
    a, b = operands(rng, shapes, dtype)
    got = merge.elementwise_forward("divide", [a, b], n_threads=2)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, a / b)


@pytest.mark.parametrize("shapes", [[(3, 4), (3, 4)], [(2, 1, 3), (4, 1)], [(5, 3), (1,)]],
                         ids=str)
def test_divide_gradients_match_central_differences(shapes, rng):
    a, b = operands(rng, shapes, np.float64)
    upstream = rng.standard_normal(np.broadcast_shapes(a.shape, b.shape))
    for index, x in enumerate((a, b)):
        got = merge.elementwise_backward("divide", upstream, [a, b], index, n_threads=2)
        numeric = numeric_grad(lambda: float(np.sum(a / b * upstream)), x)
        np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_divide_is_bitwise_the_same_for_any_thread_count(dtype, rng):
    a, b = operands(rng, [(40, 1, 3000), (40, 20, 1)], dtype)
    dy = rng.standard_normal((40, 20, 3000)).astype(dtype)
    outs = [merge.elementwise_forward("divide", [a, b], n_threads=t) for t in (1, 2, 3)]
    grads = [[merge.elementwise_backward("divide", dy, [a, b], i, n_threads=t) for i in (0, 1)]
             for t in (1, 2, 3)]
    for out, grad in zip(outs[1:], grads[1:]):
        np.testing.assert_array_equal(out, outs[0])
        for g, want in zip(grad, grads[0]):
            np.testing.assert_array_equal(g, want)


def test_divide_takes_two_inputs():
    with pytest.raises(ValueError, match="exactly two arrays for op 'divide'"):
        merge.elementwise_forward("divide", [np.ones(3)] * 3)
