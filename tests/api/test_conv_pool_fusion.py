"""The model step that runs a convolution and the max pooling after it (and a Dropout after
that) as one fused kernel call: when it applies, and that training is the same as unfused."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from fastcnn.layers import fused


def convnet(seed):
    fastcnn.utils.set_random_seed(seed)
    return fastcnn.Sequential([
        layers.Input((12, 12, 2)),
        layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, padding="same"), layers.MaxPooling2D(2, strides=1),
        layers.Flatten(), layers.Dense(3, activation="softmax")])


def test_model_runs_conv_and_pool_as_one_step():
    model = convnet(0)
    model.compile("adam", "sparse_categorical_crossentropy")
    assert [type(s).__name__ for s in model._steps] == [
        "Conv2D", "Conv2DMaxPooling2D", "Conv2DMaxPooling2D", "Flatten", "Dense"]
    # the first conv's relu backward is left to the fused step after it; the second fused step's
    # input is a pooling's, whose relu the first fused step already handles
    assert model.layers[0].relu_grad_applied_by_next
    assert [s.input_relu for s in model._steps[1:3]] == [True, False]
    # a layer called on its own is still just that layer
    x = np.random.default_rng(5).random((2, 12, 12, 2), dtype=np.float32)
    assert model.layers[1](model.layers[0](x)).shape == (2, 10, 10, 8)


def train_with_and_without(monkeypatch, attr, off, build, check):
    """Trains build() twice, the second time with Conv2DMaxPooling2D.<attr> replaced by off;
    check(model, first) runs after each compile. Returns (weights and predictions, losses) of
    each."""
    rng = np.random.default_rng(6)
    x = rng.random((40, 12, 12, 2), dtype=np.float32)
    y = rng.integers(0, 3, 40)
    results = []
    for first in (True, False):
        if not first:
            monkeypatch.setattr(fused.Conv2DMaxPooling2D, attr, staticmethod(off))
        model = build()
        model.compile("adam", "sparse_categorical_crossentropy")
        check(model, first)
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        results.append((model.get_weights() + [model.predict(x, verbose=0)],
                        history.history["loss"]))
    return results


def test_fused_training_equals_unfused(monkeypatch):
    def check(model, fuse):
        assert any(isinstance(s, fused.Conv2DMaxPooling2D) for s in model._steps) == fuse

    (fused_run, _), (plain_run, _) = train_with_and_without(
        monkeypatch, "applies", lambda a, b: False, lambda: convnet(1), check)
    for a, b in zip(fused_run, plain_run):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def dropout_net(seed, flatten):
    fastcnn.utils.set_random_seed(seed)
    return fastcnn.Sequential([
        layers.Input((12, 12, 2)),
        layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu", padding="same"), layers.MaxPooling2D(2),
        *([layers.Flatten()] if flatten else []), layers.Dropout(0.4),
        *([] if flatten else [layers.Flatten()]), layers.Dense(3, activation="softmax")])


@pytest.mark.parametrize("flatten", [True, False], ids=["flatten-dropout", "dropout-flatten"])
def test_dropout_after_the_fused_step_runs_inside_it(flatten, monkeypatch):
    """The fused step takes a Dropout after the pooling (and Flatten, which moves after it), and
    trains bitwise as the Dropout layer would on its own, with the same masks."""
    def check(model, take):
        names = [type(s).__name__ for s in model._steps]
        assert names == (["Conv2DMaxPooling2D"] * 2 + ["Flatten", "Dense"] if take else
                         ["Conv2DMaxPooling2D"] * 2 + ["Flatten", "Dropout"][::1 if flatten else -1]
                         + ["Dense"])
        assert (model._steps[1].dropout is model.layers[5 if flatten else 4]) == take

    (inside, inside_loss), (apart, apart_loss) = train_with_and_without(
        monkeypatch, "takes", lambda d: False, lambda: dropout_net(2, flatten), check)
    for a, b in zip(inside, apart):
        np.testing.assert_array_equal(a, b)
    assert inside_loss == apart_loss


def test_a_dropout_not_right_after_the_fused_step_stays_a_layer():
    model = fastcnn.Sequential([
        layers.Input((12, 12, 2)), layers.Conv2D(4, 3), layers.MaxPooling2D(2), layers.Flatten(),
        layers.Dense(8), layers.Dropout(0.5), layers.Dense(3)])
    model.compile("adam", "sparse_categorical_crossentropy")
    assert [type(s).__name__ for s in model._steps] == [
        "Conv2DMaxPooling2D", "Flatten", "Dense", "Dropout", "Dense"]
    assert model._steps[0].dropout is None
