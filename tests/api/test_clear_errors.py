"""Public calls refuse bad arguments with a ValueError or TypeError that says what is wrong,
never a raw KeyError, IndexError or AttributeError from deep inside."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers


def functional_config():
    inputs = fastcnn.Input(shape=(3,), name="x")
    model = fastcnn.Model(inputs, layers.Dense(2, name="head")(inputs))
    return model.get_config()


def test_sequential_from_config_names_the_missing_key():
    with pytest.raises(ValueError, match=r"missing \['layers'\]"):
        fastcnn.Sequential.from_config({})
    with pytest.raises(ValueError, match="list under 'layers'"):
        fastcnn.Sequential.from_config({"layers": 5})
    with pytest.raises(TypeError, match="Sequential's config to be a dict"):
        fastcnn.Sequential.from_config([])
    with pytest.raises(ValueError, match="Expected shape"):
        fastcnn.Sequential.from_config({"layers": [], "input_shape": 2.5})


def test_sequential_from_config_still_rebuilds_the_model():
    model = fastcnn.Sequential([fastcnn.Input(shape=(3,)), layers.Dense(2)])
    copy = fastcnn.Sequential.from_config(model.get_config())
    assert [type(l) for l in copy.layers] == [layers.Dense] and copy.output_shape == (None, 2)


@pytest.mark.parametrize("key", ["inputs", "input_structure", "outputs"])
def test_functional_from_config_names_the_missing_key(key):
    config = functional_config()
    del config[key]
    with pytest.raises(ValueError, match=rf"missing \['{key}'\]"):
        fastcnn.Model.from_config(config)


@pytest.mark.parametrize("change,message", [
    (lambda c: c["nodes"][0].update(layer=7), r"'layer' of a node to be an index in \[0, 1\)"),
    (lambda c: c["nodes"][0].pop("inputs"), r"node's config to hold .* missing \['inputs'\]"),
    (lambda c: c.update(outputs={"node": 3, "index": 0}), r"'node' .* in \[0, 1\), received 3"),
    (lambda c: c.update(outputs={"node": 0, "index": 2}), r"'index' .* in \[0, 1\), received 2"),
    (lambda c: c.update(input_structure={"input": -1}), r"'input' .* in \[0, 1\), received -1"),
    (lambda c: c.update(outputs={"nodes": 0}), "Expected a tensor reference"),
    (lambda c: c.update(outputs={"dict": 5}), "dict of tensor references"),
    (lambda c: c["inputs"][0].pop("batch_shape"), r"input's config .* missing \['batch_shape'\]"),
    (lambda c: c.update(nodes="x"), "list under 'nodes'"),
])
def test_functional_from_config_refuses_broken_references(change, message):
    config = functional_config()
    change(config)
    with pytest.raises(ValueError, match=message):
        fastcnn.Model.from_config(config)


def test_functional_from_config_still_rebuilds_the_model():
    copy = fastcnn.Model.from_config(functional_config())
    assert [l.name for l in copy.layers] == ["x", "head"]
    assert copy.predict(np.zeros((4, 3)), verbose=0).shape == (4, 2)


@pytest.mark.parametrize("index", [100, -100, 2, -3])
def test_get_layer_index_out_of_range_gives_the_valid_range(index):
    model = fastcnn.Sequential([fastcnn.Input(shape=(3,)), layers.Dense(2), layers.Dense(1)])
    with pytest.raises(ValueError, match=r"index in \[-2, 2\)"):
        model.get_layer(index=index)
    assert model.get_layer(index=-1) is model.layers[1]
