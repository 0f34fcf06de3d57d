"""The patterns of Keras's functional-API guide, in our own words with fastcnn's layers: each
model builds, trains, evaluates, predicts, and saves and loads to predict bitwise alike.

- a model of several inputs and outputs (inputs, losses, metrics and loss weights as dicts and
  as lists; Keras's log names);
- a layer shared by two branches, whose gradient is the sum over its uses;
- a feature extractor cut from a trained model (functional and Sequential);
- a small ResNet with Add and a 1x1 projection shortcut;
- a model nested in another, and one model used on two inputs (siamese).
"""
import numpy as np
import pytest
from conftest import check_weight_gradients, reloaded, toy_data

import fastcnn
from fastcnn import layers


def fitted(model, x, y, loss="categorical_crossentropy", epochs=2, **compile_args):
    model.compile("adam", loss, **compile_args)
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    return model


# -- several inputs and outputs ----------------------------------------------------------------

def two_headed(dict_outputs):
    """An image and a vector in; a class (softmax) and a score (linear) out."""
    fastcnn.utils.set_random_seed(1)
    image = fastcnn.Input(shape=(8, 8, 1), name="image")
    meta = fastcnn.Input(shape=(5,), name="meta")
    x = layers.Conv2D(4, 3, activation="relu")(image)
    x = layers.GlobalAveragePooling2D()(x)
    m = layers.Dense(6, activation="relu")(meta)
    joined = layers.Concatenate()([x, m])
    cls = layers.Dense(3, activation="softmax", name="cls")(joined)
    score = layers.Dense(1, name="score")(joined)
    outputs = {"score": score, "cls": cls} if dict_outputs else [cls, score]
    return fastcnn.Model(inputs={"meta": meta, "image": image}, outputs=outputs)


def two_headed_data(n=24):
    rng = np.random.default_rng(2)
    x = {"image": rng.standard_normal((n, 8, 8, 1)).astype(np.float32),
         "meta": rng.standard_normal((n, 5)).astype(np.float32)}
    y = {"cls": rng.integers(0, 3, n), "score": rng.standard_normal((n, 1)).astype(np.float32)}
    return x, y


def expected_losses(model, x, y):
    """Keras's documented formulas on the model's own predictions: sparse categorical
    cross-entropy (mean of -log p[label]) and mean squared error."""
    out = model.predict(x, verbose=0)
    cls, score = (out["cls"], out["score"]) if isinstance(out, dict) else out
    cls = cls.astype(np.float64)
    return (np.mean(-np.log(cls[np.arange(len(cls)), y["cls"]])),
            np.mean((score.astype(np.float64) - y["score"]) ** 2))


@pytest.mark.parametrize("dict_outputs", [False, True], ids=["list_outputs", "dict_outputs"])
def test_multi_input_multi_output_with_dicts(dict_outputs, tmp_path):
    model = two_headed(dict_outputs)
    assert model.input_names == ["image", "meta"]
    assert sorted(model.output_names) == ["cls", "score"]
    x, y = two_headed_data()
    model.compile("adam", loss={"cls": "sparse_categorical_crossentropy", "score": "mse"},
                  loss_weights={"cls": 1.0, "score": 0.5}, metrics={"cls": ["accuracy"]})
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, validation_split=0.25)
    logs = ["loss", "cls_loss", "score_loss", "cls_accuracy"]
    assert set(history.history) == set(logs) | {"val_" + k for k in logs}
    assert all(len(v) == 2 for v in history.history.values())

    # The validation logs are those of the last quarter of the samples, with the final weights.
    tail = {k: v[18:] for k, v in x.items()}, {k: v[18:] for k, v in y.items()}
    val = model.evaluate(*tail, batch_size=8, verbose=0, return_dict=True)
    for key in logs:
        assert history.history["val_" + key][-1] == pytest.approx(val[key], rel=1e-12)

    result = model.evaluate(x, y, verbose=0, return_dict=True)
    cls_loss, score_loss = expected_losses(model, x, y)
    assert result["cls_loss"] == pytest.approx(cls_loss, rel=1e-5)
    assert result["score_loss"] == pytest.approx(score_loss, rel=1e-5)
    assert result["loss"] == pytest.approx(cls_loss + 0.5 * score_loss, rel=1e-5)
    out = model.predict(x, verbose=0)
    labels = np.argmax(out["cls"] if dict_outputs else out[0], axis=1)
    assert result["cls_accuracy"] == pytest.approx(np.mean(labels == y["cls"]))
    if dict_outputs:
        assert set(out) == {"cls", "score"}
    else:
        assert [o.shape for o in out] == [(24, 3), (24, 1)]

    copy = reloaded(model, x, tmp_path)
    assert copy.evaluate(x, y, verbose=0, return_dict=True) == result
    copy.fit(x, y, epochs=1, verbose=0)


def test_multi_input_multi_output_with_lists(tmp_path):
    model = two_headed(dict_outputs=False)
    x, y = two_headed_data()
    xs, ys = [x["image"], x["meta"]], [y["cls"], y["score"]]
    model.compile(fastcnn.optimizers.SGD(0.05), loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[0.3, 2.0], metrics=[["accuracy"], []])
    history = model.fit(xs, ys, epochs=2, batch_size=8, verbose=0)
    assert set(history.history) == {"loss", "cls_loss", "score_loss", "cls_accuracy"}
    result = model.evaluate(xs, ys, verbose=0, return_dict=True)
    cls_loss, score_loss = expected_losses(model, x, y)
    assert result["loss"] == pytest.approx(0.3 * cls_loss + 2.0 * score_loss, rel=1e-5)
    # A list and a dict of the same inputs are the same inputs.
    for got, want in zip(model.predict(xs, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_array_equal(got, want)
    reloaded(model, xs, tmp_path)


# -- a shared layer ----------------------------------------------------------------------------

def test_shared_layer_gradient_is_the_sum_over_its_uses(tmp_path):
    fastcnn.utils.clear_session()  # the automatic names below count from a fresh session
    fastcnn.utils.set_random_seed(3)
    a, b = fastcnn.Input(shape=(4,), name="a"), fastcnn.Input(shape=(4,), name="b")
    shared = layers.Dense(3, name="shared")
    out = layers.Add()([shared(a), shared(b)])
    model = fastcnn.Model([a, b], out)
    assert [layer.name for layer in model.layers] == ["a", "b", "shared", "add"]
    assert len(model.weights) == 2 and len(shared._inbound_nodes) == 2

    rng = np.random.default_rng(4)
    xa, xb = (rng.standard_normal((6, 4)).astype(np.float32) for _ in range(2))
    y = rng.standard_normal((6, 3)).astype(np.float32)
    kernel, bias = (w.astype(np.float64) for w in shared.get_weights())
    model.compile(fastcnn.optimizers.SGD(0.1), loss="mse")
    model.fit([xa, xb], y, batch_size=6, epochs=1, shuffle=False, verbose=0)

    # out = (xa + xb) @ K + 2b, and mse = mean((out - y)^2) over every entry.
    dout = 2 * ((xa + xb) @ kernel + 2 * bias - y) / y.size
    np.testing.assert_allclose(shared.kernel, kernel - 0.1 * (xa + xb).T @ dout, atol=1e-6)
    np.testing.assert_allclose(shared.bias, bias - 0.1 * 2 * dout.sum(axis=0), atol=1e-6)
    reloaded(model, [xa, xb], tmp_path)


@pytest.mark.parametrize("pooled", [False, True], ids=["conv", "conv_maxpool"])
def test_shared_conv_gradient_matches_finite_differences(pooled):
    """Pooled, each use of the conv runs fused with the (shared) pooling as one step."""
    fastcnn.utils.set_random_seed(5)
    left, right = fastcnn.Input(shape=(6, 6, 2)), fastcnn.Input(shape=(6, 6, 2))
    shared = layers.Conv2D(3, 3, activation="linear" if pooled else "tanh")
    pool = layers.MaxPooling2D(2)
    branches = [pool(shared(t)) if pooled else shared(t) for t in (left, right)]
    model = fastcnn.Model([left, right], layers.Dense(2, activation="tanh")(
        layers.Concatenate()(branches)))
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((3, 6, 6, 2)).astype(np.float32) for _ in range(2)]
    upstream = rng.standard_normal((3, *model.outputs[0].shape[1:])).astype(np.float32)
    check_weight_gradients(model, xs, [upstream], shared.weights)


# -- a feature extractor -----------------------------------------------------------------------

def sequential_classifier():
    return fastcnn.Sequential([
        layers.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu", name="conv1"),
        layers.Conv2D(6, 3, activation="relu", name="conv2"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(3, activation="softmax")])


def functional_classifier():
    inputs = fastcnn.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(6, 3, activation="relu", name="conv2")(x)
    x = layers.Flatten()(layers.MaxPooling2D(2)(x))
    return fastcnn.Model(inputs, layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("build", [functional_classifier, sequential_classifier])
def test_feature_extractor_shares_weights_with_the_trained_model(build, tmp_path):
    fastcnn.utils.set_random_seed(7)
    x, y = toy_data(32)
    model = fitted(build(), x, y)
    extractor = fastcnn.Model(model.inputs, model.get_layer("conv2").output)
    conv1, conv2 = model.get_layer("conv1"), model.get_layer("conv2")
    assert extractor.get_layer("conv2") is conv2
    assert [w is v for w, v in zip(extractor.weights, conv1.weights + conv2.weights)] == [True] * 4

    def partial_forward():
        return conv2(conv1(x))

    features = extractor.predict(x, verbose=0)
    assert features.shape == (32, 4, 4, 6)
    np.testing.assert_array_equal(features, partial_forward())

    # Changing the model's weights changes the extractor's output, and the other way round.
    conv2.kernel[...] *= 1.5
    changed = extractor.predict(x, verbose=0)
    assert not np.array_equal(changed, features)
    np.testing.assert_array_equal(changed, partial_forward())
    before = model.predict(x, verbose=0)
    extractor.compile(fastcnn.optimizers.SGD(0.01), "mse")
    extractor.fit(x, np.zeros_like(features), epochs=1, verbose=0)
    assert not np.array_equal(model.predict(x, verbose=0), before)
    np.testing.assert_array_equal(extractor.predict(x, verbose=0), partial_forward())

    copy = reloaded(extractor, x, tmp_path)
    assert copy.outputs[0].shape == (None, 4, 4, 6)

    # The guide's extractor of every layer's output: each equals the forward pass so far.
    chain = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    every = fastcnn.Model(model.inputs, [layer.output for layer in chain])
    h = x
    for layer, out in zip(chain, every.predict(x, verbose=0), strict=True):
        h = layer(h)
        np.testing.assert_array_equal(out, h)


# -- a small ResNet ----------------------------------------------------------------------------

def toy_resnet():
    inputs = fastcnn.Input((8, 8, 1))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    r = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    r = layers.Conv2D(8, 3, padding="same")(r)
    x = layers.ReLU(name="block1_out")(layers.Add()([x, r]))
    r = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="down")(x)
    r = layers.Conv2D(16, 3, padding="same", name="down_2")(r)
    shortcut = layers.Conv2D(16, 1, strides=2, name="projection")(x)
    x = layers.Activation("relu", name="merged")(layers.Add(name="merge")([shortcut, r]))
    x = layers.GlobalAveragePooling2D()(x)
    return fastcnn.Model(inputs, layers.Dense(3, activation="softmax", name="head")(x),
                         name="toy_resnet")


def test_small_resnet_trains(tmp_path):
    fastcnn.utils.set_random_seed(8)
    x, y = toy_data(64)
    model = toy_resnet()
    assert model.get_layer("projection").kernel.shape == (1, 1, 8, 16)
    lines = []
    model.summary(print_fn=lines.append)
    rows = lines[0].splitlines()
    assert "Param #  Connected to" in rows[2]
    merge = next(row for row in rows if row.startswith("merge (Add)"))
    assert merge.endswith("  projection, down_2")  # the Add's row names both branches it reads

    # The graph computes head(relu(projection(h) + down_2(down(h)))) on the first block's h.
    first = fastcnn.Model(model.inputs, model.get_layer("block1_out").output).predict(x, verbose=0)
    merged = np.maximum(model.get_layer("projection")(first) + model.get_layer("down_2")(
        model.get_layer("down")(first)), 0)
    want = model.get_layer("head")(merged.mean(axis=(1, 2)))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-7)

    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    losses = model.fit(x, y, epochs=5, batch_size=16, verbose=0).history["loss"]
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0]
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert loss < losses[0] and 0 <= accuracy <= 1
    reloaded(model, x, tmp_path).fit(x, y, epochs=1, verbose=0)


# -- nested models and a model on two inputs ---------------------------------------------------

def test_sequential_inside_functional(tmp_path):
    fastcnn.utils.set_random_seed(9)
    x, y = toy_data(32)
    block = fastcnn.Sequential([layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2)],
                               name="block")
    inputs = fastcnn.Input((8, 8, 1))
    features = block(inputs)
    model = fastcnn.Model(inputs, layers.Dense(3, activation="softmax")(layers.Flatten()(features)))
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer", "Sequential", "Flatten", "Dense"]
    assert all(w is v for w, v in zip(model.weights, block.weights))
    kernel = block.weights[0].copy()
    fitted(model, x, y)
    assert not np.array_equal(block.weights[0], kernel)  # the inner model trains with the outer
    # As in Keras, a nested model's ``output`` is its own graph's; the tensor its call in the
    # outer graph returned cuts the outer model there.
    np.testing.assert_array_equal(block.predict(x, verbose=0),
                                  fastcnn.Model(inputs, features).predict(x, verbose=0))
    copy = reloaded(model, x, tmp_path)
    assert type(copy.get_layer("block")) is fastcnn.Sequential


def encoder():
    inputs = fastcnn.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, activation="tanh")(inputs)
    return fastcnn.Model(inputs, layers.GlobalAveragePooling2D()(x), name="encoder")


def test_functional_inside_sequential(tmp_path):
    fastcnn.utils.set_random_seed(10)
    x, y = toy_data(32)
    inner = encoder()
    model = fastcnn.Sequential([fastcnn.Input((8, 8, 1)), inner,
                                layers.Dense(3, activation="softmax", name="top")])
    assert model.count_params() == inner.count_params() + 15
    fitted(model, x, y)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               model.get_layer("top")(inner.predict(x, verbose=0)), rtol=1e-6)
    reloaded(model, x, tmp_path)


def test_siamese_model_uses_one_encoder_on_two_inputs(tmp_path):
    fastcnn.utils.set_random_seed(11)
    x, y = toy_data(32)
    shared = encoder()
    left, right = fastcnn.Input((8, 8, 1), name="left"), fastcnn.Input((8, 8, 1), name="right")
    joined = layers.Concatenate()([shared(left), shared(right)])
    model = fastcnn.Model([left, right], layers.Dense(1, activation="sigmoid", name="same")(joined))
    assert len(model.weights) == 4  # the encoder's two weights once, and the head's

    labels = np.argmax(y, axis=1)
    pairs = [x, np.roll(x, 1, axis=0)]
    same = (labels == np.roll(labels, 1)).astype(np.float32)
    fitted(model, pairs, same, loss="binary_crossentropy", metrics=["accuracy"])
    want = model.get_layer("same")(np.concatenate([shared.predict(p, verbose=0) for p in pairs], 1))
    np.testing.assert_allclose(model.predict(pairs, verbose=0), want, rtol=1e-6)

    rng = np.random.default_rng(12)
    check_weight_gradients(model, [p[:4] for p in pairs],
                           [rng.standard_normal((4, 1)).astype(np.float32)], shared.weights)
    copy = reloaded(model, pairs, tmp_path)
    assert len(copy.weights) == 4


def test_ensemble_of_models_on_images_of_any_size(tmp_path):
    """The guide's "all models are callable": three models on one input, summed by Add; fully
    convolutional, so any image size goes through."""
    fastcnn.utils.set_random_seed(13)

    def member():
        inputs = fastcnn.Input((None, None, 1))
        x = layers.GlobalMaxPooling2D()(layers.Conv2D(3, 3, activation="relu")(inputs))
        return fastcnn.Model(inputs, layers.Dense(2)(x))

    members = [member() for _ in range(3)]
    inputs = fastcnn.Input((None, None, 1))
    model = fastcnn.Model(inputs, layers.Add()([m(inputs) for m in members]))
    assert len(model.weights) == 12
    rng = np.random.default_rng(14)
    small, large = (rng.standard_normal((4, h, w, 1)).astype(np.float32)
                    for h, w in ((9, 7), (12, 12)))
    for x in (small, large):
        np.testing.assert_allclose(model.predict(x, verbose=0),
                                   sum(m.predict(x, verbose=0) for m in members), rtol=1e-5,
                                   atol=1e-6)
    model.compile("adam", "mse")
    for x in (small, large):
        model.fit(x, np.ones((4, 2), np.float32), epochs=2, verbose=0)
    reloaded(model, large, tmp_path)
