"""ZeroPadding2D matches numpy.pad, forward and backward (the contract every layer meets runs in
test_layers.LAYER_CASES)."""
import numpy as np
import pytest

from fastcnn import layers
from conftest import call_layer, images


@pytest.mark.parametrize("padding,pads", [
    (1, ((1, 1), (1, 1))),
    ((2, 0), ((2, 2), (0, 0))),
    (((0, 3), (1, 2)), ((0, 3), (1, 2))),
])
def test_zero_padding_matches_numpy_pad(padding, pads, rng):
    layer = layers.ZeroPadding2D(padding)
    assert layer.padding == pads
    x = images(rng, n=3)
    y = layer(x)
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), *pads, (0, 0))))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    (top, _), (left, _) = pads
    np.testing.assert_array_equal(call_layer(layer, x, dy)[1],
                                  dy[:, top:top + x.shape[1], left:left + x.shape[2]])


def test_zero_padding_handles_a_smaller_last_batch(rng):
    layer = layers.ZeroPadding2D(1)
    layer(images(rng, n=8))
    x = images(rng, n=3)
    np.testing.assert_array_equal(layer(x), np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))


@pytest.mark.parametrize("padding", [-1, (1, -2), ((1, 2), 3), ((1, 2, 3), (1, 2)), "same"])
def test_zero_padding_bad_arguments(padding):
    with pytest.raises(ValueError, match=r"Expected padding .* received padding="):
        layers.ZeroPadding2D(padding)
