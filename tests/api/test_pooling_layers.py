"""SumPooling2D and the global pooling layers, forward and backward (the contract every layer
meets, and MaxPooling2D and AveragePooling2D, run in test_layers.LAYER_CASES)."""
import numpy as np
import pytest

from fastcnn import layers
from conftest import call_layer, images


def test_sum_pooling_sums_windows(rng):
    x = images(rng, n=2, h=4, w=6)
    y = layers.SumPooling2D(2)(x)
    np.testing.assert_allclose(y, x.reshape(2, 2, 2, 3, 2, 2).sum(axis=(2, 4)), rtol=1e-6)


def test_sum_pooling_backward_gives_each_cell_the_full_gradient():
    layer = layers.SumPooling2D(2, strides=1)
    _, dx, _ = call_layer(layer, np.zeros((1, 3, 3, 1), np.float32),
                          np.ones((1, 2, 2, 1), np.float32))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling_layers(keepdims, rng):
    x = images(rng, n=3)
    shape = (3, 1, 1, 2) if keepdims else (3, 2)
    avg = layers.GlobalAveragePooling2D(keepdims=keepdims)
    np.testing.assert_allclose(avg(x), x.mean(axis=(1, 2)).reshape(shape), rtol=1e-5)
    top = layers.GlobalMaxPooling2D(keepdims=keepdims)
    np.testing.assert_array_equal(top(x), x.max(axis=(1, 2)).reshape(shape))
    _, dx, _ = call_layer(top, x, np.ones(shape, np.float32))
    np.testing.assert_array_equal(dx, (x == x.max(axis=(1, 2), keepdims=True)).astype(np.float32))
    np.testing.assert_allclose(call_layer(avg, x, np.ones(shape, np.float32))[1], 1 / 30,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="keepdims=1"):
        layers.GlobalAveragePooling2D(keepdims=1)
