"""L2 regularisation: the regularizer, the layer argument and config, and its place in the loss."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers, regularizers
from fastcnn._ops import dense as dense_ops
from fastcnn._ops import loss as loss_ops
from conftest import numeric_grad


def test_l2_penalty_and_gradient(rng):
    w = rng.standard_normal((5, 4))
    reg = regularizers.l2(0.03)
    assert isinstance(reg, regularizers.L2)
    assert reg(w) == pytest.approx(0.03 * np.sum(w ** 2), rel=1e-13)
    grad = np.zeros_like(w)
    reg.add_gradient(w, grad)
    np.testing.assert_allclose(grad, numeric_grad(lambda: reg(w), w), rtol=1e-7, atol=1e-10)


def test_l2_config_and_get():
    assert regularizers.L2().l2 == 0.01  # Keras's default
    reg = regularizers.get({"class_name": "L2", "config": {"l2": 0.5}})
    assert reg.get_config() == {"l2": 0.5}
    assert regularizers.serialize(reg) == {"class_name": "L2", "config": {"l2": 0.5}}
    assert regularizers.get("l2").l2 == 0.01
    assert regularizers.get(None) is None and regularizers.get(reg) is reg
    with pytest.raises(ValueError, match=r"Expected l2 to be a finite number >= 0, received l2=-1"):
        regularizers.L2(-1)
    with pytest.raises(ValueError, match="Unknown regularizer 'l3'"):
        regularizers.get("l3")


@pytest.mark.parametrize("make", [
    lambda reg: layers.Dense(3, kernel_regularizer=reg),
    lambda reg: layers.Conv2D(2, (2, 3), kernel_regularizer=reg),
])
def test_layer_config_round_trip(make):
    layer = make(regularizers.l2(0.25))
    config = layer.get_config()
    assert config["kernel_regularizer"] == {"class_name": "L2", "config": {"l2": 0.25}}
    clone = type(layer).from_config(config)
    assert clone.kernel_regularizer.l2 == 0.25 and clone.get_config() == config
    assert make(None).get_config()["kernel_regularizer"] is None
    assert make("l2").kernel_regularizer.l2 == 0.01
    with pytest.raises(ValueError, match="Unknown regularizer"):
        make(42)


def _model(l2, conv=False, seed=0):
    fastcnn.utils.set_random_seed(seed)
    body = ([fastcnn.Input(shape=(4, 4, 1)), layers.Conv2D(2, 3, kernel_regularizer=l2),
             layers.Flatten()] if conv else [fastcnn.Input(shape=(4,))])
    model = fastcnn.Sequential(body + [layers.Dense(3, kernel_regularizer=l2)])
    model.compile(optimizer=fastcnn.optimizers.SGD(1.0), loss="mse")
    return model


def _penalty(model, l2):
    return sum(l2 * np.sum(layer.kernel.astype(np.float64) ** 2) for layer in model.layers
               if hasattr(layer, "kernel"))


def _data(conv, n=8, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4, 4, 1) if conv else (n, 4)).astype(np.float32)
    return x, rng.standard_normal((n, 3)).astype(np.float32)


def test_reported_loss_is_data_loss_plus_penalty():
    x, y = _data(conv=True)
    model = _model(regularizers.l2(0.1), conv=True)
    plain = _model(None, conv=True)
    plain.set_weights(model.get_weights())
    data_loss = plain.evaluate(x, y, verbose=0)
    penalty = _penalty(model, 0.1)
    assert penalty > 0.1 * data_loss
    evaluated = model.evaluate(x, y, batch_size=3, verbose=0)
    assert evaluated == pytest.approx(data_loss + penalty, rel=1e-6)
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    assert history.history["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-6)


def test_training_gradient_includes_the_penalty():
    """One SGD step with learning rate 1 moves each weight by minus its gradient; the gradient
    must be that of evaluate's loss, penalty included. Linear layers and MSE make the loss
    quadratic in the weights, so central differences are exact but for float32 rounding."""
    x, y = _data(conv=False)
    model = _model(regularizers.l2(0.2))
    kernel, bias = model.layers[0].kernel, model.layers[0].bias
    before = [kernel.copy(), bias.copy()]

    def total():
        return model.evaluate(x, y, batch_size=len(x), verbose=0)

    numeric = [numeric_grad(total, w, eps=1e-2) for w in (kernel, bias)]
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    for w0, w1, g in zip(before, (kernel, bias), numeric):
        np.testing.assert_allclose(w0 - w1, g, rtol=1e-3, atol=1e-5)
    assert np.abs(numeric[0] - 2 * 0.2 * before[0]).max() > 0.01  # the penalty's part matters


def test_ops_level_gradient_in_float64(rng):
    """d/dW [mean_i mse(x W) + l2 sum(W^2)] from the kernels, against central differences."""
    x, y, w = rng.standard_normal((5, 4)), rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    reg = regularizers.l2(0.3)

    def total():
        out = dense_ops.dense_forward(x, w, None)
        rows, _ = loss_ops.mean_squared_error(out, y, 1 / len(x))
        return float(rows.mean()) + reg(w)

    out = dense_ops.dense_forward(x, w, None)
    _, dout = loss_ops.mean_squared_error(out, y, 1 / len(x))
    grad = dense_ops.dense_backward_weight(x, dout)
    reg.add_gradient(w, grad)
    np.testing.assert_allclose(grad, numeric_grad(total, w), rtol=1e-7, atol=1e-10)


def test_frozen_layers_add_no_penalty():
    x, y = _data(conv=False)
    model = _model(regularizers.l2(0.1))
    plain = _model(None)
    plain.set_weights(model.get_weights())
    model.layers[0].trainable = False
    assert model.evaluate(x, y, verbose=0) == pytest.approx(plain.evaluate(x, y, verbose=0))


def test_model_config_round_trip_keeps_the_regularizer():
    model = _model(regularizers.l2(0.05), conv=True)
    clone = fastcnn.Sequential.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.layers[0].kernel_regularizer.l2 == 0.05


@pytest.mark.parametrize("reg,penalty", [
    (regularizers.L1(0.03), lambda w: 0.03 * np.abs(w).sum()),
    (regularizers.L1L2(l1=0.02, l2=0.05), lambda w: 0.02 * np.abs(w).sum() + 0.05 * (w ** 2).sum()),
    (regularizers.l1_l2(l1=0.1), lambda w: 0.1 * np.abs(w).sum()),
])
def test_l1_and_l1l2_penalty_and_gradient(reg, penalty, rng):
    w = rng.standard_normal((6, 5))
    assert reg(w) == pytest.approx(penalty(w), rel=1e-13)
    grad = np.zeros_like(w)
    reg.add_gradient(w, grad, scale=0.5)
    np.testing.assert_allclose(grad, 0.5 * numeric_grad(lambda: reg(w), w), rtol=1e-7,
                               atol=1e-10)
    w[0, 0] = 0
    grad = np.zeros_like(w)
    reg.add_gradient(w, grad)
    assert grad[0, 0] == 0  # |w| has no gradient at 0, as in TensorFlow


def test_l1_names_defaults_and_configs():
    assert regularizers.get("l1").l1 == 0.01 and regularizers.get("L1").l2 == 0
    reg = regularizers.get("l1_l2")
    assert (reg.l1, reg.l2) == (0.0, 0.0)  # Keras 3's L1L2 defaults
    for reg in (regularizers.L1(0.2), regularizers.L1L2(0.1, 0.3)):
        again = regularizers.get(regularizers.serialize(reg))
        assert type(again) is type(reg) and again.get_config() == reg.get_config()
    with pytest.raises(ValueError, match="l1 to be a finite number >= 0"):
        regularizers.L1(-0.1)


def _regularized_dense(seed=0, **kwargs):
    fastcnn.utils.set_random_seed(seed)
    model = fastcnn.Sequential([fastcnn.Input(shape=(4,)), layers.Dense(3, **kwargs)])
    model.compile(optimizer=fastcnn.optimizers.SGD(1.0), loss="mse")
    model.layers[0].bias[...] = [0.3, -0.2, 0.0]
    return model


def test_bias_and_activity_regularizers_in_loss_and_gradient():
    """Keras's terms, restated: the loss is the data loss, plus each weight's penalty, plus the
    activity penalty of the layer's output y (N, units) divided by the batch size N. One SGD
    step of rate 1 moves the weights by minus the gradient of that total."""
    x, y = _data(conv=False)
    kreg, breg, areg = (regularizers.L1L2(0.01, 0.02), regularizers.L1(0.05),
                        regularizers.L1L2(0.03, 0.04))
    model = _regularized_dense(kernel_regularizer=kreg, bias_regularizer=breg,
                               activity_regularizer=areg)
    layer = model.layers[0]
    w, b = layer.kernel.astype(np.float64), layer.bias.astype(np.float64)
    out = x @ w + b
    n = len(x)
    total = (((out - y) ** 2).mean() + 0.01 * np.abs(w).sum() + 0.02 * (w ** 2).sum()
             + 0.05 * np.abs(b).sum() + (0.03 * np.abs(out).sum() + 0.04 * (out ** 2).sum()) / n)
    assert model.evaluate(x, y, batch_size=n, verbose=0) == pytest.approx(total, rel=1e-5)
    dout = 2 * (out - y) / out.size + (0.03 * np.sign(out) + 2 * 0.04 * out) / n
    dw = x.T @ dout + 0.01 * np.sign(w) + 2 * 0.02 * w
    db = dout.sum(axis=0) + 0.05 * np.sign(b)
    history = model.fit(x, y, batch_size=n, epochs=1, verbose=0, shuffle=False)
    assert history.history["loss"][0] == pytest.approx(total, rel=1e-5)
    np.testing.assert_allclose(layer.kernel, w - dw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias, b - db, rtol=1e-5, atol=1e-6)


def test_activity_regularizer_on_fused_layers():
    """A Conv2D with relu before a max pooling, and a softmax output under cross-entropy, are
    layers the planner fuses; with an activity regularizer each runs as its own step, and fit
    gives the same weights with and without fusion."""
    def trained(fuse):
        fastcnn.utils.set_random_seed(2)
        model = fastcnn.Sequential([
            fastcnn.Input(shape=(6, 6, 2)),
            layers.Conv2D(3, 3, activation="relu", activity_regularizer=regularizers.L1(0.01)),
            layers.MaxPooling2D(2), layers.Flatten(),
            layers.Dense(3, activation="softmax", activity_regularizer=regularizers.L2(0.1))])
        model.compile(optimizer=fastcnn.optimizers.SGD(0.1), loss="categorical_crossentropy",
                      fuse=fuse)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((16, 6, 6, 2)).astype(np.float32)
        y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
        loss = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"]
        return model.get_weights(), loss, model, x

    fused, fused_loss, model, x = trained(True)
    plain, plain_loss, _, _ = trained(False)
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused_loss, plain_loss, rtol=1e-5)
    # the softmax layer's penalty is on its probabilities, as Keras's is on the output
    probs = model.predict(x, verbose=0).astype(np.float64)
    assert 0.1 * (probs ** 2).sum() / len(x) > 0.001


def test_new_arguments_in_layer_configs():
    from fastcnn import constraints
    for make in (layers.Dense, lambda n, **k: layers.Conv2D(n, 2, **k),
                 lambda n, **k: layers.Conv1D(n, 2, **k),
                 lambda n, **k: layers.Conv2DTranspose(n, 2, **k)):
        layer = make(2, bias_regularizer="l1", activity_regularizer=regularizers.L2(0.3),
                     kernel_constraint=constraints.MaxNorm(1.5), bias_constraint="non_neg")
        config = layer.get_config()
        assert config["bias_regularizer"] == {"class_name": "L1", "config": {"l1": 0.01}}
        assert config["activity_regularizer"] == {"class_name": "L2", "config": {"l2": 0.3}}
        assert config["kernel_constraint"] == {"class_name": "MaxNorm",
                                               "config": {"max_value": 1.5, "axis": 0}}
        assert config["bias_constraint"] == {"class_name": "NonNeg", "config": {}}
        assert type(layer).from_config(config).get_config() == config


def test_depthwise_and_separable_take_the_new_arguments(rng):
    from fastcnn import constraints
    for make, constrained in ((layers.DepthwiseConv2D, "depthwise_constraint"),
                              (lambda k, **a: layers.SeparableConv2D(3, k, **a),
                               "pointwise_constraint")):
        layer = make(2, activity_regularizer=regularizers.L2(0.2), bias_constraint="non_neg",
                     **{constrained: constraints.MaxNorm(0.1, axis=[0, 1, 2])})
        config = layer.get_config()
        assert config[constrained]["class_name"] == "MaxNorm"
        assert type(layer).from_config(config).get_config() == config
        model = fastcnn.Sequential([fastcnn.Input(shape=(5, 5, 2)), layer, layers.Flatten()])
        model.compile(optimizer=fastcnn.optimizers.SGD(0.5), loss="mse")
        x = rng.standard_normal((6, 5, 5, 2)).astype(np.float32)
        out = model.predict(x, verbose=0)
        y = rng.standard_normal(out.shape).astype(np.float32)
        expected = ((out - y) ** 2).mean() + 0.2 * (out.astype(np.float64) ** 2).sum() / len(x)
        assert model.evaluate(x, y, batch_size=6, verbose=0) == pytest.approx(expected, rel=1e-5)
        model.fit(x, y, batch_size=3, epochs=1, verbose=0)
        kernel = getattr(layer, "kernel", None)
        kernel = kernel if constrained == "depthwise_constraint" else layer.pointwise_kernel
        norms = np.sqrt((kernel.astype(np.float64) ** 2).sum(axis=(0, 1, 2)))
        assert np.all(norms <= 0.1 + 1e-6) and np.all(layer.bias >= 0)
