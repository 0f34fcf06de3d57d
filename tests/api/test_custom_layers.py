"""The Keras guide's custom-layer patterns written with fastcnn.ops, in our own words: each is
traced when built, trains in fit with no hand-written backward, and its weight gradients match
finite differences. Plus: custom losses and metrics as plain functions, what cannot be traced,
and saving a model that holds an ops-based layer."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers, ops
from fastcnn.saving import register_keras_serializable
from conftest import check_weight_gradients, reloaded


@register_keras_serializable(package="ops_tests")
class Linear(layers.Layer):
    """y = x w + b, its weights made in build."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal")
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal")

    def call(self, inputs):
        return ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Doubler(layers.Layer):
    def call(self, inputs):
        return inputs * 2.0


class RunningMean(layers.Layer):
    """Subtracts the mean of every batch it has seen in training: a non-trainable weight
    written in call through Variable.assign."""

    def build(self, input_shape):
        self.mean = self.add_weight(shape=(input_shape[-1],), initializer="zeros",
                                    trainable=False)
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def call(self, inputs, training=False):
        if training:
            self.seen.assign_add(1.0)
            self.mean.assign(self.mean + (ops.mean(inputs, axis=0) - self.mean) / self.seen)
        return inputs - self.mean


@register_keras_serializable(package="ops_tests")
class Residual(layers.Layer):
    """relu(x + dense2(relu(dense1(x)))) scaled by a trained gain: sublayers and ops."""

    def __init__(self, width, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.inner = layers.Dense(width, activation="relu")
        self.outer = layers.Dense(width)

    def build(self, input_shape):
        self.gain = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return ops.relu(inputs + self.outer(self.inner(inputs))) * self.gain

    def get_config(self):
        return {**super().get_config(), "width": self.width}


def _data(n=64, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ np.array([[1.0], [2.0], [-1.0]])[:d] + 0.5).astype(np.float32)
    return x, y


def _fit(model, x, y, loss="mse", epochs=30):
    model.compile(fastcnn.optimizers.SGD(0.05), loss)
    return model.fit(x, y, epochs=epochs, batch_size=16, verbose=0).history["loss"]


def test_stateless_call_doubles_and_trains_under_it():
    x, y = _data()
    inputs = fastcnn.Input((3,))
    model = fastcnn.Model(inputs, layers.Dense(1)(Doubler()(inputs)))
    np.testing.assert_array_equal(Doubler()(x), x * 2)
    losses = _fit(model, x, y)
    assert losses[-1] < 0.05 * losses[0]


def _check_gradients_then_train(build, n_weights):
    """The weight gradients of the model ``build(inputs)`` makes against finite differences,
    then 40 epochs of fit that lower its loss five times."""
    fastcnn.utils.set_random_seed(0)
    x, y = _data()
    inputs = fastcnn.Input((3,))
    model = fastcnn.Model(inputs, build(inputs))
    assert len(model.trainable_weights) == n_weights
    upstream = np.random.default_rng(1).normal(size=(8, 1)).astype(np.float32)
    check_weight_gradients(model, [x[:8]], [upstream], model.trainable_weights)
    losses = _fit(model, x, y, epochs=40)
    assert losses[-1] < 0.2 * losses[0]


def test_linear_layer_trains_and_its_gradients_match_finite_differences():
    _check_gradients_then_train(lambda inputs: Linear(1)(ops.tanh(Linear(2)(inputs))), 4)


def test_linear_matches_dense_with_the_same_weights():
    x, _ = _data()
    dense = layers.Dense(4)
    linear = Linear(4)
    dense.build((None, 3))
    linear.build((None, 3))
    linear.set_weights(dense.get_weights())
    np.testing.assert_allclose(linear(x), dense(x), rtol=1e-6, atol=1e-6)


def test_running_mean_is_updated_in_training_only():
    x, y = _data()
    inputs = fastcnn.Input((3,))
    running = RunningMean()
    model = fastcnn.Model(inputs, layers.Dense(1)(running(inputs)))
    model.compile("sgd", "mse")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
    assert float(running.seen) == 8
    np.testing.assert_allclose(running.mean, x.mean(axis=0), rtol=1e-5, atol=1e-6)
    before = np.array(running.mean)
    model.predict(x, verbose=0)
    model.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(running.mean, before)
    assert running.trainable_weights == [] and len(running.non_trainable_weights) == 2


def test_assignment_read_back_in_the_same_call_sees_the_new_value():
    class Counter(layers.Layer):
        def build(self, input_shape):
            self.count = self.add_weight(shape=(), initializer="zeros", trainable=False)

        def call(self, inputs):
            self.count.assign_add(1.0)
            return inputs * 0.0 + self.count

    counter = Counter()
    x = np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(counter(x), np.ones((2, 3)))
    np.testing.assert_array_equal(counter(x), np.full((2, 3), 2.0))
    assert float(counter.count) == 2


def test_residual_block_trains_and_its_gradients_match_finite_differences():
    _check_gradients_then_train(lambda inputs: layers.Dense(1)(Residual(3)(inputs)), 7)


def test_frozen_custom_layer_keeps_its_weights():
    x, y = _data()
    inputs = fastcnn.Input((3,))
    linear = Linear(1)
    model = fastcnn.Model(inputs, linear(inputs))
    model.build((None, 3))
    linear.trainable = False
    before = linear.get_weights()
    model.compile("sgd", "mse")
    model.fit(x, y, epochs=1, verbose=0)
    for w, b in zip(linear.get_weights(), before):
        np.testing.assert_array_equal(w, b)


def test_functional_model_of_ops_alone_trains():
    x, y = _data()
    inputs = fastcnn.Input((3,))
    hidden = layers.Dense(8)(inputs)
    out = layers.Dense(1)(ops.maximum(hidden, 0.1 * hidden) + ops.square(inputs[:, :1]) * 0.0)
    model = fastcnn.Model(inputs, out)
    assert [type(l).__name__ for l in model.layers] == ["InputLayer", "Dense", "Dense"]
    losses = _fit(model, x, y)
    assert losses[-1] < 0.1 * losses[0]


def test_custom_loss_function_trains_as_the_builtin_loss_does():
    x, y = _data()

    def my_mse(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    histories = []
    for loss in ("mse", my_mse):
        fastcnn.utils.set_random_seed(5)
        model = fastcnn.Sequential([fastcnn.Input((3,)), layers.Dense(1)])
        histories.append(_fit(model, x, y, loss=loss, epochs=3))
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-5)


def test_custom_loss_function_weighs_samples_as_the_builtin_loss_does():
    x, y = _data()
    weights = np.random.default_rng(8).random(len(x))

    def my_mse(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    results = []
    for loss in ("mse", my_mse):
        fastcnn.utils.set_random_seed(5)
        model = fastcnn.Sequential([fastcnn.Input((3,)), layers.Dense(1)])
        model.compile(fastcnn.optimizers.SGD(0.05), loss)
        before = model.evaluate(x, y, sample_weight=weights, verbose=0)
        model.fit(x, y, sample_weight=weights, batch_size=8, epochs=2, shuffle=False, verbose=0)
        results.append((before, *model.get_weights()))
    # sum(w_i * l_i) / n, with the per-sample squared errors of the untrained model
    fastcnn.utils.set_random_seed(5)
    model = fastcnn.Sequential([fastcnn.Input((3,)), layers.Dense(1)])
    errors = ((model.predict(x, verbose=0) - y) ** 2).mean(axis=-1)
    assert results[1][0] == pytest.approx(float((weights * errors).mean()), rel=1e-5)
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_custom_loss_gradient_matches_finite_differences():
    from fastcnn.ops.loss_function import LossFunctionWrapper

    def huber(y_true, y_pred):
        error = ops.abs(y_true - y_pred)
        return ops.sum(ops.where(error < 1.0, 0.5 * ops.square(error), error - 0.5), axis=-1)

    rng = np.random.default_rng(4)
    y_pred = rng.normal(size=(6, 3)) * 2
    y_true = rng.normal(size=(6, 3))
    loss = LossFunctionWrapper(huber)
    grad, per_sample = np.empty_like(y_pred), np.empty(6)
    loss.forward_backward(y_pred, y_true, False, grad, per_sample)
    error = np.abs(y_true - y_pred)
    want = np.where(error < 1, 0.5 * error ** 2, error - 0.5).sum(-1)
    np.testing.assert_allclose(per_sample, want, rtol=1e-12)

    from conftest import numeric_grad

    def mean_loss():
        e = np.abs(y_true - y_pred)
        return np.where(e < 1, 0.5 * e ** 2, e - 0.5).sum(-1).mean()

    np.testing.assert_allclose(grad, numeric_grad(mean_loss, y_pred), rtol=1e-6, atol=1e-9)


def test_custom_loss_of_one_number_and_of_positions():
    x, y = _data()
    for fn in (lambda t, p: ops.mean(ops.square(t - p)),  # one number
               lambda t, p: ops.square(t - p)):  # one value per position
        fastcnn.utils.set_random_seed(5)
        model = fastcnn.Sequential([fastcnn.Input((3,)), layers.Dense(1)])
        model.compile(fastcnn.optimizers.SGD(0.05), fn)
        want = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
        assert model.evaluate(x, y, verbose=0) == pytest.approx(want, rel=1e-5)


def test_custom_metric_function_is_evaluated_on_arrays():
    def mean_abs(y_true, y_pred):
        return ops.mean(ops.abs(y_true - y_pred), axis=-1)

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(mean_abs(a, b), np.abs(a - b).mean(-1))


def test_python_control_flow_on_a_tensor_is_refused_at_build():
    class Branchy(layers.Layer):
        def call(self, inputs):
            if ops.sum(inputs) > 0:
                return inputs
            return -inputs

    with pytest.raises(TypeError, match="cannot be traced.*truth value"):
        Branchy()(fastcnn.Input((3,)))


def test_numpy_function_on_a_tensor_is_refused_at_build():
    class NumPyCall(layers.Layer):
        def call(self, inputs):
            return np.exp(inputs)

    with pytest.raises(TypeError, match="cannot be traced.*exp"):
        NumPyCall()(fastcnn.Input((3,)))

    class NumPyOnWeight(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(3,))

        def call(self, inputs):
            return inputs * np.exp(self.w)

    with pytest.raises(TypeError, match="cannot be traced.*exp"):
        NumPyOnWeight()(fastcnn.Input((3,)))


def test_saving_a_model_with_an_ops_layer(tmp_path):
    x, y = _data()
    inputs = fastcnn.Input((3,))
    model = fastcnn.Model(inputs, Linear(1)(Residual(2)(Linear(2)(inputs))))
    _fit(model, x, y, epochs=1)
    copy = reloaded(model, x, tmp_path)
    assert [type(l).__name__ for l in copy.layers] == ["InputLayer", "Linear", "Residual",
                                                        "Linear"]

def test_saving_a_functional_model_with_ops_between_its_layers(tmp_path):
    x, y = _data()
    inputs = fastcnn.Input((3,))
    h = layers.Dense(4)(inputs)
    h = ops.concatenate([ops.tanh(h), h[:, :2] * 2.0, ops.expand_dims(ops.mean(h, axis=-1), 1)],
                        axis=-1)
    h = ops.batch_normalization(h, np.zeros(7, np.float32), np.ones(7, np.float32), axis=-1)
    parts = ops.split(h, [3], axis=1)
    model = fastcnn.Model(inputs, layers.Dense(1)(ops.maximum(parts[0], 0.1) @ np.ones(
        (3, 2), np.float32) + ops.sum(parts[1], axis=1, keepdims=True)))
    _fit(model, x, y, epochs=1)
    reloaded(model, x, tmp_path)

    # an op recorded inside another op's function, on tensors that function made itself
    labels = fastcnn.Input((1,))
    logits = fastcnn.Input((4,))
    loss = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    with pytest.raises(TypeError, match="cannot be saved by its config"):
        fastcnn.Model([labels, logits], loss).save(tmp_path / "ops.keras")

    class Unregistered(Linear):
        pass

    inputs = fastcnn.Input((3,))
    model = fastcnn.Model(inputs, Unregistered(2)(inputs))
    reloaded(model, x, tmp_path, custom_objects={"Unregistered": Unregistered})


def test_saving_a_model_compiled_with_a_custom_loss(tmp_path):
    @register_keras_serializable(package="ops_tests")
    def scaled_mse(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1) * 2.0

    x, y = _data()
    model = fastcnn.Sequential([fastcnn.Input((3,)), layers.Dense(1)])
    model.compile("sgd", scaled_mse)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    copy = fastcnn.models.load_model(path)
    assert copy.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    assert copy.loss.fn is scaled_mse

    def plain_mse(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    model.compile("sgd", plain_mse)
    model.save(path)
    with pytest.raises(ValueError, match="Unknown function 'plain_mse'"):
        fastcnn.models.load_model(path)
    copy = fastcnn.models.load_model(path, custom_objects={"plain_mse": plain_mse})
    assert copy.loss.fn is plain_mse


def test_training_an_ops_model_is_bitwise_the_same_for_any_thread_count():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(256, 160)).astype(np.float32)
    y = rng.normal(size=(256, 1)).astype(np.float32)

    def my_loss(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1) + 0.1 * ops.max(ops.abs(y_pred))

    weights = []
    previous = fastcnn.get_num_threads()
    try:
        for n_threads in (1, 3):
            fastcnn.set_num_threads(n_threads)
            fastcnn.utils.set_random_seed(7)
            inputs = fastcnn.Input((160,))
            h = Residual(160)(Linear(160)(inputs))
            model = fastcnn.Model(inputs, Linear(1)(h / (ops.std(h, axis=-1, keepdims=True) + 1)))
            model.compile(fastcnn.optimizers.SGD(0.01), my_loss)
            model.fit(x, y, epochs=3, batch_size=256, verbose=0, shuffle=False)
            weights.append(model.get_weights())
    finally:
        fastcnn.set_num_threads(previous)
    for got, want in zip(weights[1], weights[0], strict=True):
        np.testing.assert_array_equal(got, want)


def test_subclassed_model_with_ops_and_its_own_weight_trains():
    class Scaled(fastcnn.Model):
        def __init__(self):
            super().__init__()
            self.hidden = layers.Dense(8, activation="relu")
            self.out = Linear(1)
            self.scale = self.add_weight(shape=(), initializer="ones")

        def call(self, inputs, training=False):
            h = self.hidden(inputs)
            return self.out(ops.concatenate([h, ops.square(inputs)], axis=-1)) * self.scale

    fastcnn.utils.set_random_seed(8)
    x, y = _data()
    model = Scaled()
    losses = _fit(model, x, y)
    assert losses[-1] < 0.2 * losses[0]
    assert float(model.scale) != 1.0  # the model's own weight trained too
    assert len(model.trainable_weights) == 5


def test_variable_assign_outside_a_trace_writes_at_once():
    layer = Linear(2)
    layer.build((None, 3))
    layer.b.assign(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(layer.b, [1.0, 2.0])
    layer.b.assign_add(1.0)
    layer.b.assign_sub(np.array([0.5, 0.5]))
    np.testing.assert_array_equal(layer.b, [1.5, 2.5])
    with pytest.raises(ValueError, match="Expected a value of shape"):
        layer.b.assign(np.ones(3))
    with pytest.raises(ValueError, match="only inside a layer's call"):
        layer.b.assign(fastcnn.Input((2,))[0])
    assert type(layer.b * 2) is np.ndarray  # arithmetic on a variable gives plain arrays
