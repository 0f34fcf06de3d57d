"""BatchNormalization: Keras's weights and moving statistics, training and inference, against
PyTorch (the contract every layer meets runs in test_layers.LAYER_CASES)."""
import numpy as np
import pytest
from conftest import call_layer

import fastcnn
from fastcnn import layers


def built(layer, input_shape):
    layer.build((None, *input_shape))
    return layer


def random_bn(c, rng, **kwargs):
    bn = built(layers.BatchNormalization(**kwargs), (5, 4, c))
    bn.set_weights([1 + 0.3 * rng.standard_normal(c), rng.standard_normal(c),
                    rng.standard_normal(c), rng.uniform(0.5, 2, c)])
    return bn


def test_batchnorm_weights_in_keras_order():
    bn = built(layers.BatchNormalization(), (6, 6, 3))
    assert bn._weight_names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.tolist() for w in bn.get_weights()] == [[1] * 3, [0] * 3, [0] * 3, [1] * 3]
    assert bn.trainable_weights == bn.weights[:2] and bn.non_trainable_weights == bn.weights[2:]
    no_scale = built(layers.BatchNormalization(scale=False), (3,))
    assert no_scale._weight_names == ["beta", "moving_mean", "moving_variance"]
    bare = built(layers.BatchNormalization(center=False, scale=False), (3,))
    assert bare._weight_names == ["moving_mean", "moving_variance"] and not bare.trainable_weights


def test_batchnorm_training_uses_batch_statistics(rng):
    bn = random_bn(3, rng)
    gamma, beta, moving_mean, moving_var = bn.get_weights()
    x = (rng.standard_normal((8, 5, 4, 3)) * 3 + 2).astype(np.float32)
    y = bn(x, training=True).astype(np.float64)
    mean, var = x.mean(axis=(0, 1, 2), dtype=np.float64), x.var(axis=(0, 1, 2), dtype=np.float64)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, rtol=1e-4, atol=1e-4)
    # per channel, (y - beta) / gamma has mean 0 and (almost, by epsilon) unit variance
    np.testing.assert_allclose(((y - beta) / gamma).mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean, moving_mean * 0.99 + mean * 0.01, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance, moving_var * 0.99 + var * 0.01, rtol=1e-5)


def test_batchnorm_inference_uses_moving_statistics_and_keeps_them(rng):
    bn = random_bn(3, rng)
    before = bn.get_weights()
    gamma, beta, moving_mean, moving_var = before
    x = rng.standard_normal((4, 5, 4, 3)).astype(np.float32)
    y = bn(x, training=False)
    np.testing.assert_allclose(y, (x - moving_mean) / np.sqrt(moving_var + 1e-3) * gamma + beta,
                               rtol=1e-5, atol=1e-5)
    for a, b in zip(bn.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_batchnorm_moving_statistics_follow_the_formula_over_steps(rng):
    bn = built(layers.BatchNormalization(momentum=0.7), (4,))
    mean, var = np.zeros(4), np.ones(4)
    for _ in range(3):
        x = (rng.standard_normal((16, 4)) * 2 - 1).astype(np.float32)
        bn(x, training=True)
        mean = mean * 0.7 + x.mean(axis=0, dtype=np.float64) * 0.3
        var = var * 0.7 + x.var(axis=0, dtype=np.float64) * 0.3  # biased, as Keras
    np.testing.assert_allclose(bn.moving_mean, mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance, var, rtol=1e-5)


def test_frozen_batchnorm_runs_in_inference_mode(rng):
    """Keras 3: a non-trainable BatchNormalization uses and keeps its moving statistics."""
    bn = random_bn(3, rng, trainable=False)
    before = bn.get_weights()
    x = rng.standard_normal((4, 5, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(bn(x, training=True), bn(x, training=False))
    for a, b in zip(bn.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert bn.trainable_weights == [] and len(bn.non_trainable_weights) == 4


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (7, 3)])
def test_batchnorm_matches_torch(training, shape, rng):
    torch = pytest.importorskip("torch")
    c = shape[-1]
    bn = random_bn(c, rng) if len(shape) == 4 else built(layers.BatchNormalization(), (c,))
    gamma, beta, moving_mean, moving_var = bn.get_weights()
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    y, dx, grads = call_layer(bn, x, dy, training)

    # torch wants channels second: view NHWC / NC as (rows, C), which batch_norm accepts
    tx = torch.tensor(x.reshape(-1, c), dtype=torch.float64, requires_grad=True)
    tg = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.batch_norm(
        tx, torch.tensor(moving_mean, dtype=torch.float64), torch.tensor(moving_var, dtype=torch.float64),
        tg, tb, training=training, momentum=0.01, eps=1e-3)
    (ty * torch.tensor(dy.reshape(-1, c), dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(y.reshape(-1, c), ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx.reshape(-1, c), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads[0], tg.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads[1], tb.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_fused_batchnorm_add_relu_matches_torch(training, rng):
    """relu(BN(x) + residual), the planner's fused step, forward and every gradient."""
    torch = pytest.importorskip("torch")
    from fastcnn.engine.execution import CallContext
    c = 3
    bn = random_bn(c, rng)
    gamma, beta, moving_mean, moving_var = bn.get_weights()
    x = (rng.standard_normal((6, 5, 4, c)) * 2 + 1).astype(np.float32)
    res, dy = (rng.standard_normal(x.shape).astype(np.float32) for _ in range(2))
    ctx = CallContext()
    ctx.grads = [np.zeros_like(w) if t else None for w, t in zip(bn._weights, bn._weight_trainable)]
    y = bn.forward_fused(x, ctx, training, residual=res, relu=True).copy()
    dx, dres = bn.backward_fused(dy, ctx, True)

    as_t = lambda a, grad=False: torch.tensor(a.reshape(-1, c) if a.ndim > 1 else a,
                                              dtype=torch.float64, requires_grad=grad)
    tx, tg, tb, tr = as_t(x, True), as_t(gamma, True), as_t(beta, True), as_t(res, True)
    ty = torch.relu(torch.nn.functional.batch_norm(
        tx, as_t(moving_mean), as_t(moving_var), tg, tb, training=training, eps=1e-3) + tr)
    (ty * as_t(dy)).sum().backward()
    tol = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y.reshape(-1, c), ty.detach().numpy(), **tol)
    for got, want in ((dx, tx), (dres, tr), (ctx.grads[0], tg), (ctx.grads[1], tb)):
        np.testing.assert_allclose(got.reshape(want.grad.shape), want.grad.numpy(), **tol)


def test_fused_batchnorm_training_is_thread_count_independent():
    """A residual block whose fused steps have enough rows to run on several threads."""
    def fit(threads):
        fastcnn.set_num_threads(threads)
        fastcnn.utils.set_random_seed(4)
        inputs = fastcnn.Input((16, 16, 4))
        z = layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(inputs))
        y = layers.BatchNormalization()(
            layers.Conv2D(8, 3, padding="same")(layers.Activation("relu")(z)))
        # a name of its own: test_functional_api expects the first unnamed Add to be "add"
        add = layers.Add(name="block_add")
        x = layers.Activation("relu")(add([layers.Conv2D(8, 1)(inputs), y]))
        model = fastcnn.Model(inputs, layers.Dense(2, activation="softmax")(
            layers.GlobalAveragePooling2D()(x)))
        model.compile("sgd", "sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        model.fit(rng.standard_normal((96, 16, 16, 4)).astype(np.float32) * 2 + 1,
                  rng.integers(0, 2, 96), batch_size=48, epochs=2, verbose=0)
        return model.get_weights()
    try:
        runs = [fit(t) for t in (1, 2, 3)]
    finally:
        fastcnn.set_num_threads(None)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_batchnorm_trains_after_conv_and_dense():
    fastcnn.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8, 8, 1)).astype(np.float32) * 5 + 3
    y = (x.mean(axis=(1, 2, 3)) > 3).astype(np.int64)
    model = fastcnn.Sequential([
        fastcnn.Input(shape=(8, 8, 1)),
        layers.Conv2D(4, 3, use_bias=False), layers.BatchNormalization(), layers.ReLU(),
        layers.Flatten(), layers.Dense(8), layers.BatchNormalization(), layers.Activation("relu"),
        layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    conv_bn = model.layers[1]
    history = model.fit(x, y, batch_size=8, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.allclose(conv_bn.moving_mean, 0) and not np.allclose(conv_bn.moving_variance, 1)
    assert len(model.trainable_weights) == 1 + 2 + 2 + 2 + 2  # conv, bn, dense, bn, dense
    lines = []
    model.summary(print_fn=lines.append)
    assert "Non-trainable params: 24 " in lines[0]  # 2 * (4 + 8) moving statistics


def test_batchnorm_without_scale_and_center_normalises_only(rng):
    bn = built(layers.BatchNormalization(center=False, scale=False, epsilon=1e-6), (5,))
    x = rng.standard_normal((9, 5)).astype(np.float32)
    y, dx, _ = call_layer(bn, x, np.ones_like(x))  # a constant gradient vanishes through it
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-6), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, 0, atol=1e-5)


@pytest.mark.parametrize("make,message", [
    (lambda: layers.BatchNormalization(momentum=1.5), "momentum=1.5"),
    (lambda: layers.BatchNormalization(epsilon=0), "epsilon=0"),
    (lambda: layers.BatchNormalization(axis=[1, 2]), r"axis=\[1, 2\]"),
    (lambda: layers.BatchNormalization(gamma_initializer="twos"), "twos"),
    (lambda: built(layers.BatchNormalization(axis=1), (4, 4, 3)), "axis=-1 or axis=3 .* received axis=1"),
])
def test_batchnorm_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_batchnorm_accepts_the_positive_last_axis():
    assert layers.BatchNormalization(axis=3)(fastcnn.Input((4, 4, 2))).shape == (None, 4, 4, 2)
    assert layers.BatchNormalization(axis=1)(fastcnn.Input((7,))).shape == (None, 7)
