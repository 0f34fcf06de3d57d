"""The fused conv + pool wrappers' checks: shapes, the dropout rate, and an argmax outside its
window."""
import numpy as np
import pytest

from fastcnn._ops import conv as conv_ops
from conftest import conv_maxpool_case


@pytest.mark.parametrize("pool, pool_strides", [((2, 2), (2, 2)), ((3, 3), (2, 2))])
@pytest.mark.parametrize("co", [32, 5])
def test_argmax_outside_its_window_is_an_error(pool, pool_strides, co):
    rng = np.random.default_rng(4)
    x, wt, bias, dy, _ = conv_maxpool_case(rng, 2, 8, 8, 3, co, (3, 3), (1, 1), "valid", pool,
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


def test_dropout_rate_is_checked_by_the_ops():
    rng = np.random.default_rng(3)
    x, wt, bias, _, _ = conv_maxpool_case(rng, 2, 8, 8, 3, 4, (3, 3), (1, 1), "valid", (2, 2),
                                          (2, 2))
    for rate in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            conv_ops.conv2d_maxpool_forward(x, wt, bias, (1, 1), "valid", (2, 2), (2, 2),
                                            dropout=(1, rate))
