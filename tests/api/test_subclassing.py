"""The patterns of Keras's subclassing guide, in our own words with fastcnn's layers:

- a subclassed Model whose ``call`` takes ``training`` (dropout only in training): predict is
  deterministic, fit trains with the dropout, summary works, and it saves whole with get_config
  and a registered class, or its weights alone without get_config;
- a custom Layer whose ``call`` composes other layers (its backward comes from the engine);
- a custom leaf Layer with its own forward/backward and a weight from add_weight.
"""
import numpy as np
import pytest
from conftest import check_weight_gradients, reloaded, toy_data

import fastcnn
from fastcnn import layers
from fastcnn.saving import register_keras_serializable


@register_keras_serializable("guide_tests")
class Classifier(fastcnn.Model):
    """Conv features, hidden Dense layers kept in a list, dropout in training only."""

    def __init__(self, units=8, rate=0.5, **kwargs):
        super().__init__(**kwargs)
        self.units, self.rate = units, rate
        self.conv = layers.Conv2D(4, 3, activation="relu")
        self.pool = layers.GlobalAveragePooling2D()
        self.hidden = [layers.Dense(units, activation="relu") for _ in range(2)]
        self.dropout = layers.Dropout(rate)
        self.classes = layers.Dense(3, activation="softmax")

    def call(self, inputs, training=False):
        x = self.pool(self.conv(inputs))
        for layer in self.hidden:
            x = layer(x)
        if training:
            x = self.dropout(x)
        return self.classes(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "rate": self.rate}


class Unconfigured(fastcnn.Model):
    """A subclassed model without get_config: its architecture is its code."""

    def __init__(self):
        super().__init__()
        self.first = layers.Dense(6, activation="relu")
        self.dropout = layers.Dropout(0.3)
        self.last = layers.Dense(3, activation="softmax")

    def call(self, x, training=False):
        x = self.first(x)
        if training:
            x = self.dropout(x)
        return self.last(x)


def test_subclassed_model_runs_dropout_in_training_only(tmp_path):
    fastcnn.utils.set_random_seed(20)
    x, y = toy_data(32)
    model = Classifier(name="classifier")
    assert not model.built
    assert len(model.layers) == 6  # the list's two layers are tracked too
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])

    # One step on the whole batch logs the loss of the weights before the update, in training
    # mode: with dropout it differs from the loss in inference mode.
    before = model.evaluate(x, y, batch_size=32, verbose=0)[0]
    logged = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history["loss"][0]
    assert abs(logged - before) > 1e-3
    assert len(model.weights) == 8

    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)
    np.testing.assert_array_equal(model(x), first)
    a, b = model(x, training=True), model(x, training=True)
    assert not np.array_equal(a, b) and not np.array_equal(a, first)

    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert text.startswith('Model: "classifier"') and "Connected to" not in text
    for layer in model.layers:
        assert layer.name in text
    assert f"Total params: {model.count_params():,}" in text
    assert model.count_params() == 40 + (4 * 8 + 8) + (8 * 8 + 8) + (8 * 3 + 3)

    copy = reloaded(model, x, tmp_path)
    assert type(copy) is Classifier and (copy.units, copy.rate) == (8, 0.5)
    copy.fit(x, y, epochs=1, verbose=0)


def test_dropout_free_training_logs_the_inference_loss():
    """The control for the test above: with rate 0 the two losses agree."""
    fastcnn.utils.set_random_seed(21)
    x, y = toy_data(32)
    model = Classifier(rate=0.0)
    model.compile("adam", "categorical_crossentropy")
    before = model.evaluate(x, y, batch_size=32, verbose=0)
    logged = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history["loss"][0]
    assert logged == pytest.approx(before, rel=1e-6)


def test_subclassed_model_without_get_config_saves_its_weights(tmp_path):
    fastcnn.utils.set_random_seed(22)
    x, y = toy_data(32)
    x = x.reshape(32, -1)
    model = Unconfigured()
    model.compile("sgd", "categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    path = tmp_path / "model.keras"
    with pytest.raises(NotImplementedError, match="get_config.*save_weights"):
        model.save(path)
    assert not path.exists() and not list(tmp_path.iterdir())

    model.save_weights(tmp_path / "model.weights.h5")
    fresh = Unconfigured()
    assert not fresh.built
    fresh.load_weights(tmp_path / "model.weights.h5")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


# -- custom layers -----------------------------------------------------------------------------

class ResidualBlock(layers.Layer):
    """Two convolutions and a skip connection, composed in ``call``: no backward of its own."""

    def __init__(self, filters, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.activation = filters, activation
        self.conv_a = layers.Conv2D(filters, 3, padding="same", activation=activation)
        self.conv_b = layers.Conv2D(filters, 3, padding="same")
        self.add = layers.Add()

    def call(self, inputs):
        return self.add([inputs, self.conv_b(self.conv_a(inputs))])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "activation": self.activation}


@register_keras_serializable("guide_tests")
class ChannelScale(layers.Layer):
    """y = x * scale, one trainable scale per channel: a leaf with its own backward."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def forward(self, x, ctx, training):
        ctx.x = x
        return x * self.scale

    def backward(self, dy, ctx, need_dx):
        if ctx.grads is not None and ctx.grads[0] is not None:
            ctx.grads[0][...] = (dy * ctx.x).reshape(-1, dy.shape[-1]).sum(axis=0)
        return dy * self.scale if need_dx else None


def with_custom_layers(activation):
    inputs = fastcnn.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, padding="same", activation=activation)(inputs)
    x = ResidualBlock(4, activation=activation, name="block")(x)
    x = ChannelScale(name="scale")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return fastcnn.Model(inputs, layers.Dense(3, activation="softmax")(x))


def test_composite_layer_trains_saves_and_has_exact_gradients(tmp_path):
    fastcnn.utils.set_random_seed(23)
    x, y = toy_data(32)
    model = with_custom_layers("relu")
    block = model.get_layer("block")
    assert block.layers == [block.conv_a, block.conv_b, block.add]
    assert len(block.weights) == 4 and len(model.weights) == 2 + 4 + 1 + 2
    kernels = [w.copy() for w in block.weights]
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    losses = model.fit(x, y, epochs=4, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    assert not any(np.array_equal(w, k) for w, k in zip(block.weights, kernels))

    model.save(tmp_path / "unknown.keras")
    with pytest.raises(ValueError, match="ResidualBlock.*custom_objects"):
        fastcnn.models.load_model(tmp_path / "unknown.keras")
    copy = reloaded(model, x, tmp_path, custom_objects={"ResidualBlock": ResidualBlock})
    assert type(copy.get_layer("block")) is ResidualBlock

    fastcnn.utils.set_random_seed(24)
    smooth = with_custom_layers("tanh")
    rng = np.random.default_rng(25)
    inner = smooth.get_layer("block")
    check_weight_gradients(smooth, [x[:3]], [rng.standard_normal((3, 3)).astype(np.float32)],
                           inner.weights)


def test_custom_leaf_layer_gradient_and_training(tmp_path):
    fastcnn.utils.set_random_seed(26)
    rng = np.random.default_rng(27)
    inputs = fastcnn.Input((5,))
    hidden = layers.Dense(4, activation="tanh", name="hidden")(inputs)
    scaled = ChannelScale(name="scale")(hidden)
    model = fastcnn.Model(inputs, layers.Dense(2, activation="tanh")(scaled))
    scale = model.get_layer("scale")
    scale.scale[...] = rng.uniform(0.5, 1.5, 4)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    # dX of the custom layer reaches the Dense before it; dW reaches its own weight.
    check_weight_gradients(model, [x], [rng.standard_normal((6, 2)).astype(np.float32)],
                           scale.weights + model.get_layer("hidden").weights)

    y = np.tanh(x[:, :2] * 2).astype(np.float32)
    before = scale.scale.copy()
    model.compile(fastcnn.optimizers.SGD(0.1), "mse")
    losses = model.fit(x, y, epochs=5, batch_size=6, verbose=0).history["loss"]
    assert losses[-1] < losses[0] and not np.array_equal(scale.scale, before)
    reloaded(model, x, tmp_path)

    # Frozen, its weight stays put while the others train.
    scale.trainable = False
    frozen, hidden_kernel = scale.scale.copy(), model.get_layer("hidden").kernel.copy()
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(scale.scale, frozen)
    assert not np.array_equal(model.get_layer("hidden").kernel, hidden_kernel)


# -- mixing subclassing and the functional API -------------------------------------------------

@register_keras_serializable("guide_tests")
class DenseDropout(fastcnn.Model):
    """A subclassed model meant to be nested: Dense, then dropout in training."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = layers.Dense(units, activation="relu")
        self.dropout = layers.Dropout(0.5)

    def call(self, x, training=False):
        x = self.dense(x)
        return self.dropout(x) if training else x

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Linear(layers.Layer):
    """The subclassing guide's first layer: weights made in __init__ with add_weight, and a
    non-trainable counter that no gradient reaches."""

    def __init__(self, units, input_dim, **kwargs):
        super().__init__(**kwargs)
        self.w = self.add_weight(shape=(input_dim, units), initializer="random_normal")
        self.b = self.add_weight(shape=(units,), initializer="zeros")
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def compute_output_shape(self, input_shape):  # a leaf states its output shape
        return (*input_shape[:-1], self.w.shape[1])

    def forward(self, x, ctx, training):
        ctx.x = x
        return x @ self.w + self.b

    def backward(self, dy, ctx, need_dx):
        grads = ctx.grads or [None] * 3
        if grads[0] is not None:
            grads[0][...] = ctx.x.T @ dy
        if grads[1] is not None:
            grads[1][...] = dy.sum(axis=0)
        return dy @ self.w.T if need_dx else None


class LinearBlock(layers.Layer):
    """Layers composed in ``call``, with dropout in training only."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.linear = Linear(8, 3)
        self.dropout = layers.Dropout(0.5)
        self.dense = layers.Dense(2, activation="tanh")

    def call(self, x, training=None):
        x = self.linear(x)
        if training:
            x = self.dropout(x)
        return self.dense(x)


def one_step_losses(model, x, y):
    """(the inference loss, the loss fit logs for one step on the whole batch) at the same
    weights: they differ where fit runs a dropout."""
    model.compile(fastcnn.optimizers.SGD(0.01), "mse")
    before = model.evaluate(x, y, batch_size=len(x), verbose=0)
    return before, model.fit(x, y, batch_size=len(x), shuffle=False, verbose=0).history["loss"][0]


def test_subclassed_model_and_composite_layer_inside_functional_models(tmp_path):
    fastcnn.utils.set_random_seed(28)
    rng = np.random.default_rng(29)
    x = rng.standard_normal((16, 3)).astype(np.float32)

    inputs = fastcnn.Input((3,))
    model = fastcnn.Model(inputs, layers.Dense(1)(DenseDropout(name="inner")(inputs)))
    inference, training = one_step_losses(model, x, np.zeros((16, 1), np.float32))
    assert abs(training - inference) > 1e-3
    assert isinstance(reloaded(model, x, tmp_path).get_layer("inner"), DenseDropout)

    block = LinearBlock()
    inputs = fastcnn.Input((3,))
    model = fastcnn.Model(inputs, block(inputs))
    assert (len(block.weights), len(block.trainable_weights)) == (5, 4)
    assert len(model.non_trainable_weights) == 1
    calls, w = block.linear.calls.copy(), block.linear.w.copy()
    inference, training = one_step_losses(model, x, np.zeros((16, 2), np.float32))
    assert abs(training - inference) > 1e-3
    assert not np.array_equal(block.linear.w, w)
    np.testing.assert_array_equal(block.linear.calls, calls)
    check_weight_gradients(model, [x[:4]], [rng.standard_normal((4, 2)).astype(np.float32)],
                           block.linear.trainable_weights)


def test_functional_model_inside_subclassed_model():
    fastcnn.utils.set_random_seed(30)
    inputs = fastcnn.Input((3,))
    encoder = fastcnn.Model(inputs, layers.Dense(5, activation="tanh")(inputs), name="encoder")

    class Wrapper(fastcnn.Model):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.head = layers.Dense(2)

        def call(self, x):
            return self.head(self.encoder(x))

    model = Wrapper()
    x = np.random.default_rng(31).standard_normal((16, 3)).astype(np.float32)
    kernel = encoder.weights[0].copy()
    model.compile("adam", "mse")
    model.fit(x, np.ones((16, 2), np.float32), epochs=2, verbose=0)
    assert len(model.weights) == 4 and not np.array_equal(encoder.weights[0], kernel)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               model.head(encoder.predict(x, verbose=0)), rtol=1e-6)


def test_subclassed_model_validates_in_inference_mode():
    """With a validation split, fit trains with the dropout and validates without it: the
    validation loss is evaluate's on the same samples and weights."""
    fastcnn.utils.set_random_seed(32)
    x, y = toy_data(32)
    model = Classifier(rate=0.5)
    model.compile("adam", "categorical_crossentropy")
    history = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0).history
    assert history["val_loss"][-1] == model.evaluate(x[24:], y[24:], batch_size=8, verbose=0)


@register_keras_serializable("guide_tests")
class TwoInTwoOut(fastcnn.Model):
    """A subclassed model of two inputs (a list) and two outputs (a dict)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.left = layers.Dense(4, activation="relu")
        self.right = layers.Dense(4, activation="relu")
        self.join = layers.Concatenate()
        self.heads = {"cls": layers.Dense(3, activation="softmax"), "reg": layers.Dense(1)}

    def call(self, inputs):
        a, b = inputs
        h = self.join([self.left(a), self.right(b)])
        return {name: head(h) for name, head in self.heads.items()}

    def get_config(self):
        return super().get_config()


def test_subclassed_model_of_several_inputs_and_outputs(tmp_path):
    fastcnn.utils.set_random_seed(33)
    rng = np.random.default_rng(34)
    x = [rng.standard_normal((16, 3)).astype(np.float32),
         rng.standard_normal((16, 5)).astype(np.float32)]
    y = {"cls": rng.integers(0, 3, 16), "reg": rng.standard_normal((16, 1)).astype(np.float32)}
    model = TwoInTwoOut()
    model.compile("adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"reg": 0.5}, metrics={"cls": ["accuracy"]})
    history = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0).history
    assert model.output_names == ["cls", "reg"]
    logs = {"loss", "cls_loss", "reg_loss", "cls_accuracy"}
    assert set(history) == logs | {"val_" + k for k in logs}
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(result["cls_loss"] + 0.5 * result["reg_loss"], rel=1e-9)
    copy = reloaded(model, x, tmp_path)
    assert set(copy.predict(x, verbose=0)) == {"cls", "reg"}
