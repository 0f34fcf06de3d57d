"""Graph models on tensors of any rank and size, against NumPy:

- Dense on rank-3 and rank-4 inputs maps the last axis (einsum), forward and in one SGD step;
- a fully convolutional model (Input of shape (None, None, 3)) predicts and trains on two image
  sizes as models built for each size do;
- per-pixel losses: a segmentation net under sparse categorical cross-entropy on (N, H, W)
  labels, and a one-unit sigmoid image output under binary cross-entropy, with their per-pixel
  accuracy, their loss and one SGD step of the last (1x1) convolution.

One SGD step with the whole batch and no shuffling makes old - new = learning_rate * gradient of
the batch's mean loss, which NumPy computes in float64 from the outputs before the step.
"""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers

LR = 0.5


def one_sgd_step(model, x, y, loss, metrics=None):
    """The History of one step of SGD(LR) on the whole batch, in order."""
    model.compile(fastcnn.optimizers.SGD(learning_rate=LR), loss, metrics=metrics)
    return model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0).history


def assert_step(old, new, grad, name=""):
    """old - new against LR * grad. The step is compared rather than the weights, whose size
    would hide it. Its error is mostly the float32 rounding of old and new (6e-8 on weights of
    order 1): measured, at most 2e-6 of the step's largest entry, a tenth of this tolerance."""
    step = LR * np.asarray(grad, np.float64)
    scale = np.abs(step).max()
    assert scale > 1e-4, f"{name}: no step to check"
    np.testing.assert_allclose(old.astype(np.float64) - new, step, rtol=1e-5, atol=2e-5 * scale,
                               err_msg=name)


@pytest.mark.parametrize("shape", [(6, 5, 4), (6, 3, 2, 4)], ids=["rank3", "rank4"])
def test_dense_maps_the_last_axis_of_any_rank(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    fastcnn.utils.set_random_seed(30)
    dense = layers.Dense(3, activation="tanh", bias_initializer="random_normal")
    inputs = fastcnn.Input(shape[1:])
    model = fastcnn.Model(inputs, dense(inputs))
    want = np.tanh(np.einsum("...i,ij->...j", x.astype(np.float64), dense.kernel) + dense.bias)
    for got in (dense(x), model.predict(x, verbose=0), model(x)):
        assert got.shape == (*shape[:-1], 3)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_dense_on_rank_4_trains_as_numpy_differentiates_it():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3, 2, 4)).astype(np.float32)
    y = rng.standard_normal((6, 3, 2, 2)).astype(np.float32)
    fastcnn.utils.set_random_seed(31)
    hidden = layers.Dense(5, activation="tanh", bias_initializer="random_normal")
    head = layers.Dense(2, bias_initializer="random_normal")
    inputs = fastcnn.Input((3, 2, 4))
    model = fastcnn.Model(inputs, head(hidden(inputs)))
    (k1, b1, k2, b2) = old = [w.astype(np.float64) for w in model.get_weights()]
    h = np.tanh(np.einsum("...i,ij->...j", x, k1) + b1)
    out = np.einsum("...i,ij->...j", h, k2) + b2
    # Keras's MSE: the mean over the last axis, then over positions and samples: over all.
    history = one_sgd_step(model, x, y, "mse")
    np.testing.assert_allclose(history["loss"][0], ((out - y) ** 2).mean(), rtol=1e-5)
    d_out = 2 * (out - y) / out.size
    d_z = np.einsum("...j,ij->...i", d_out, k2) * (1 - h ** 2)
    grads = [np.einsum("nabi,nabj->ij", x, d_z), d_z.sum(axis=(0, 1, 2)),
             np.einsum("nabi,nabj->ij", h, d_out), d_out.sum(axis=(0, 1, 2))]
    for before, after, grad, name in zip(old, model.get_weights(), grads,
                                         ["k1", "b1", "k2", "b2"]):
        assert_step(before, after, grad, name)


def fully_convolutional(input_shape):
    """Conv2D -> GlobalAveragePooling2D -> Dense, with a conv + max-pool step that the planner
    fuses in between."""
    inputs = fastcnn.Input(input_shape)
    features = layers.Conv2D(4, 3, activation="relu", bias_initializer="random_normal")(inputs)
    features = layers.MaxPooling2D(2)(layers.Conv2D(4, 3, activation="relu")(features))
    pooled = layers.GlobalAveragePooling2D()(features)
    return fastcnn.Model(inputs, layers.Dense(2, activation="softmax")(pooled))


def test_a_fully_convolutional_model_takes_any_image_size():
    """Predictions and SGD steps on 8x8, then 11x9, then 8x8 images equal, bitwise, those of
    models built for one size with the same weights: each call sizes its own buffers."""
    rng = np.random.default_rng(2)
    sizes = [(8, 8), (11, 9), (8, 8)]  # odd sizes: the pooling drops a row and a column
    xs = [rng.standard_normal((5, h, w, 3)).astype(np.float32) for h, w in sizes]
    ys = [rng.integers(0, 2, 5) for _ in sizes]
    fastcnn.utils.set_random_seed(32)
    model = fully_convolutional((None, None, 3))
    model.compile(fastcnn.optimizers.SGD(learning_rate=LR), "sparse_categorical_crossentropy")
    for x, y, (h, w) in zip(xs, ys, sizes):
        twin = fully_convolutional((h, w, 3))
        twin.set_weights(model.get_weights())
        twin.seed = model.seed
        twin.compile(fastcnn.optimizers.SGD(learning_rate=LR), "sparse_categorical_crossentropy")
        prediction = model.predict(x, verbose=0)
        assert prediction.shape == (5, 2)
        np.testing.assert_array_equal(prediction, twin.predict(x, verbose=0))
        history = model.fit(x, y, batch_size=2, verbose=0).history
        assert history == twin.fit(x, y, batch_size=2, verbose=0).history
        for a, b in zip(model.get_weights(), twin.get_weights()):
            np.testing.assert_array_equal(a, b)


def features_and_outputs(model, x):
    """The input of the last layer (a 1x1 convolution) and the model's outputs, by NumPy's
    float64 from the features a sub-model cut at that input predicts."""
    last = model.layers[-1]
    features = fastcnn.Model(model.inputs, last.input).predict(x, verbose=0).astype(np.float64)
    kernel, bias = (w.astype(np.float64) for w in last.weights)
    return features, np.einsum("nhwc,ck->nhwk", features, kernel[0, 0]) + bias


def segmentation_net(classes):
    inputs = fastcnn.Input((6, 6, 2))
    hidden = layers.Conv2D(5, 3, padding="same", activation="relu",
                           bias_initializer="random_normal")(inputs)
    return fastcnn.Model(inputs, layers.Conv2D(classes, 1, padding="same", activation="softmax",
                                               bias_initializer="random_normal")(hidden))


def test_per_pixel_sparse_cross_entropy_and_accuracy():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 6, 2)).astype(np.float32)
    labels = rng.integers(0, 3, (4, 6, 6))
    fastcnn.utils.set_random_seed(33)
    model = segmentation_net(3)
    features, logits = features_and_outputs(model, x)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), probs, rtol=1e-5, atol=1e-6)
    old = model.layers[-1].get_weights()

    history = one_sgd_step(model, x, labels, "sparse_categorical_crossentropy", ["accuracy"])
    # Accuracy is per pixel: argmax over classes against the label, over N * H * W pixels.
    assert history["accuracy"] == [np.mean(probs.argmax(-1) == labels)]
    picked = np.take_along_axis(probs, labels[..., None], -1)
    np.testing.assert_allclose(history["loss"][0], -np.log(picked).mean(), rtol=1e-5)
    d_logits = (probs - np.eye(3)[labels]) / labels.size  # the mean over all pixels
    grads = [np.einsum("nhwc,nhwk->ck", features, d_logits)[None, None], d_logits.sum((0, 1, 2))]
    for before, after, grad, name in zip(old, model.layers[-1].get_weights(), grads,
                                         ["kernel", "bias"]):
        assert_step(before, after, grad, name)

    after = model.predict(x, verbose=0)
    logs = model.evaluate(x, labels, verbose=0, return_dict=True)
    assert logs["accuracy"] == np.mean(after.argmax(-1) == labels)


def test_per_pixel_binary_cross_entropy_on_a_one_unit_sigmoid_image():
    """An autoencoder-like net asked to reproduce the sign of each pixel."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 6, 6, 1)).astype(np.float32)
    y = (x > 0).astype(np.float32)
    fastcnn.utils.set_random_seed(34)
    inputs = fastcnn.Input((6, 6, 1))
    hidden = layers.Conv2D(4, 3, padding="same", activation="tanh",
                           bias_initializer="random_normal")(inputs)
    model = fastcnn.Model(inputs, layers.Conv2D(1, 1, activation="sigmoid",
                                                bias_initializer="random_normal")(hidden))
    features, logits = features_and_outputs(model, x)
    probs = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(model.predict(x, verbose=0), probs, rtol=1e-5, atol=1e-6)
    old = model.layers[-1].get_weights()

    history = one_sgd_step(model, x, y, "binary_crossentropy", ["accuracy"])
    # "accuracy" under binary cross-entropy is binary accuracy, per pixel, at 0.5.
    assert history["accuracy"] == [np.mean((probs > 0.5) == y)]
    bce = -(y * np.log(probs) + (1 - y) * np.log(1 - probs))
    np.testing.assert_allclose(history["loss"][0], bce.mean(), rtol=1e-5)
    d_logits = (probs - y) / y.size  # through the sigmoid, of the mean over all pixels
    grads = [np.einsum("nhwc,nhwk->ck", features, d_logits)[None, None], d_logits.sum((0, 1, 2))]
    for before, after, grad, name in zip(old, model.layers[-1].get_weights(), grads,
                                         ["kernel", "bias"]):
        assert_step(before, after, grad, name)
