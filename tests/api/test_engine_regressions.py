"""Regression tests for the structural bugs and atomicity rules of the graph engine (issue 16).

Each test attacks one rule: a layer shared by two models, an input that is refused, a refused
set_weights/compile/build, freezing and training mode. Thread safety is in test_thread_safety.py.
"""
import io

import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from conftest import toy_data


def weights_equal(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def sgd_step(model, x, y):
    """The weights after one plain SGD step on the whole of (x, y), from the current weights,
    which are then restored: the step's change is -0.1 times the gradient. The model keeps
    its fuse setting."""
    before = model.get_weights()
    model.compile(fastcnn.optimizers.SGD(0.1), "categorical_crossentropy", fuse=model.fuse)
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    after = model.get_weights()
    model.set_weights(before)
    return after


def summary_text(model):
    out = io.StringIO()
    model.summary(print_fn=lambda s: out.write(s + "\n"))
    return out.getvalue()


# -- a layer shared by two models ---------------------------------------------------------

def _shared_model_a():
    """A: conv (relu) -> flatten -> dense softmax; its conv and dense are then shared."""
    fastcnn.utils.set_random_seed(1)
    inp = fastcnn.Input((6, 6, 2))
    conv = layers.Conv2D(3, 3, activation="relu", name="shared_conv")
    head = layers.Dense(3, activation="softmax", name="shared_head")
    return fastcnn.Model(inp, head(layers.Flatten()(conv(inp)))), conv, head


def _model_b(kind, conv, head, model_a):
    """A second model using A's layers at places whose plan differs from A's: a layer must
    not carry anything of one model's plan into the other's."""
    inp = fastcnn.Input((6, 6, 2))
    if kind == "nesting":  # A itself a layer of B, its softmax no longer an output
        return fastcnn.Model(inp, layers.Dense(3, activation="softmax")(model_a(inp)))
    if kind == "relu_into_pool":  # the conv's relu backward handed to a pooling in B only
        h = layers.MaxPooling2D(2, strides=1, padding="same")(conv(inp))
        return fastcnn.Model(inp, head(layers.Flatten()(h)))
    if kind == "fused_conv_pool":  # the conv fused with a valid max pooling in B only
        h = layers.Flatten()(layers.MaxPooling2D(2)(conv(inp)))
        return fastcnn.Model(inp, layers.Dense(3, activation="softmax")(layers.Dropout(0.3)(h)))
    if kind == "softmax_inside":  # the head's softmax feeds another layer in B: no logits
        h = head(layers.Flatten()(conv(inp)))
        return fastcnn.Model(inp, layers.Dense(3, activation="softmax")(h))
    # "sequential": both layers in a Sequential, the head as its softmax output
    return fastcnn.Sequential([fastcnn.Input((6, 6, 2)), conv,
                               layers.MaxPooling2D(2, strides=1, padding="same"),
                               layers.Flatten(), head])


@pytest.mark.parametrize("kind", ["relu_into_pool", "fused_conv_pool", "softmax_inside",
                                  "sequential", "nesting"])
@pytest.mark.parametrize("fuse", [True, False])
def test_shared_layer_leaves_the_first_model_unchanged(kind, fuse, rng):
    model_a, conv, head = _shared_model_a()
    x = rng.standard_normal((10, 6, 6, 2)).astype(np.float32)
    y = fastcnn.utils.to_categorical(np.arange(10) % 3, 3)
    weights = model_a.get_weights()
    model_a.compile("sgd", "categorical_crossentropy", fuse=fuse)
    probs = model_a.predict(x, verbose=0)
    stepped = sgd_step(model_a, x, y)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)  # softmax applied once

    model_b = _model_b(kind, conv, head, model_a)
    model_b.compile("adam", "categorical_crossentropy")
    model_b.predict(x, verbose=0)
    model_b.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model_b(x, training=True)
    assert not weights_equal(model_a.get_weights(), weights)  # B trained the shared weights

    model_a.set_weights(weights)
    model_a.compile("sgd", "categorical_crossentropy", fuse=fuse)
    np.testing.assert_array_equal(model_a.predict(x, verbose=0), probs)
    np.testing.assert_array_equal(model_a(x), probs)
    assert weights_equal(sgd_step(model_a, x, y), stepped)


def test_shared_layer_gradient_matches_an_unshared_copy(rng):
    """A's SGD step with its layers shared by a trained B equals that of a model of the same
    architecture and weights that shares nothing."""
    model_a, conv, head = _shared_model_a()
    model_b = _model_b("relu_into_pool", conv, head, model_a)
    model_b.compile("sgd", "categorical_crossentropy")
    x = rng.standard_normal((10, 6, 6, 2)).astype(np.float32)
    y = fastcnn.utils.to_categorical(np.arange(10) % 3, 3)
    model_b.fit(x, y, batch_size=5, epochs=1, verbose=0)
    alone, _, _ = _shared_model_a()
    alone.set_weights(model_a.get_weights())
    np.testing.assert_array_equal(model_a.predict(x, verbose=0), alone.predict(x, verbose=0))
    assert weights_equal(sgd_step(model_a, x, y), sgd_step(alone, x, y))


def test_layer_used_twice_in_one_model_and_alone(rng):
    """One Dense at two places of a graph, and called on its own: each use is correct (the
    graph's output equals the layer applied twice by hand)."""
    fastcnn.utils.set_random_seed(2)
    dense = layers.Dense(4, activation="relu")
    inp = fastcnn.Input((4,))
    model = fastcnn.Model(inp, dense(dense(inp)))
    x = rng.standard_normal((6, 4)).astype(np.float32)
    kernel, bias = dense.get_weights()
    once = np.maximum(x @ kernel + bias, 0)
    want = np.maximum(once @ kernel + bias, 0)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense(x), once, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-6)
    assert len(model.weights) == 2  # one layer's weights, once
    model.set_weights([kernel * 2, bias + 1])
    assert weights_equal(dense.get_weights(), [kernel * 2, bias + 1])


# -- a rejected input followed by a good one ----------------------------------------------

def _unbuilt_convnet():
    fastcnn.utils.set_random_seed(3)
    model = fastcnn.Sequential([layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                                layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return model


def _bad_inputs():
    x, y = toy_data(12)
    return {
        "rank": (x[..., 0], y),
        "too_small": (x[:, :2, :2], y),
        "empty": (x[:0], y[:0]),
        "y_length": (x, y[:-1]),
        "y_classes": (x, y[:, :2]),
        "other_images_then_bad_y": (x[:, :6, :6], y[:5]),
    }


def assert_unbuilt(model):
    """Unbuilt, with no weights, and no node of a refused call left on a layer (layer.output
    would otherwise describe the refused input)."""
    assert not model.built
    assert model.weights == []
    assert all(not layer.built and layer.weights == [] and layer._inbound_nodes == []
               for layer in model.layers)


def node_counts(model):
    return [len(layer._inbound_nodes) for layer in model.layers]


@pytest.mark.parametrize("case", sorted(_bad_inputs()))
def test_rejected_input_leaves_an_unbuilt_model_unbuilt(case):
    bad_x, bad_y = _bad_inputs()[case]
    model = _unbuilt_convnet()
    with pytest.raises(ValueError):
        model.fit(bad_x, bad_y, verbose=0)
    assert_unbuilt(model)
    if bad_x.ndim == 4 and len(bad_x):
        with pytest.raises(ValueError):
            model.evaluate(bad_x, bad_y, verbose=0)
        assert_unbuilt(model)
    x, y = toy_data(24)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert model.built and model.input_shape == (None, 8, 8, 1)
    assert model.count_params() == 3 * 3 * 4 + 4 + 36 * 3 + 3
    assert np.isfinite(history.history["loss"]).all()
    assert model.predict(x, verbose=0).shape == (24, 3)


@pytest.mark.parametrize("case", ["x_rank", "y_length", "y_classes"])
def test_rejected_validation_data_leaves_an_unbuilt_model_unbuilt(case):
    x, y = toy_data(12)
    bad = {"x_rank": (x[..., 0], y), "y_length": (x, y[:-1]), "y_classes": (x, y[:, :2])}[case]
    model = _unbuilt_convnet()
    with pytest.raises(ValueError):
        model.fit(x, y, validation_data=bad, verbose=0)
    assert_unbuilt(model)
    model.fit(x, y, validation_data=(x, y), verbose=0)
    weights = model.get_weights()
    with pytest.raises(ValueError):
        model.fit(x, y, validation_data=bad, verbose=0)
    assert weights_equal(model.get_weights(), weights)


class SmallNet(fastcnn.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(4, 3, activation="relu")
        self.flat = layers.Flatten()
        self.out = layers.Dense(3, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.flat(self.conv(x)))


@pytest.mark.parametrize("case", ["rank", "y_length", "y_classes", "bigger_images_then_bad_y"])
def test_rejected_input_leaves_a_subclassed_model_unbuilt(case):
    x, y = toy_data(12)
    bad_x, bad_y = {"rank": (x[..., 0], y), "y_length": (x, y[:-1]),
                    "y_classes": (x, y[:, :2]),
                    "bigger_images_then_bad_y": (np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))),
                                                 y[:-1])}[case]
    fastcnn.utils.set_random_seed(3)
    model = SmallNet()
    model.compile("sgd", "categorical_crossentropy")
    with pytest.raises(ValueError):
        model.fit(bad_x, bad_y, verbose=0)
    assert_unbuilt(model)
    model.fit(x, y, verbose=0)
    assert [w.shape for w in model.weights] == [(3, 3, 1, 4), (4,), (144, 3), (3,)]
    assert model.conv.output.shape == (None, 6, 6, 4)
    weights, nodes = model.get_weights(), node_counts(model)
    with pytest.raises(ValueError):
        model.fit(bad_x, bad_y, verbose=0)
    with pytest.raises(ValueError):
        model.predict(np.concatenate([x, x], axis=-1), verbose=0)
    assert weights_equal(model.get_weights(), weights) and node_counts(model) == nodes


@pytest.mark.parametrize("bad_x", ["rank", "too_small", "empty"])
def test_rejected_predict_leaves_an_unbuilt_model_unbuilt(bad_x):
    x, y = toy_data(12)
    bad = {"rank": x[..., 0], "too_small": x[:, :2, :2], "empty": x[:0]}[bad_x]
    model = _unbuilt_convnet()
    with pytest.raises(ValueError):
        model.predict(bad, verbose=0)
    assert_unbuilt(model)
    with pytest.raises(ValueError):
        model(bad)
    assert_unbuilt(model)
    model.fit(x, y, epochs=1, verbose=0)
    assert model.input_shape == (None, 8, 8, 1)


@pytest.mark.parametrize("case", sorted(_bad_inputs()) + ["channels"])
def test_rejected_input_leaves_a_built_model_unchanged(case):
    bad_x, bad_y = _bad_inputs().get(case, (None, None))
    if case == "channels":
        x, y = toy_data(12)
        bad_x, bad_y = np.concatenate([x, x], axis=-1), y
    model = _unbuilt_convnet()
    x, y = toy_data(24)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    weights, probs = model.get_weights(), model.predict(x, verbose=0)
    for call in (lambda: model.fit(bad_x, bad_y, verbose=0),
                 lambda: model.evaluate(bad_x, bad_y, verbose=0)):
        with pytest.raises(ValueError):
            call()
        assert weights_equal(model.get_weights(), weights)
    if case in ("rank", "too_small", "empty", "channels", "other_images_then_bad_y"):
        with pytest.raises(ValueError):
            model.predict(bad_x, verbose=0)
        assert weights_equal(model.get_weights(), weights)
    assert model.input_shape == (None, 8, 8, 1)
    np.testing.assert_array_equal(model.predict(x, verbose=0), probs)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not weights_equal(model.get_weights(), weights)


def test_rejected_sparse_labels_then_good_ones():
    fastcnn.utils.set_random_seed(4)
    model = fastcnn.Sequential([layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = toy_data(12)
    labels = y.argmax(1)
    for bad in (labels + 3, labels - 3, labels + 0.5):
        with pytest.raises(ValueError):
            model.fit(x, bad, verbose=0)
        assert_unbuilt(model)
    model.fit(x, labels, verbose=0)
    assert model.count_params() == 64 * 3 + 3
    weights = model.get_weights()
    for bad in (labels + 3, labels + 0.5, labels[:-1]):
        with pytest.raises(ValueError):
            model.fit(x, bad, verbose=0)
        with pytest.raises(ValueError):
            model.evaluate(x, bad, verbose=0)
    assert weights_equal(model.get_weights(), weights)


# -- set_weights ---------------------------------------------------------------------------

def _two_dense():
    fastcnn.utils.set_random_seed(5)
    return fastcnn.Sequential([fastcnn.Input((4,)), layers.Dense(4, activation="relu"),
                               layers.Dense(4), layers.Dense(2, activation="softmax")])


@pytest.mark.parametrize("case", ["too_few", "too_many", "wrong_shape_in_middle",
                                  "wrong_shape_last", "strings", "objects", "complex"])
def test_refused_set_weights_changes_no_weight(case):
    model = _two_dense()
    weights = model.get_weights()
    new = [w + 1 for w in weights]
    if case == "too_few":
        new = new[:-1]
    elif case == "too_many":
        new = new + [new[-1]]
    elif case == "wrong_shape_in_middle":
        new[2] = np.ones((4, 5), np.float32)
    elif case == "wrong_shape_last":
        new[-1] = new[-1][:1]
    elif case == "strings":
        new[3] = np.array(["x"] * 4)
    elif case == "objects":
        new[3] = np.array([object()] * 4, dtype=object)
    else:
        new[4] = new[4].astype(np.complex64)
    with pytest.raises((ValueError, TypeError)):
        model.set_weights(new)
    assert weights_equal(model.get_weights(), weights)


def test_set_weights_with_the_models_own_arrays_swapped():
    model = _two_dense()
    before = model.get_weights()
    live = model.weights  # the model's own arrays, not copies
    assert live[0].shape == live[2].shape and live[1].shape == live[3].shape
    model.set_weights([live[2], live[3], live[0], live[1], *live[4:]])
    assert weights_equal(model.get_weights(), [before[2], before[3], before[0], before[1],
                                               *before[4:]])
    # views of the weights they replace, and one array for two weights
    swapped = model.get_weights()
    live = model.weights
    model.set_weights([live[0].T, live[1][::-1], live[0], live[1], *live[4:]])
    assert weights_equal(model.get_weights(), [swapped[0].T, swapped[1][::-1], swapped[0],
                                               swapped[1], *swapped[4:]])


def test_set_weights_on_a_layer_is_atomic():
    model = _two_dense()
    layer = model.layers[1]
    weights = model.get_weights()
    with pytest.raises(ValueError):
        layer.set_weights([np.zeros((4, 4)), np.zeros(5)])
    assert weights_equal(model.get_weights(), weights)


# -- compile ------------------------------------------------------------------------------

def _compiled_pair():
    """Two models with the same weights, compiled alike and trained one epoch alike."""
    x, y = toy_data(24)
    pair = []
    for _ in range(2):
        model = _unbuilt_convnet()
        model.compile(fastcnn.optimizers.Adam(0.01), "categorical_crossentropy",
                      metrics=["accuracy"])
        model.build((None, 8, 8, 1))
        pair.append(model)
    pair[1].set_weights(pair[0].get_weights())
    for model in pair:
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return pair, x, y


@pytest.mark.parametrize("case", ["optimizer", "optimizer_type", "loss", "loss_type", "metrics",
                                  "metrics_string", "loss_list_length", "loss_dict_key",
                                  "loss_weights", "fuse"])
def test_refused_compile_leaves_the_compiled_state(case):
    (model, control), x, y = _compiled_pair()
    args = {"optimizer": {"optimizer": "nope", "loss": "categorical_crossentropy"},
            "optimizer_type": {"optimizer": 3, "loss": "categorical_crossentropy"},
            "loss": {"optimizer": "sgd", "loss": "nope"},
            "loss_type": {"optimizer": "sgd", "loss": 3},
            "metrics": {"optimizer": "sgd", "loss": "mse", "metrics": ["nope"]},
            "metrics_string": {"optimizer": "sgd", "loss": "mse", "metrics": "accuracy"},
            "loss_list_length": {"optimizer": "sgd", "loss": ["mse", "mse"]},
            "loss_dict_key": {"optimizer": "sgd", "loss": {"nope": "mse"}},
            "loss_weights": {"optimizer": "sgd", "loss": "mse", "loss_weights": [float("nan")]},
            "fuse": {"optimizer": "sgd", "loss": "mse", "fuse": "yes"}}[case]
    state = (model.optimizer, model.loss, model.loss_weights, model.metrics, model.fuse)
    with pytest.raises((ValueError, TypeError)):
        model.compile(**args)
    assert all(a is b for a, b in zip(
        (model.optimizer, model.loss, model.loss_weights, model.metrics, model.fuse), state))
    histories = [m.fit(x, y, batch_size=8, epochs=1, verbose=0).history for m in (model, control)]
    assert histories[0] == histories[1]
    assert weights_equal(model.get_weights(), control.get_weights())


def _two_outputs():
    fastcnn.utils.set_random_seed(10)
    inp = fastcnn.Input((6,))
    h = layers.Dense(4, activation="relu")(inp)
    return fastcnn.Model(inp, [layers.Dense(3, activation="softmax", name="cls")(h),
                               layers.Dense(1, name="reg")(h)])


@pytest.mark.parametrize("args", [
    {"loss": ["categorical_crossentropy"]},
    {"loss": {"cls": "categorical_crossentropy", "nope": "mse"}},
    {"loss": ["categorical_crossentropy", "mse"], "loss_weights": [1.0]},
    {"loss": ["categorical_crossentropy", "mse"], "loss_weights": {"nope": 1.0}},
    {"loss": ["categorical_crossentropy", "mse"], "metrics": [["accuracy"]]},
    {"loss": ["categorical_crossentropy", "mse"], "metrics": {"cls": ["nope"]}},
    {"loss": {"cls": None, "reg": None}},
], ids=["loss_list", "loss_key", "weights_list", "weights_key", "metrics_list", "metric_name",
        "no_loss"])
def test_refused_compile_of_a_two_output_model(args, rng):
    model, control = _two_outputs(), _two_outputs()
    for m in (model, control):
        m.compile(fastcnn.optimizers.SGD(0.1), ["categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics={"cls": ["accuracy"]})
    state = (model.optimizer, model.loss, model.loss_weights, model.metrics)
    with pytest.raises(ValueError):
        model.compile("adam", **args)
    assert all(a is b for a, b in zip(
        (model.optimizer, model.loss, model.loss_weights, model.metrics), state))
    x = rng.standard_normal((8, 6)).astype(np.float32)
    ys = [np.eye(3, dtype=np.float32)[np.arange(8) % 3], rng.standard_normal((8, 1))]
    logs = [m.fit(x, ys, batch_size=4, verbose=0).history for m in (model, control)]
    assert logs[0] == logs[1] and set(logs[0]) == {"loss", "cls_loss", "reg_loss",
                                                     "cls_accuracy"}
    assert weights_equal(model.get_weights(), control.get_weights())


def test_refused_compile_of_an_uncompiled_model_leaves_it_uncompiled():
    fresh = fastcnn.Sequential([layers.Flatten(), layers.Dense(3)])
    with pytest.raises(ValueError):
        fresh.compile("nope", "mse")
    assert fresh.optimizer is None and fresh.loss is None
    with pytest.raises(RuntimeError, match="compile"):
        fresh.fit(*toy_data(4), verbose=0)


# -- build --------------------------------------------------------------------------------

class FailingBuild(layers.Layer):
    """Adds one weight, then refuses inputs with other than 4 values on the last axis."""

    def build(self, input_shape):
        self.w = self.add_weight((input_shape[-1], 2), name="w")
        if input_shape[-1] != 4:
            raise ValueError(f"Expected 4 features, received shape {input_shape}")
        self.b = self.add_weight((2,), "zeros", name="b")

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)

    def forward(self, x, ctx, training):
        ctx.x = x
        return x @ self.w + self.b

    def backward(self, dy, ctx, need_dx):
        if ctx.grads is not None:
            if ctx.grads[0] is not None:
                ctx.grads[0][...] = ctx.x.T @ dy
            if ctx.grads[1] is not None:
                ctx.grads[1][...] = dy.sum(axis=0)
        return dy @ self.w.T if need_dx else None


def test_failed_layer_build_leaves_no_weights(rng):
    layer = FailingBuild()
    with pytest.raises(ValueError, match="4 features"):
        layer.build((None, 3))
    assert not layer.built and layer.weights == [] and not hasattr(layer, "b")
    with pytest.raises(ValueError, match="4 features"):
        layer(rng.standard_normal((2, 3)).astype(np.float32))
    assert not layer.built and layer.weights == []
    with pytest.raises(ValueError, match="4 features"):
        layer(fastcnn.Input((3,)))
    assert not layer.built and layer.weights == [] and layer._inbound_nodes == []
    out = layer(fastcnn.Input((4,)))
    assert layer.built and [w.shape for w in layer.weights] == [(4, 2), (2,)]
    assert out.shape == (None, 2)


class NarrowDense(layers.Dense):
    """A Dense that refuses more than 4 input features after its parent's build ran."""

    def build(self, input_shape):
        super().build(input_shape)
        if input_shape[-1] > 4:
            raise ValueError(f"Expected at most 4 features, received shape {input_shape}")


def test_failed_build_after_the_parents_build_leaves_no_weights(rng):
    layer = NarrowDense(3)
    with pytest.raises(ValueError, match="at most 4"):
        layer(rng.standard_normal((2, 6)).astype(np.float32))
    assert not layer.built and layer.weights == []
    x = rng.standard_normal((2, 4)).astype(np.float32)
    out = layer(x)
    assert layer.built and [w.shape for w in layer.weights] == [(4, 3), (3,)]
    np.testing.assert_allclose(out, x @ layer.kernel + layer.bias, rtol=1e-5, atol=1e-6)


def test_failed_layer_build_inside_a_model_fit_then_good_data():
    fastcnn.utils.set_random_seed(6)
    model = fastcnn.Sequential([layers.Dense(3), FailingBuild()])
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="4 features"):
        model.fit(rng.standard_normal((8, 5)).astype(np.float32), np.zeros((8, 2)), verbose=0)
    assert_unbuilt(model)
    fixed = fastcnn.Sequential([layers.Dense(4), FailingBuild()])
    fixed.compile("sgd", "mse")
    fixed.fit(rng.standard_normal((8, 5)).astype(np.float32), np.zeros((8, 2)), verbose=0)
    assert [w.shape for w in fixed.weights] == [(5, 4), (4,), (4, 2), (2,)]


def _model_for_four():
    inp = fastcnn.Input((4,))
    return fastcnn.Model(inp, layers.Dense(2)(inp))


@pytest.mark.parametrize("bad", ["conv_after_flat", "failing_build", "duplicate_name",
                                 "not_a_layer", "input_in_middle", "model_that_does_not_fit"])
def test_refused_add_leaves_the_sequential_unchanged(bad, rng):
    fastcnn.utils.set_random_seed(7)
    model = fastcnn.Sequential([fastcnn.Input((6,)), layers.Dense(5, name="first"),
                                layers.Dense(3, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    x = rng.standard_normal((4, 6)).astype(np.float32)
    before = {"layers": model.layers, "weights": model.get_weights(),
              "summary": summary_text(model), "outputs": [t.shape for t in model.outputs],
              "probs": model.predict(x, verbose=0), "nodes": node_counts(model)}
    layer = {"conv_after_flat": lambda: layers.Conv2D(2, 3),
             "failing_build": FailingBuild,
             "duplicate_name": lambda: layers.Dense(2, name="first"),
             "not_a_layer": lambda: np.zeros(3),
             "input_in_middle": lambda: fastcnn.Input((3,)),
             "model_that_does_not_fit": _model_for_four}[bad]()
    with pytest.raises((ValueError, TypeError)):
        model.add(layer)
    if isinstance(layer, fastcnn.Model):
        assert node_counts(layer) == [1, 1]
        assert layer._inbound_nodes == [] and len(layer.weights) == 2
    elif isinstance(layer, layers.Layer):
        assert not layer.built and layer.weights == [] and layer._inbound_nodes == []
    assert model.layers == before["layers"]
    assert weights_equal(model.get_weights(), before["weights"])
    assert summary_text(model) == before["summary"]
    assert [t.shape for t in model.outputs] == before["outputs"]
    assert node_counts(model) == before["nodes"]
    np.testing.assert_array_equal(model.predict(x, verbose=0), before["probs"])
    model.fit(x, np.eye(3, dtype=np.float32)[[0, 1, 2, 0]], verbose=0)
    model.add(layers.Dense(2))  # a layer that fits is still accepted
    assert model.output_shape == (None, 2)


def test_refused_first_layer_leaves_no_input_shape(rng):
    """A refused first layer's input_shape= is not kept for the next layer."""
    model = fastcnn.Sequential()
    with pytest.raises(ValueError):
        model.add(layers.Conv2D(2, 3, input_shape=(6,)))
    assert model.input_shape is None and model.layers == []
    model.add(layers.Dense(2))
    assert not model.built
    model.compile("sgd", "mse")
    model.fit(rng.standard_normal((4, 5)).astype(np.float32), np.zeros((4, 2)), verbose=0)
    assert model.input_shape == (None, 5)


def test_refused_add_after_popping_every_layer_keeps_the_input_shape(rng):
    model = fastcnn.Sequential([layers.Dense(3)])
    model.predict(rng.standard_normal((4, 5)).astype(np.float32), verbose=0)
    model.pop()
    with pytest.raises(ValueError):
        model.add(layers.Conv2D(2, 3))
    assert model.input_shape == (None, 5) and model.layers == []
    model.add(layers.Dense(2))
    assert model.output_shape == (None, 2) and model.count_params() == 12


def test_refused_build_of_a_sequential_keeps_its_input_shape():
    model = fastcnn.Sequential([layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(2)])
    with pytest.raises(ValueError):
        model.build((None, 8))
    assert_unbuilt(model)
    assert model.input_shape is None
    model.build((None, 5, 5, 1))
    assert model.output_shape == (None, 2)
    summary = summary_text(model)
    with pytest.raises(ValueError):
        model.build((None, 2, 2, 1))
    assert model.input_shape == (None, 5, 5, 1)
    assert model.count_params() == 3 * 3 * 2 + 2 + 18 * 2 + 2
    assert summary_text(model) == summary and "(None, 3, 3, 2)" in summary
    assert model.layers[0].output.shape == (None, 3, 3, 2)


def test_refused_first_layer_after_an_input_leaves_an_empty_model():
    model = fastcnn.Sequential([fastcnn.Input((6,))])
    with pytest.raises(ValueError):
        model.add(layers.Conv2D(2, 3))
    assert_unbuilt(model)
    assert model.layers == [] and model.input_shape == (None, 6)
    model.add(layers.Dense(2))
    assert model.output_shape == (None, 2) and model.count_params() == 14


# -- freezing and training mode -----------------------------------------------------------

def _base_and_head():
    fastcnn.utils.set_random_seed(8)
    base = fastcnn.Sequential([fastcnn.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                               layers.BatchNormalization(), layers.MaxPooling2D(2)], name="base")
    inp = fastcnn.Input((8, 8, 1))
    h = layers.Flatten()(base(inp))
    model = fastcnn.Model(inp, layers.Dense(3, activation="softmax", name="head")(h))
    model.compile(fastcnn.optimizers.SGD(0.1), "categorical_crossentropy")
    return model, base


def test_frozen_model_is_not_trained():
    model, _ = _base_and_head()
    x, y = toy_data(16)
    weights = model.get_weights()
    model.trainable = False
    assert model.trainable_weights == []
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert weights_equal(model.get_weights(), weights)  # moving statistics included


def test_frozen_nested_model_is_not_trained_and_the_rest_is():
    model, base = _base_and_head()
    x, y = toy_data(16)
    base_weights, head_weights = base.get_weights(), model.get_layer("head").get_weights()
    base.trainable = False
    assert all(not layer.trainable for layer in base.layers)
    summary = summary_text(model)
    frozen = base.count_params()
    assert f"Non-trainable params: {frozen:,}" in summary
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert weights_equal(base.get_weights(), base_weights)
    assert not weights_equal(model.get_layer("head").get_weights(), head_weights)


def test_frozen_layer_is_not_trained_and_the_rest_is():
    model, base = _base_and_head()
    x, y = toy_data(16)
    conv, bn = base.layers[0], base.layers[1]
    conv_weights, bn_weights = conv.get_weights(), bn.get_weights()
    conv.trainable = False
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert weights_equal(conv.get_weights(), conv_weights)
    assert all(not np.array_equal(a, b) for a, b in zip(bn.get_weights(), bn_weights))


def test_frozen_weights_match_a_model_without_them():
    """Freezing the base gives the head the same SGD step as training a head alone on the
    base's (inference-mode) features."""
    model, base = _base_and_head()
    x, y = toy_data(16)
    base.trainable = False
    features = layers.Flatten()(base.predict(x, verbose=0))
    head = fastcnn.Sequential([fastcnn.Input((features.shape[1],)),
                               layers.Dense(3, activation="softmax")])
    head.set_weights(model.get_layer("head").get_weights())
    head_after = sgd_step(head, features, y)
    after = sgd_step(model, x, y)
    np.testing.assert_allclose(after[-2], head_after[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(after[-1], head_after[1], rtol=1e-5, atol=1e-7)


class Block(layers.Layer):
    """A composite layer: dense -> dense, its backward derived by the engine."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = [layers.Dense(4, activation="relu"), layers.Dense(4)]

    def call(self, x):
        return self.inner[1](self.inner[0](x))


def test_frozen_composite_layer_is_not_trained(rng):
    fastcnn.utils.set_random_seed(12)
    block = Block()
    model = fastcnn.Sequential([fastcnn.Input((5,)), block, layers.Dense(2)])
    model.compile(fastcnn.optimizers.SGD(0.1), "mse")
    x, y = rng.standard_normal((8, 5)).astype(np.float32), rng.standard_normal((8, 2))
    block.trainable = False
    assert all(not layer.trainable for layer in block.inner)
    frozen, last = block.get_weights(), model.layers[-1].get_weights()
    assert len(frozen) == 4 and len(model.trainable_weights) == 2
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert weights_equal(block.get_weights(), frozen)
    assert not weights_equal(model.layers[-1].get_weights(), last)
    block.trainable = True
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(block.get_weights(), frozen))


def test_call_with_training_true_runs_dropout(rng):
    inner = fastcnn.Sequential([fastcnn.Input((2000,)), layers.Dropout(0.25, seed=1)])
    inp = fastcnn.Input((2000,))
    outer = fastcnn.Model(inp, inner(inp))
    x = rng.uniform(1, 2, (3, 2000)).astype(np.float32)
    for model in (inner, outer):
        np.testing.assert_array_equal(model(x), x)
        np.testing.assert_array_equal(model(x, training=False), x)
        np.testing.assert_array_equal(model.predict(x, verbose=0), x)
        y = model(x, training=True)
        zeros = y == 0
        assert 0.2 < zeros.mean() < 0.3
        np.testing.assert_allclose(y[~zeros], x[~zeros] / 0.75, rtol=1e-6)
        assert not np.array_equal(model(x, training=True), y)  # a fresh mask each call


def test_call_with_training_true_runs_a_fused_dropout(rng):
    """conv -> max-pool -> dropout is one fused step: model(x, training=True) drops there."""
    fastcnn.utils.set_random_seed(11)
    model = fastcnn.Sequential([fastcnn.Input((10, 10, 2)), layers.Conv2D(8, 3, activation="relu"),
                                layers.MaxPooling2D(2), layers.Dropout(0.5)])
    x = rng.standard_normal((16, 10, 10, 2)).astype(np.float32)
    kept = model(x)
    np.testing.assert_array_equal(model.predict(x, verbose=0), kept)
    dropped = model(x, training=True)
    positive = kept > 0
    assert 0.4 < (dropped[positive] == 0).mean() < 0.6
    np.testing.assert_allclose(dropped[dropped != 0], kept[dropped != 0] * 2, rtol=1e-6)
    assert (dropped[~positive] == 0).all()


def test_call_with_training_true_runs_augmentation(rng):
    inp = fastcnn.Input((4, 5, 1))
    model = fastcnn.Model(inp, layers.RandomFlip("horizontal", seed=3)(inp))
    x = rng.standard_normal((32, 4, 5, 1)).astype(np.float32)
    np.testing.assert_array_equal(model(x), x)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    y = model(x, training=True)
    flipped = np.array([np.array_equal(a, b[:, ::-1]) for a, b in zip(y, x)])
    kept = np.array([np.array_equal(a, b) for a, b in zip(y, x)])
    assert (flipped | kept).all() and 4 < flipped.sum() < 28


def test_call_with_training_true_uses_batch_statistics(rng):
    fastcnn.utils.set_random_seed(9)
    model = fastcnn.Sequential([fastcnn.Input((3, 3, 2)), layers.BatchNormalization()])
    bn = model.layers[0]
    x = (rng.standard_normal((8, 3, 3, 2)) * [2, 0.5] + [1, -3]).astype(np.float32)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(model(x), x / np.sqrt(1 + 1e-3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(x, training=True), (x - mean) / np.sqrt(var + 1e-3),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean, 0.01 * mean, rtol=1e-4, atol=1e-6)
    bn.trainable = False  # frozen: inference mode even when called in training mode
    moving = bn.get_weights()
    np.testing.assert_allclose(model(x, training=True),
                               (x - moving[2]) / np.sqrt(moving[3] + 1e-3), rtol=1e-5, atol=1e-6)
    assert weights_equal(bn.get_weights(), moving)


class DropoutNet(fastcnn.Model):
    def __init__(self):
        super().__init__()
        self.flat = layers.Flatten()
        self.drop = layers.Dropout(0.5, seed=4)

    def call(self, x, training=False):
        return self.drop(self.flat(x), training=training)


def test_call_with_training_true_on_a_subclassed_model():
    model = DropoutNet()
    x = np.ones((4, 300), np.float32)
    np.testing.assert_array_equal(model(x), x)
    y = model(x, training=True)
    assert 0.4 < (y == 0).mean() < 0.6 and set(np.unique(y)) == {0.0, 2.0}
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


class DropoutHead(fastcnn.Model):
    """Flatten -> Dropout -> Dense softmax, passing ``training`` on as Keras's guides do."""

    def __init__(self):
        super().__init__()
        self.flat = layers.Flatten()
        self.drop = layers.Dropout(0.5)
        self.out = layers.Dense(3, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.drop(self.flat(x), training=training))


def test_subclassed_model_trains_with_its_training_branch():
    """fit runs a subclassed model's call in training mode (Dropout active): the same SGD
    steps as the functional model of the same layers, weights and seed; validation and
    evaluate run it in inference mode."""
    fastcnn.utils.set_random_seed(13)
    sub = DropoutHead()
    sub.build((None, 8, 8, 1))
    inp = fastcnn.Input((8, 8, 1))
    functional = fastcnn.Model(inp, layers.Dense(3, activation="softmax")(
        layers.Dropout(0.5)(layers.Flatten()(inp))))
    functional.set_weights(sub.get_weights())
    functional.seed = sub.seed
    x, y = toy_data(40)
    histories = []
    for model in (sub, functional):
        model.compile(fastcnn.optimizers.SGD(0.1), "categorical_crossentropy",
                      metrics=["accuracy"])
        histories.append(model.fit(x, y, batch_size=8, epochs=2, validation_split=0.2,
                                   verbose=0).history)
    assert histories[0] == histories[1]
    assert weights_equal(sub.get_weights(), functional.get_weights())
    val_loss, val_accuracy = sub.evaluate(x[32:], y[32:], verbose=0)
    assert histories[0]["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert histories[0]["val_accuracy"][-1] == val_accuracy


def test_training_argument_of_a_node_overrides_the_model():
    inp = fastcnn.Input((500,))
    always = layers.Dropout(0.5, seed=2)(inp, training=True)
    model = fastcnn.Model(inp, always)
    x = np.ones((2, 500), np.float32)
    assert 0.4 < (model.predict(x, verbose=0) == 0).mean() < 0.6


# -- trainable changed between fits -------------------------------------------------------

def test_trainable_changed_between_fits_takes_effect():
    model, base = _base_and_head()
    x, y = toy_data(16)
    model.compile(fastcnn.optimizers.Adam(0.01), "categorical_crossentropy")
    base.trainable = False
    frozen = base.get_weights()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert weights_equal(base.get_weights(), frozen)
    base.trainable = True
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(base.get_weights(), frozen))
    head = model.get_layer("head")
    head.trainable = False
    head_weights, base_weights = head.get_weights(), base.get_weights()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert weights_equal(head.get_weights(), head_weights)
    assert not weights_equal(base.get_weights(), base_weights)


def test_trainable_changed_during_a_fit_waits_for_the_next():
    """The trained set is fixed when a fit starts: the base frozen after the first of two
    batches is still updated by the second, and stays put in the next fit."""
    model, base = _base_and_head()
    x, y = toy_data(16)
    kernels = []

    class Freeze(fastcnn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            kernels.append(base.layers[0].kernel.copy())
            base.trainable = False

    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[Freeze()])
    assert len(kernels) == 2 and not np.array_equal(kernels[0], kernels[1])
    trained = base.get_weights()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert weights_equal(base.get_weights(), trained)
