"""Per-position sample weights through fit, evaluate and train_on_batch, as Keras weighs them:
each position's loss (a pixel's, for an image output) times its weight, and with the default
reduction "sum_over_batch_size" the sum divided by the number of loss values (samples times
positions), not by the sum of the weights. class_weight, which gives a sample one class, is
refused for targets with a class per position, as Keras refuses it."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers

B, H, W, C, K = 6, 4, 5, 3, 2  # samples, height, width, input channels, classes


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, H, W, C)).astype(np.float32)
    labels = rng.integers(0, K, (B, H, W))
    weights = rng.uniform(0, 3, (B, H, W)).astype(np.float32)
    return x, labels, weights


def _segmenter(loss="sparse_categorical_crossentropy", lr=0.5, **compile_args):
    """A 1x1 convolution with a softmax per pixel: logits = x @ kernel + bias."""
    fastcnn.utils.set_random_seed(5)
    model = fastcnn.Sequential([fastcnn.Input((H, W, C)),
                                layers.Conv2D(K, 1, activation="softmax")])
    model.compile(fastcnn.optimizers.SGD(lr), loss, **compile_args)
    return model


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _reference(model, x, labels, weights):
    """Keras's weighted sparse cross-entropy (float64) and its gradients for the kernel and
    bias: loss = sum(w * -log p[label]) / (B * H * W)."""
    kernel, bias = (w.astype(np.float64) for w in model.get_weights())
    p = _softmax(x.astype(np.float64) @ kernel[0, 0] + bias)
    onehot = np.eye(K)[labels]
    m = labels.size
    loss = float(np.sum(weights * -np.log(np.sum(p * onehot, axis=-1)))) / m
    dlogits = weights[..., None] * (p - onehot) / m
    return loss, np.einsum("bhwc,bhwk->ck", x, dlogits)[None, None], dlogits.sum(axis=(0, 1, 2))


def test_evaluate_weighs_each_pixel_and_divides_by_the_pixels():
    x, labels, weights = _data()
    model = _segmenter()
    want, _, _ = _reference(model, x, labels, weights)
    got = model.evaluate(x, labels, sample_weight=weights, batch_size=B, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # batches of 2: the mean of equal batches' losses is the same
    got = model.evaluate(x, labels, sample_weight=weights, batch_size=2, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # a trailing axis of 1 is the same weights
    got = model.evaluate(x, labels, sample_weight=weights[..., None], batch_size=B, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_per_sample_weights_weigh_every_pixel_of_the_sample():
    x, labels, _ = _data()
    per_sample = np.linspace(0.5, 2, B).astype(np.float32)
    model = _segmenter()
    want, _, _ = _reference(model, x, labels, np.broadcast_to(per_sample[:, None, None],
                                                              (B, H, W)))
    got = model.evaluate(x, labels, sample_weight=per_sample, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("how", ["train_on_batch", "fit", "generator"])
def test_one_step_follows_the_weighted_gradient(how):
    x, labels, weights = _data()
    model = _segmenter()
    loss, dkernel, dbias = _reference(model, x, labels, weights)
    kernel, bias = model.get_weights()
    if how == "train_on_batch":
        logged = model.train_on_batch(x, labels, sample_weight=weights)
    elif how == "fit":
        logged = model.fit(x, labels, sample_weight=weights, batch_size=B, shuffle=False,
                           verbose=0).history["loss"][0]
    else:
        logged = model.fit(iter([(x, labels, weights)]), verbose=0).history["loss"][0]
    np.testing.assert_allclose(logged, loss, rtol=1e-5)
    new_kernel, new_bias = model.get_weights()
    np.testing.assert_allclose(new_kernel, kernel - 0.5 * dkernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_bias, bias - 0.5 * dbias, rtol=1e-5, atol=1e-6)


def test_mean_squared_error_weighs_each_position_of_a_regression_map():
    """MSE's per-position loss is the mean over the last axis; weights (B, H, W) weigh it."""
    x, _, weights = _data()
    rng = np.random.default_rng(1)
    target = rng.standard_normal((B, H, W, K)).astype(np.float32)
    model = _segmenter("mse")
    prediction = model.predict(x, verbose=0).astype(np.float64)
    want = np.sum(weights * np.mean((prediction - target) ** 2, axis=-1)) / (B * H * W)
    got = model.evaluate(x, target, sample_weight=weights, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_a_zero_weight_pixel_does_not_train():
    """Only the one pixel with weight 1 counts: the step equals the step on that pixel alone,
    with its loss divided by all B * H * W positions."""
    x, labels, _ = _data()
    weights = np.zeros((B, H, W), np.float32)
    weights[2, 1, 3] = 1
    model = _segmenter()
    loss, dkernel, _ = _reference(model, x, labels, weights)
    kernel, _ = model.get_weights()
    np.testing.assert_allclose(model.train_on_batch(x, labels, sample_weight=weights), loss,
                               rtol=1e-5)
    np.testing.assert_allclose(model.get_weights()[0], kernel - 0.5 * dkernel, rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("shape", [(B, H), (B, H, W, K), (B, W, H), (B + 1,)])
def test_weights_of_another_shape_are_refused_naming_the_shapes(shape):
    x, labels, _ = _data()
    with pytest.raises(ValueError, match=r"Expected sample_weight of shape \(6,\), one weight "
                                         r"per sample, or \(6, 4, 5\), one per position"):
        _segmenter().fit(x, labels, sample_weight=np.ones(shape), verbose=0)


def test_a_dense_output_takes_one_weight_per_sample():
    """Outputs (samples, classes) have no positions: Keras has no weight per class entry."""
    rng = np.random.default_rng(0)
    model = fastcnn.Sequential([fastcnn.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"Expected sample_weight of shape \(8,\), one weight "
                                         r"per sample, received shape \(8, 3\)"):
        model.fit(rng.standard_normal((8, 4)), np.eye(3)[rng.integers(0, 3, 8)],
                  sample_weight=np.ones((8, 3)), verbose=0)


def test_class_weight_is_refused_for_a_class_per_pixel_as_keras_refuses_it():
    x, labels, _ = _data()
    with pytest.raises(ValueError, match=r"class_weight is not supported for 3\+ dimensional "
                                         r"targets.*sample_weight of shape \(samples, "
                                         r"\*positions\)"):
        _segmenter().fit(x, labels, class_weight={0: 1.0, 1: 3.0}, verbose=0)
