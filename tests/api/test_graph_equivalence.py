"""Training a graph model gives the same numbers as the other ways to run the same math:

- a functional (and a subclassed) Model built from a Sequential's layer configuration and
  initial weights trains bitwise as the Sequential, dropout and BatchNormalization included; a
  subclassed model trains, validates and is called in the mode it is asked for;
- a fused plan trains as ``compile(..., fuse=False)`` within float32 round-off, and bitwise where
  the planner fuses nothing;
- batches of several sizes in one fit train as separate fits of each batch;
- one and two threads train a graph with fan-out, a shared layer and BatchNormalization bitwise
  alike.
"""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from fastcnn.engine.graph import FlatGraph
from fastcnn.engine.plan import LayerStep, make_plan


def train(model, x, y, loss="sparse_categorical_crossentropy", optimizer="adam", fuse=True,
          epochs=2, batch_size=8):
    """(weights after training, the History's logs, predictions after training)."""
    model.compile(optimizer, loss, metrics=["accuracy"], fuse=fuse)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    return model.get_weights(), history.history, model.predict(x, verbose=0)


def assert_same_training(a, b):
    (wa, ha, pa), (wb, hb, pb) = a, b
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        np.testing.assert_array_equal(u, v)
    assert ha == hb
    np.testing.assert_array_equal(pa, pb)


def clone(layer):
    return type(layer).from_config(layer.get_config())


def digits(n=24, size=14, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, size, size, 1), dtype=np.float32),
            rng.integers(0, classes, n))


class Stack(fastcnn.Model):
    """A subclassed model that calls its layers in turn."""

    def __init__(self, stack, **kwargs):
        super().__init__(**kwargs)
        self.stack = stack

    def call(self, x, training=False):
        for layer in self.stack:
            x = layer(x, training=training)
        return x


@pytest.mark.parametrize("batch_norm", [False, True], ids=["convnet", "convnet-bn"])
@pytest.mark.parametrize("kind", ["functional", "subclassed"])
def test_a_graph_of_the_convnet_trains_bitwise_as_the_sequential(kind, batch_norm):
    """The MNIST convnet with its dropout (and BatchNormalization): same seed, so the same
    shuffles and the same masks (each random layer draws from (seed, epoch, its place in the
    graph)). The subclassed model passes its training argument on, as Keras's guides do."""
    x, y = digits()
    fastcnn.utils.set_random_seed(20)
    sequential = fastcnn.applications.convnet(input_shape=(14, 14, 1), classes=3,
                                     batch_norm=batch_norm)
    if kind == "functional":
        inputs = fastcnn.Input((14, 14, 1))
        outputs = inputs
        for layer in sequential.layers:
            outputs = clone(layer)(outputs)
        graph = fastcnn.Model(inputs, outputs)
    else:
        graph = Stack([clone(layer) for layer in sequential.layers])
        graph.build((None, 14, 14, 1))
    assert any(isinstance(layer, layers.Dropout) for layer in graph.layers)
    graph.set_weights(sequential.get_weights())
    graph.seed = sequential.seed
    assert_same_training(train(graph, x, y), train(sequential, x, y))


def test_a_subclassed_model_validates_in_inference_mode():
    """fit runs the training trace of call (dropout on) and validates on the inference trace:
    the last epoch's val_loss is evaluate's loss on the held-out samples, bitwise."""
    x, y = digits(n=30)
    fastcnn.utils.set_random_seed(24)
    model = Stack([clone(layer) for layer in fastcnn.applications.convnet((14, 14, 1), 3).layers])
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=8, epochs=1, validation_split=0.2, verbose=0)
    assert history.history["val_loss"] == [model.evaluate(x[24:], y[24:], batch_size=8,
                                                          verbose=0)]


def test_calling_a_subclassed_model_in_training_mode_uses_batch_statistics():
    """model(x, training=True) runs call's training trace: BatchNormalization normalises with
    the batch's statistics, as the functional twin does and as NumPy computes them."""
    x = np.random.default_rng(5).standard_normal((8, 5)).astype(np.float32)
    fastcnn.utils.set_random_seed(26)
    dense, bn = layers.Dense(3), layers.BatchNormalization()
    subclassed = Stack([dense, bn])
    inputs = fastcnn.Input((5,))
    functional = fastcnn.Model(inputs, bn(dense(inputs)))
    z = x.astype(np.float64) @ dense.kernel + dense.bias
    want = (z - z.mean(0)) / np.sqrt(z.var(0) + bn.epsilon)
    got = subclassed(x, training=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got, functional(x, training=True))
    assert not np.allclose(subclassed(x), want, atol=1e-2)  # inference: the moving statistics


def training_plan(model, fuse):
    graph = model._built_graph()
    outputs = model._outputs_for(graph, use_compiled=True)
    return make_plan(FlatGraph(graph, True), fuse, loss_outputs=[True] * len(outputs),
                     logits_ok=model._logits_ok(graph, outputs))


def fused_kinds(plan):
    """What the planner fused: step types other than LayerStep, and the flags it set."""
    return ({type(s).__name__ for s in plan.steps if not isinstance(s, LayerStep)}
            | {flag for s in plan.steps for flag in s.flags}
            | {"input_relu" for s in plan.steps if getattr(s, "input_relu", False)})


def branchy_convnet():
    """Branches joined by Add and Concatenate, with what the planner fuses inside them: a conv
    whose only reader is a valid max pooling, a relu whose only reader is a same-padded max
    pooling, and a softmax output under cross-entropy."""
    inputs = fastcnn.Input((10, 10, 2))
    stem = layers.Conv2D(6, 3, padding="same", activation="relu")(inputs)  # two readers
    a = layers.MaxPooling2D(2)(layers.Conv2D(6, 3, padding="same", activation="relu")(stem))
    b = layers.Conv2D(6, 3, padding="same", activation="relu")(stem)
    b = layers.MaxPooling2D(2, strides=2, padding="same")(b)
    c = layers.AveragePooling2D(2)(stem)
    merged = layers.Concatenate()([layers.Add()([a, b]), c])
    pooled = layers.MaxPooling2D(2)(layers.Conv2D(8, 3, padding="same")(merged))
    return fastcnn.Model(inputs, layers.Dense(3, activation="softmax")(layers.Flatten()(pooled)))


def shared_conv_fused_twice():
    """One Conv2D, each of whose two calls runs fused with its own max pooling."""
    inputs = fastcnn.Input((10, 10, 2))
    conv = layers.Conv2D(3, 3, padding="same", activation="relu")
    a = layers.MaxPooling2D(2)(conv(inputs))
    b = layers.MaxPooling2D(2)(conv(layers.Conv2D(2, 1, activation="tanh")(inputs)))
    merged = layers.Flatten()(layers.Add()([a, b]))
    return fastcnn.Model(inputs, layers.Dense(3, activation="softmax")(merged))


def relu_after_add_into_a_fused_conv():
    """A relu layer after an Add whose backward the fused conv + pool step after it applies."""
    inputs = fastcnn.Input((10, 10, 2))
    merged = layers.Add()([layers.Conv2D(3, 3, padding="same")(inputs),
                           layers.Conv2D(3, 1)(inputs)])
    conv = layers.Conv2D(4, 3, padding="same", use_bias=False)(layers.Activation("relu")(merged))
    pooled = layers.Flatten()(layers.MaxPooling2D(2)(conv))
    return fastcnn.Model(inputs, layers.Dense(3, activation="softmax")(pooled))


# Float32 round-off: the fused loss works on logits where the unfused one takes log of the
# softmax, and the fused conv+pool kernel sums dW in another order, so single gradients differ
# by a few ulp; two epochs of SGD with momentum carry those differences linearly into the
# weights. Measured: at most 9e-8 on weights and probabilities of order 0.1 to 0.7, one or two
# ulp, about a fifth of this tolerance.
ROUND_OFF = {"rtol": 1e-6, "atol": 1e-7}


@pytest.mark.parametrize("build, shape, fusions", [
    (lambda: fastcnn.applications.convnet(input_shape=(14, 14, 1), classes=3), (14, 14, 1),
     {"ConvMaxPoolStep", "emit_logits"}),
    (branchy_convnet, (10, 10, 2), {"ConvMaxPoolStep", "emit_logits", "defer_relu_grad",
                                    "apply_input_relu_grad"}),
    (shared_conv_fused_twice, (10, 10, 2), {"ConvMaxPoolStep", "emit_logits"}),
    (relu_after_add_into_a_fused_conv, (10, 10, 2),
     {"ConvMaxPoolStep", "emit_logits", "defer_relu_grad", "input_relu"})],
    ids=["convnet", "add-concatenate", "shared-conv-fused-twice", "relu-into-fused-conv"])
def test_fused_training_agrees_with_unfused_within_round_off(build, shape, fusions):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((24, *shape)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    runs = {}
    for fuse in (True, False):
        fastcnn.utils.set_random_seed(21)
        model = build()
        model.compile("sgd", "sparse_categorical_crossentropy", fuse=fuse)
        kinds = fused_kinds(training_plan(model, fuse))
        assert kinds == (fusions if fuse else set())
        optimizer = fastcnn.optimizers.SGD(learning_rate=0.05, momentum=0.9)
        runs[fuse] = train(model, x, y, optimizer=optimizer, fuse=fuse)
    (wf, hf, pf), (wu, hu, pu) = runs[True], runs[False]
    for a, b in zip(wf + [pf], wu + [pu]):
        np.testing.assert_allclose(a, b, **ROUND_OFF)
    for key in hf:
        np.testing.assert_allclose(hf[key], hu[key], **ROUND_OFF)


def test_fused_and_unfused_are_bitwise_equal_where_nothing_fuses():
    """Dense layers with tanh and sigmoid, branches joined by Add and Concatenate, and an MSE
    loss: the planner finds nothing to fuse, so both plans run the same kernels."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = rng.standard_normal((32, 2)).astype(np.float32)
    runs = []
    for fuse in (True, False):
        fastcnn.utils.set_random_seed(22)
        inputs = fastcnn.Input((6,))
        h = layers.Dense(8, activation="tanh")(inputs)
        a = layers.Dense(5, activation="sigmoid")(h)
        b = layers.Dense(5, activation="relu")(h)
        merged = layers.Concatenate()([layers.Add()([a, b]), h])
        model = fastcnn.Model(inputs, layers.Dense(2)(merged))
        model.compile("adam", "mse", fuse=fuse)
        assert not fused_kinds(training_plan(model, fuse))
        runs.append(train(model, x, y, loss="mse", fuse=fuse))
    assert_same_training(*runs)


def fan_out_net(input_shape, filters):
    """Fan-out, a Conv2D shared at three places, BatchNormalization read by two layers, Add
    and Concatenate, and a fused conv + max-pool step."""
    inputs = fastcnn.Input(input_shape)
    stem = layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
    normed = layers.BatchNormalization()(stem)
    shared = layers.Conv2D(filters, 3, padding="same", activation="relu")
    merged = layers.Concatenate()([layers.Add()([shared(normed), shared(shared(stem))]), normed])
    pooled = layers.MaxPooling2D(2)(layers.Conv2D(filters, 3, activation="relu")(merged))
    return fastcnn.Model(inputs, layers.Dense(3, activation="softmax")(
        layers.GlobalAveragePooling2D()(pooled)))


def test_batches_of_several_sizes_train_as_separate_fits():
    """Batches of 4, 4 and 2 in one fit train bitwise as three fits of one batch each (each call
    sizes its buffers for its batch); the epoch's logs are Keras's sample-weighted means."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    models = []
    for _ in range(2):
        fastcnn.utils.set_random_seed(25)
        models.append(fan_out_net((6, 6, 2), 4))
        models[-1].compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    whole = models[0].fit(x, y, batch_size=4, shuffle=False, verbose=0).history
    parts = [models[1].fit(x[s:s + 4], y[s:s + 4], batch_size=4, shuffle=False,
                           verbose=0).history for s in (0, 4, 8)]
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_array_equal(a, b)
    sizes = np.array([4, 4, 2])
    for key in ("loss", "accuracy"):
        want = (sizes * [p[key][0] for p in parts]).sum() / sizes.sum()
        np.testing.assert_allclose(whole[key], [want], rtol=1e-12)


def test_one_and_two_threads_train_a_graph_bitwise_alike():
    """The kernels split their work by thread, BatchNormalization's batch statistics included;
    the gradients of a tensor with several readers are summed in a fixed order."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    runs = []
    try:
        for threads in (1, 2):
            fastcnn.set_num_threads(threads)
            fastcnn.utils.set_random_seed(23)
            runs.append(train(fan_out_net((8, 8, 2), 8), x, y, batch_size=16))
    finally:
        fastcnn.set_num_threads(None)
    assert_same_training(*runs)
