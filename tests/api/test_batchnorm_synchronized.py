"""BatchNormalization(synchronized=True) in one process: exactly the unsynchronized layer
(there is no other process to total the statistics with), in fit, in a training call and in
inference; its config round trip and argument check. The runs over several processes are in
tests/distributed/test_synchronized_batchnorm.py."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from conftest import reloaded, toy_data


def make_model(synchronized):
    fastcnn.utils.set_random_seed(3)
    model = fastcnn.Sequential([
        fastcnn.Input(shape=(8, 8, 1)),
        layers.Conv2D(4, 3),
        layers.BatchNormalization(synchronized=synchronized),
        layers.Activation("relu"),
        layers.Flatten(),
        layers.Dense(8),
        layers.BatchNormalization(synchronized=synchronized),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def test_synchronized_in_one_process_is_the_unsynchronized_layer_bitwise():
    x, y = toy_data(100)
    runs = []
    for synchronized in (False, True):
        model = make_model(synchronized)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        training = model(x[:40], training=True)
        runs.append([*model.get_weights(), training, model.predict(x, verbose=0)])
    for a, b in zip(*runs, strict=True):
        assert a.tobytes() == b.tobytes()


def test_synchronized_round_trips_through_config_and_saving(tmp_path):
    layer = layers.BatchNormalization(synchronized=True)
    assert layer.get_config()["synchronized"] is True
    assert layers.BatchNormalization().get_config()["synchronized"] is False
    assert layers.BatchNormalization.from_config(layer.get_config()).synchronized is True
    copy = reloaded(make_model(True), toy_data(4)[0], tmp_path)
    assert [bn.synchronized for bn in copy.layers if isinstance(bn, layers.BatchNormalization)] \
        == [True, True]


@pytest.mark.parametrize("value", [1, "true", None, np.bool_(True)])
def test_synchronized_must_be_a_bool(value):
    with pytest.raises(TypeError, match=f"synchronized={value!r}"):
        layers.BatchNormalization(synchronized=value)
