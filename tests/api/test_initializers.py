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
    if name not in ("zeros", "ones", "constant", "identity"):
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


LARGE = (300, 400)  # fan_in 300, fan_out 400: 120000 samples, a std within 1% of its value


@pytest.mark.parametrize("init,mean,std", [
    (initializers.RandomNormal(mean=0.5, stddev=0.2), 0.5, 0.2),
    (initializers.RandomUniform(-0.3, 0.1), -0.1, 0.4 / np.sqrt(12)),
    (initializers.TruncatedNormal(mean=-1, stddev=0.1), -1, 0.1 * TRUNCATED_STD),
    (initializers.HeNormal(), 0, np.sqrt(2 / 300)),
    (initializers.HeUniform(), 0, np.sqrt(2 / 300)),
    (initializers.GlorotNormal(), 0, np.sqrt(2 / 700)),
    (initializers.GlorotUniform(), 0, np.sqrt(2 / 700)),
    (initializers.LecunNormal(), 0, np.sqrt(1 / 300)),
    (initializers.LecunUniform(), 0, np.sqrt(1 / 300)),
    (initializers.VarianceScaling(3.0, "fan_out", "untruncated_normal"), 0, np.sqrt(3 / 400)),
    (initializers.VarianceScaling(0.5, "fan_avg", "uniform"), 0, np.sqrt(0.5 / 350)),
    (initializers.Orthogonal(gain=2.0), 0, 2 / np.sqrt(400)),
])
def test_statistics_of_the_objects(init, mean, std):
    """The mean within 5 standard errors, the std within 1%: Keras's formula for each."""
    w = init(LARGE, dtype="float64")
    assert w.shape == LARGE and w.dtype == np.float64
    assert abs(w.mean() - mean) < 5 * std / np.sqrt(w.size)
    assert w.std() == pytest.approx(std, rel=0.01)


def test_truncated_normal_is_cut_at_two_stddev():
    w = initializers.TruncatedNormal(mean=1.0, stddev=0.5, seed=1)(LARGE)
    assert np.abs(w - 1).max() <= 1.0 and np.abs(w - 1).max() > 0.99


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 3, 2, 8)])
def test_orthogonal_rows_or_columns(shape):
    w = initializers.Orthogonal(gain=1.5, seed=0)(shape, dtype="float64")
    m = w.reshape(-1, shape[-1])
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, 1.5 ** 2 * np.eye(len(gram)), atol=1e-12)


def test_identity_constant_zeros_ones():
    np.testing.assert_array_equal(initializers.Identity(gain=3)((3, 4)), 3 * np.eye(3, 4))
    np.testing.assert_array_equal(initializers.Constant(0.25)((2, 3)), np.full((2, 3), 0.25))
    assert initializers.Zeros()((2,)).dtype == np.float32
    np.testing.assert_array_equal(initializers.Ones()((2, 2)), 1)
    with pytest.raises(ValueError, match="2-D shape for Identity"):
        initializers.Identity()((2, 2, 2))


@pytest.mark.parametrize("cls", [c for c in initializers.CLASSES
                                 if issubclass(c, initializers.RandomInitializer)])
def test_a_seeded_initializer_repeats_its_values(cls):
    """As in Keras 3: an initializer with a seed gives the same values on every call; another
    seed gives others; unseeded ones follow set_random_seed."""
    np.testing.assert_array_equal(cls(seed=7)((8, 9)), cls(seed=7)((8, 9)))
    init = cls(seed=7)
    np.testing.assert_array_equal(init((8, 9)), init((8, 9)))
    assert not np.array_equal(cls(seed=7)((8, 9)), cls(seed=8)((8, 9)))
    fastcnn.utils.set_random_seed(3)
    first = cls()((8, 9))
    fastcnn.utils.set_random_seed(3)
    np.testing.assert_array_equal(cls()((8, 9)), first)


def test_names_configs_and_layers(tmp_path):
    assert type(initializers.get("HeNormal")) is initializers.HeNormal
    assert type(initializers.get("lecun_uniform")) is initializers.LecunUniform
    assert type(initializers.get("orthogonal")) is initializers.Orthogonal
    for cls in initializers.CLASSES:
        init = cls()
        again = initializers.get(initializers.serialize(init))
        assert type(again) is cls and again.get_config() == init.get_config()
    model = fastcnn.Sequential([
        fastcnn.Input(shape=(5,)),
        layers.Dense(5, kernel_initializer=initializers.Orthogonal(seed=4),
                     bias_initializer=initializers.Constant(0.5))])
    np.testing.assert_array_equal(model.layers[0].kernel,
                                  initializers.Orthogonal(seed=4)((5, 5)))
    np.testing.assert_array_equal(model.layers[0].bias, 0.5)
    model.save(tmp_path / "m.keras")
    loaded = fastcnn.models.load_model(tmp_path / "m.keras")
    assert loaded.layers[0].get_config()["kernel_initializer"] == \
        {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": 4}}


def test_plain_callables_are_called_as_keras_calls_them():
    seen = []

    def halves(shape, dtype=None):
        seen.append((shape, dtype))
        return np.full(shape, 0.5)

    layer = layers.Dense(3, kernel_initializer=halves)
    layer.build((None, 2))
    np.testing.assert_array_equal(layer.kernel, 0.5)
    assert seen and seen[0][0] == (2, 3)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="seed to be None or an int"):
        initializers.HeNormal(seed=-1)
    with pytest.raises(ValueError, match="mode to be one of"):
        initializers.VarianceScaling(mode="fan_max")
    with pytest.raises(ValueError, match="minval <= maxval"):
        initializers.RandomUniform(1, 0)
    with pytest.raises(ValueError, match="Unknown initializer"):
        layers.Dense(2, kernel_initializer="no_such")
