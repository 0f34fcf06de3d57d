"""Initialisers follow Keras's formulas and draw from the generator that set_random_seed seeds."""
import numpy as np
import pytest

import fastcnn
from fastcnn import initializers, layers

CONV = (3, 3, 64, 128)  # Keras fans: in 3*3*64 = 576, out 3*3*128 = 1152
DENSE = (400, 300)
TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def draw(name, shape, seed=0):
    fastcnn.utils.set_random_seed(seed)
    return initializers.initialize(name, shape).astype(np.float64)


@pytest.mark.parametrize("shape,fan_in,fan_out", [(CONV, 576, 1152), (DENSE, 400, 300),
                                                  ((7,), 7, 7)])
def test_fans_are_keras(shape, fan_in, fan_out):
    assert initializers._fans(shape) == (fan_in, fan_out)


@pytest.mark.parametrize("name,shape,limit", [
    ("glorot_uniform", CONV, np.sqrt(6 / (576 + 1152))),
    ("glorot_uniform", DENSE, np.sqrt(6 / 700)),
    ("he_uniform", CONV, np.sqrt(6 / 576)),
])
def test_uniform_bounds_and_spread(name, shape, limit):
    w = draw(name, shape)
    assert w.dtype == np.float64 and w.shape == shape
    assert -limit <= w.min() < -0.99 * limit and 0.99 * limit < w.max() <= limit
    assert w.std() == pytest.approx(limit / np.sqrt(3), rel=0.01)
    assert abs(w.mean()) < 0.01 * limit


@pytest.mark.parametrize("name,shape,std", [
    ("glorot_normal", CONV, np.sqrt(2 / (576 + 1152))),
    ("glorot_normal", DENSE, np.sqrt(2 / 700)),
    ("he_normal", CONV, np.sqrt(2 / 576)),
])
def test_truncated_normal_std_and_cut(name, shape, std):
    """Keras draws a truncated normal of scale std / 0.8796..., cut at two of those scales,
    so that the samples' std is the target."""
    w = draw(name, shape)
    cut = 2 * std / TRUNCATED_STD
    assert np.abs(w).max() <= cut and np.abs(w).max() > 0.99 * cut
    assert w.std() == pytest.approx(std, rel=0.01)
    assert abs(w.mean()) < 0.01 * std


def test_random_normal_zeros_ones():
    w = draw("random_normal", DENSE)
    assert w.std() == pytest.approx(0.05, rel=0.01) and abs(w.mean()) < 5e-4
    assert np.all(draw("zeros", (3, 2)) == 0) and np.all(draw("ones", (3, 2)) == 1)
    assert initializers.initialize("ones", (2,)).dtype == np.float32


@pytest.mark.parametrize("name", sorted(initializers.INITIALIZERS))
def test_seeded_draws_are_reproducible(name):
    np.testing.assert_array_equal(draw(name, (20, 30), seed=5), draw(name, (20, 30), seed=5))
    if name not in ("zeros", "ones"):
        assert not np.array_equal(draw(name, (20, 30), seed=5), draw(name, (20, 30), seed=6))


def test_layers_built_after_the_same_seed_are_identical():
    def build():
        fastcnn.utils.set_random_seed(11)
        model = fastcnn.Sequential([fastcnn.Input(shape=(6, 6, 2)),
                                    layers.Conv2D(3, 3, kernel_initializer="he_normal"),
                                    layers.Flatten(), layers.Dense(4)])
        return model.get_weights()

    for a, b in zip(build(), build()):
        np.testing.assert_array_equal(a, b)
