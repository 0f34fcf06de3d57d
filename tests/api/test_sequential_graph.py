"""Sequential as a special case of the graph model: Keras's ways to give its input shape,
pop(), nesting, and a layer's own build with the batch axis; attribute tracking of sublayers."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers


def test_input_shape_on_the_first_layer_builds_the_stack():
    model = fastcnn.Sequential([layers.Dense(8, activation="relu", input_shape=(5,)),
                                layers.Dense(3)])
    assert model.built and model.input_shape == (None, 5) and model.output_shape == (None, 3)
    assert [w.shape for w in model.weights] == [(5, 8), (8,), (8, 3), (3,)]
    assert model.inputs[0].shape == (None, 5)


def test_pop_removes_the_last_layer_and_rebuilds():
    model = fastcnn.Sequential([fastcnn.Input((6,)), layers.Dense(4), layers.Dense(2)])
    last = model.pop()
    assert isinstance(last, layers.Dense) and len(model.layers) == 1
    assert model.output_shape == (None, 4)
    x = np.random.default_rng(0).random((3, 6), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ model.weights[0] + model.weights[1],
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(IndexError):
        fastcnn.Sequential().pop()


def test_a_sequential_nested_in_a_sequential_trains_as_the_flat_stack():
    x = np.random.default_rng(1).random((16, 6), dtype=np.float32)
    y = np.random.default_rng(2).integers(0, 3, 16)
    runs, initial = [], None
    for nested in (False, True):
        inner = [layers.Dense(8, activation="tanh"), layers.Dense(8, activation="relu")]
        body = [fastcnn.Sequential(inner)] if nested else inner
        model = fastcnn.Sequential([fastcnn.Input((6,)), *body,
                                    layers.Dense(3, activation="softmax")])
        initial = initial or model.get_weights()
        model.set_weights(initial)
        model.seed = 7
        model.compile(fastcnn.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        runs.append((model.get_weights(), history.history["loss"]))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]


def test_a_layers_own_build_takes_the_batch_axis():
    dense, conv = layers.Dense(4), layers.Conv2D(2, 3)
    dense.build((None, 7))
    conv.build((None, 9, 9, 3))
    assert dense.built and conv.built
    assert [w.shape for w in dense.weights] == [(7, 4), (4,)]
    assert [w.shape for w in conv.weights] == [(3, 3, 3, 2), (2,)]


def test_sublayers_in_lists_and_dicts_are_tracked():
    class Block(layers.Layer):
        def __init__(self):
            super().__init__()
            self.stack = [layers.Dense(4, activation="relu"), layers.Dense(4)]
            self.heads = {"a": layers.Dense(2), "b": layers.Dense(1)}

        def call(self, x):
            for layer in self.stack:
                x = layer(x)
            return layers.Concatenate()([self.heads["a"](x), self.heads["b"](x)])

    block = Block()
    out = block(fastcnn.Input((3,)))
    assert out.shape == (None, 3)
    assert block.layers == [*block.stack, block.heads["a"], block.heads["b"]]
    assert len(block.weights) == 8 and len(block.trainable_weights) == 8
    block.trainable = False
    assert block.trainable_weights == [] and not block.stack[0].trainable
    x = np.random.default_rng(3).random((2, 3), dtype=np.float32)
    h = np.maximum(x @ block.stack[0].kernel + block.stack[0].bias, 0)
    h = h @ block.stack[1].kernel + block.stack[1].bias
    want = np.concatenate([h @ block.heads["a"].kernel + block.heads["a"].bias,
                           h @ block.heads["b"].kernel + block.heads["b"].bias], axis=1)
    np.testing.assert_allclose(block(x), want, rtol=1e-5, atol=1e-6)


def test_a_frozen_model_trains_no_weight_even_of_an_unfrozen_sublayer():
    """Keras 3: a frozen layer or model has no trainable weights, whatever its sublayers say."""
    inner = fastcnn.Sequential([fastcnn.Input((4,)), layers.Dense(4), layers.Dense(4)])
    model = fastcnn.Sequential([fastcnn.Input((4,)), inner, layers.Dense(2)])
    inner.trainable = False
    inner.layers[0].trainable = True
    assert inner.trainable_weights == [] and len(inner.non_trainable_weights) == 4
    assert [w.shape for w in model.trainable_weights] == [(4, 2), (2,)]
    model.compile(fastcnn.optimizers.SGD(0.1), "mse")
    before = inner.get_weights()
    x = np.random.default_rng(5).random((8, 4), dtype=np.float32)
    model.fit(x, np.zeros((8, 2), np.float32), epochs=2, verbose=0)
    for a, b in zip(inner.get_weights(), before):
        np.testing.assert_array_equal(a, b)
