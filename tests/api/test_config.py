"""fastcnn.config, Keras's global settings held fixed, and utils.clear_session."""
import numpy as np
import pytest

import fastcnn
from fastcnn import config, layers


def test_settings_and_setters():
    assert (config.floatx(), config.image_data_format(), config.backend(), config.epsilon()) == \
        ("float32", "channels_last", "fastcnn", 1e-7)
    config.set_floatx("float32")
    config.set_image_data_format("channels_last")
    config.set_epsilon(1e-7)
    with pytest.raises(ValueError, match="Expected floatx 'float32'.*received 'float64'"):
        config.set_floatx("float64")
    with pytest.raises(ValueError, match="'channels_last'.*received 'channels_first'"):
        config.set_image_data_format("channels_first")
    with pytest.raises(ValueError, match="Expected epsilon 1e-07"):
        config.set_epsilon(1e-8)
    assert config.floatx() == "float32"
    assert fastcnn.config is config and "config" in fastcnn.__all__


def test_clear_session_restarts_names():
    layers.Dense(2)
    fastcnn.Input(shape=(3,))
    fastcnn.utils.clear_session()
    assert layers.Dense(2).name == "dense" and layers.Dense(2).name == "dense_1"
    fresh = fastcnn.Input(shape=(3,))
    fastcnn.utils.clear_session()
    assert fastcnn.Input(shape=(3,)).name == fresh.name


def test_clear_session_after_a_seed_is_reproducible():
    def weights():
        fastcnn.utils.set_random_seed(5)
        fastcnn.utils.clear_session()
        model = fastcnn.Sequential([fastcnn.Input(shape=(4,)), layers.Dense(3)])
        return model.get_weights()[0], [layer.name for layer in model.layers]

    (a, names_a), (b, names_b) = weights(), weights()
    np.testing.assert_array_equal(a, b)
    assert names_a == names_b
