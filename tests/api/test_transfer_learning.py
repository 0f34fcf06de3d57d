"""The transfer-learning pattern of Keras's guides, in our own words: a trained base is frozen
(``base.trainable = False``), a new head is trained on top of it and of an augmentation model,
then the base is unfrozen and the whole model fine-tuned. A frozen BatchNormalization runs in
inference mode, as in Keras 3."""
import numpy as np
import pytest
from conftest import reloaded, toy_data

import fastcnn
from fastcnn import layers


def pretrained_base(x):
    base = fastcnn.Sequential([
        layers.Input((8, 8, 1)), layers.Conv2D(4, 3, name="base_conv"),
        layers.BatchNormalization(name="bn"), layers.ReLU(),
        layers.Conv2D(6, 3, activation="relu", name="base_conv_2")], name="base")
    base.compile("adam", "mse")
    base.fit(x, np.ones((len(x), 4, 4, 6), np.float32), epochs=1, verbose=0)
    return base


def trainable_counts(model):
    lines = []
    model.summary(print_fn=lines.append)
    counts = [line for line in lines[0].splitlines() if "params:" in line]
    return [int(line.split(":")[1].split("(")[0].replace(",", "")) for line in counts]


def moving_stats(base):
    bn = base.get_layer("bn")
    return bn.moving_mean.copy(), bn.moving_variance.copy()


@pytest.mark.parametrize("inference_call", [False, True], ids=["plain_call", "training_false"])
def test_frozen_base_new_head_then_fine_tuning(inference_call, tmp_path):
    fastcnn.utils.set_random_seed(30)
    x, y = toy_data(48)
    base = pretrained_base(x)
    assert not np.array_equal(moving_stats(base)[0], 0)  # the base's own fit moved them
    base.trainable = False
    assert not base.get_layer("bn").trainable and not base.get_layer("base_conv").trainable

    augment = fastcnn.Sequential([layers.RandomFlip("horizontal"),
                                  layers.RandomTranslation(0.1, 0.1)], name="augment")
    inputs = fastcnn.Input((8, 8, 1))
    augmented = augment(inputs)
    # Keras's guide calls the base with training=False, so that its BatchNormalization stays in
    # inference mode even once unfrozen; frozen, it is in inference mode either way.
    features = base(augmented, training=False) if inference_call else base(augmented)
    x_head = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(features))
    model = fastcnn.Model(inputs, layers.Dense(3, activation="softmax", name="head")(x_head))
    head_params = 6 * 3 + 3
    assert trainable_counts(model) == [base.count_params() + head_params, head_params,
                                       base.count_params()]
    assert len(model.trainable_weights) == 2

    base_weights = base.get_weights()
    head_weights = model.get_layer("head").get_weights()
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for got, want in zip(base.get_weights(), base_weights, strict=True):
        np.testing.assert_array_equal(got, want)  # moving statistics included
    assert not any(np.array_equal(got, want)
                   for got, want in zip(model.get_layer("head").get_weights(), head_weights))
    model.evaluate(x, y, verbose=0)
    # In inference the augmentation and the dropout are the identity.
    head = model.get_layer("head")
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               head(base.predict(x, verbose=0).mean(axis=(1, 2))), rtol=1e-5,
                               atol=1e-7)

    copy = reloaded(model, x, tmp_path)
    assert not copy.get_layer("base").trainable and len(copy.trainable_weights) == 2

    # Fine-tuning: unfreeze, recompile with a small rate, train everything.
    base.trainable = True
    model.compile(fastcnn.optimizers.Adam(1e-4), "categorical_crossentropy", metrics=["accuracy"])
    non_trainable = 2 * 4  # the moving mean and variance
    assert trainable_counts(model)[1:] == [model.count_params() - non_trainable, non_trainable]
    stats = moving_stats(base)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    changed = [not np.array_equal(got, want) for got, want in zip(base.get_weights(), base_weights)]
    # base_conv kernel and bias, gamma, beta, then the moving stats, then base_conv_2
    assert changed[:4] == [True] * 4 and changed[6:] == [True, True]
    moved = [not np.array_equal(a, b) for a, b in zip(moving_stats(base), stats)]
    assert moved == [not inference_call] * 2
    reloaded(model, x, tmp_path)


def test_frozen_batch_normalization_normalizes_with_its_moving_statistics():
    """Frozen inside a model that trains, BatchNormalization's output in training mode is its
    inference output: (x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta."""
    fastcnn.utils.set_random_seed(31)
    rng = np.random.default_rng(32)
    bn = layers.BatchNormalization(name="bn")
    inputs = fastcnn.Input((3, 3, 2))
    model = fastcnn.Model(inputs, bn(inputs))
    bn.moving_mean[...] = [0.5, -1.0]
    bn.moving_variance[...] = [2.0, 0.25]
    bn.gamma[...] = [1.5, 0.5]
    x = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)

    def inference():
        return (x - bn.moving_mean) / np.sqrt(bn.moving_variance + bn.epsilon) * bn.gamma + bn.beta

    want = inference()
    assert not np.allclose(model(x, training=True), want, atol=1e-3)  # batch statistics...
    assert not np.array_equal(inference(), want)  # ...which move the moving ones
    bn.trainable = False
    stats = bn.moving_mean.copy(), bn.moving_variance.copy()
    np.testing.assert_allclose(model(x, training=True), inference(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(bn.moving_mean, stats[0])
    np.testing.assert_array_equal(bn.moving_variance, stats[1])
