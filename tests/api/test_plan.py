"""The planner (fastcnn/engine/plan.py): which layers it fuses into one step, the flags it hands
to layers, that it fuses only where the graph allows, and that fused training equals unfused."""
import numpy as np
import pytest
from conftest import step_names, training_plan

import fastcnn
from fastcnn import layers


def convnet(seed):
    fastcnn.utils.set_random_seed(seed)
    return fastcnn.Sequential([
        layers.Input((12, 12, 2)),
        layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, padding="same"), layers.MaxPooling2D(2, strides=1),
        layers.Flatten(), layers.Dense(3, activation="softmax")])


def test_conv_and_pool_run_as_one_step():
    model = convnet(0)
    model.compile("adam", "sparse_categorical_crossentropy")
    plan = training_plan(model)
    assert step_names(plan) == ["Conv2D", "ConvMaxPoolStep", "ConvMaxPoolStep", "Flatten", "Dense"]
    # the first conv's relu backward is left to the fused step after it; the second fused step's
    # input is a pooling's, whose relu the first fused step already handles
    assert plan.steps[0].flags == {"defer_relu_grad": True}
    assert [s.input_relu for s in plan.steps[1:3]] == [True, False]
    assert plan.steps[-1].flags == {"emit_logits": True} and plan.logits_outputs == [True]
    assert plan.need_dx == [False, True, True, True, True]  # the first layer computes no dX
    unfused = training_plan(model, fuse=False)
    assert step_names(unfused) == [type(l).__name__ for l in model.layers]
    assert all(not s.flags for s in unfused.steps) and unfused.logits_outputs == [False]
    # a layer called on its own is still just that layer
    x = np.random.default_rng(5).random((2, 12, 12, 2), dtype=np.float32)
    assert model.layers[1](model.layers[0](x)).shape == (2, 10, 10, 8)


def test_a_relu_conv_read_by_a_conv_leaves_its_relu_backward_to_that_conv_bitwise(monkeypatch):
    """conv (relu) -> conv: the second conv's dX kernel applies the first conv's relu backward;
    training gives bitwise the weights of a plan without the handoff, where the first conv's
    backward applies it in a pass of its own."""
    def build():
        fastcnn.utils.set_random_seed(3)
        return fastcnn.Sequential([
            layers.Input((12, 12, 2)), layers.Conv2D(4, 3, activation="relu", padding="same"),
            layers.Conv2D(5, 3, activation="relu", padding="same"), layers.Conv2D(3, 3),
            layers.Flatten(), layers.Dense(3, activation="softmax")])

    model = build()
    model.compile("adam", "sparse_categorical_crossentropy")
    plan = training_plan(model)
    assert [s.flags for s in plan.steps[:3]] == [
        {"defer_relu_grad": True}, {"defer_relu_grad": True, "apply_input_relu_grad": True},
        {"apply_input_relu_grad": True}]
    handed_off = train(build)
    from fastcnn.engine import plan as planner
    monkeypatch.setattr(planner, "_hand_off_relu_gradients", lambda *args: None)
    model.compile("adam", "sparse_categorical_crossentropy")  # plans afresh
    assert not any(s.flags for s in training_plan(model).steps[:3])
    (fused, fused_loss), (plain, plain_loss) = handed_off, train(build)
    assert fused_loss == plain_loss
    for a, b in zip(fused, plain, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_conv_whose_output_is_read_twice_is_not_fused():
    inputs = fastcnn.Input((8, 8, 2))
    conv = layers.Conv2D(4, 3, activation="relu")(inputs)
    pooled = layers.Flatten()(layers.MaxPooling2D(2)(conv))
    other = layers.Flatten()(layers.AveragePooling2D(2)(conv))
    model = fastcnn.Model(inputs, layers.Dense(2, activation="softmax")(
        layers.Concatenate()([pooled, other])))
    model.compile("sgd", "sparse_categorical_crossentropy")
    plan = training_plan(model)
    assert "ConvMaxPoolStep" not in step_names(plan)
    assert not plan.steps[0].flags  # two readers: no relu handoff either


def test_a_softmax_output_read_by_another_layer_keeps_its_softmax():
    inputs = fastcnn.Input((4,))
    probs = layers.Dense(3, activation="softmax")(inputs)
    model = fastcnn.Model(inputs, [probs, layers.Dense(1)(probs)])
    model.compile("sgd", ["sparse_categorical_crossentropy", "mse"])
    plan = training_plan(model)
    assert plan.logits_outputs == [False, False]


def train(build, fuse=True, epochs=2):
    rng = np.random.default_rng(6)
    x = rng.random((40, 12, 12, 2), dtype=np.float32)
    y = rng.integers(0, 3, 40)
    model = build()
    model.compile("adam", "sparse_categorical_crossentropy", fuse=fuse)
    history = model.fit(x, y, batch_size=8, epochs=epochs, verbose=0)
    return model.get_weights() + [model.predict(x, verbose=0)], history.history["loss"]


def test_fused_training_equals_unfused():
    (fused_run, _), (plain_run, _) = train(lambda: convnet(1)), train(lambda: convnet(1), False)
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
    """The fused step takes a Dropout after the pooling (and a Flatten, which moves after it),
    and trains bitwise as the Dropout layer would on its own, with the same masks."""
    model = dropout_net(2, flatten)
    model.compile("adam", "sparse_categorical_crossentropy")
    plan = training_plan(model)
    assert step_names(plan) == ["ConvMaxPoolStep"] * 2 + ["Flatten", "Dense"]
    assert plan.steps[1].dropout is model.layers[5 if flatten else 4]
    assert plan.steps[2].outputs == plan.steps[3].inputs
    inside, inside_loss = train(lambda: dropout_net(2, flatten))
    monkeypatch.setattr(layers.Dropout, "fusion", None)  # the planner no longer takes it
    apart_model = dropout_net(2, flatten)
    apart_model.compile("adam", "sparse_categorical_crossentropy")
    assert "Dropout" in step_names(training_plan(apart_model))
    apart, apart_loss = train(lambda: dropout_net(2, flatten))
    for a, b in zip(inside, apart):
        np.testing.assert_array_equal(a, b)
    assert inside_loss == apart_loss


def test_a_dropout_not_right_after_the_fused_step_stays_a_layer():
    model = fastcnn.Sequential([
        layers.Input((12, 12, 2)), layers.Conv2D(4, 3), layers.MaxPooling2D(2), layers.Flatten(),
        layers.Dense(8), layers.Dropout(0.5), layers.Dense(3)])
    model.compile("adam", "sparse_categorical_crossentropy")
    plan = training_plan(model)
    assert step_names(plan) == ["ConvMaxPoolStep", "Flatten", "Dense", "Dropout", "Dense"]
    assert plan.steps[0].dropout is None


def test_evaluate_and_predict_share_one_execution_and_each_gets_its_outputs():
    """evaluate runs the fused softmax + cross-entropy on logits and predict returns
    probabilities, through the same pooled execution (the buffers of one)."""
    fastcnn.utils.set_random_seed(3)
    model = fastcnn.Sequential([fastcnn.Input((5,)), layers.Dense(4, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 5)).astype(np.float32), rng.integers(0, 4, 6)
    for _ in range(2):
        probabilities = model.predict(x, verbose=0)
        z = x @ model.weights[0] + model.weights[1]
        want = np.exp(z - z.max(1, keepdims=True))
        np.testing.assert_allclose(probabilities, want / want.sum(1, keepdims=True), rtol=1e-5)
        loss = model.evaluate(x, y, verbose=0)
        np.testing.assert_allclose(loss, -np.log(probabilities[np.arange(6), y]).mean(),
                                   rtol=1e-5)
    pools = [pool for _, pool in model._runners.values()]
    assert len(pools) == 1 and len(pools[0]._idle) == 1


RELUS = {"relu": lambda: layers.Activation("relu"), "relu6": lambda: layers.Activation("relu6"),
         "ReLU(6)": lambda: layers.ReLU(6.0)}  # the last two are MobileNets' relu6


def residual_net(seed, frozen=False, relu="relu"):
    """Conv -> BN -> relu, conv -> BN, a projection shortcut's BN, Add, relu: ResNet's block."""
    fastcnn.utils.set_random_seed(seed)
    inputs = fastcnn.Input((12, 12, 2))  # train()'s data
    conv_bn = lambda x, f, s=1: layers.BatchNormalization(trainable=not frozen)(
        layers.Conv2D(f, 3, strides=s, padding="same", use_bias=False)(x))
    x = RELUS[relu]()(conv_bn(inputs, 4))
    y = conv_bn(RELUS[relu]()(conv_bn(x, 6, 2)), 6)
    x = RELUS[relu]()(layers.Add()([conv_bn(x, 6, 2), y]))
    x = layers.Activation("sigmoid")(conv_bn(x, 6))
    outputs = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    return fastcnn.Model(inputs, outputs)


@pytest.mark.parametrize("relu", sorted(RELUS))
def test_batchnorm_runs_with_its_add_and_activation_as_one_step(relu):
    model = residual_net(0, relu=relu)
    model.compile("adam", "sparse_categorical_crossentropy")
    plan = training_plan(model)
    # the first BN reading into the Add (the shortcut's, planned first) takes the Add and the
    # relu; the other stays a layer, as does a BN before a sigmoid
    assert step_names(plan) == [
        "Conv2D", "BatchNormStep", "Conv2D", "Conv2D", "BatchNormStep", "Conv2D",
        "BatchNormalization", "BatchNormStep", "Conv2D", "BatchNormalization", "Activation",
        "GlobalAveragePooling2D", "Dense"]
    block = plan.steps[7]
    assert block.relu and len(block.inputs) == 2 and block.inputs[1] == plan.steps[6].outputs[0]
    assert plan.need_dx[1] and not plan.need_dx[0]


@pytest.mark.parametrize("relu", sorted(RELUS))
@pytest.mark.parametrize("frozen", [False, True], ids=["trainable", "frozen"])
def test_fused_batchnorm_trains_bitwise_as_the_layers_apart(frozen, relu, monkeypatch):
    """The fused pass rounds the normalised value, adds the residual and applies the relu (or
    relu6) as the three layers do one after another, and the gradients add up in the same
    order; a frozen BN (moving statistics) too."""
    fused_run, fused_loss = train(lambda: residual_net(3, frozen, relu))
    monkeypatch.setattr(layers.BatchNormalization, "fusion", None)  # the planner no longer takes it
    apart_model = residual_net(3, frozen, relu)
    apart_model.compile("adam", "sparse_categorical_crossentropy")
    assert "BatchNormStep" not in step_names(training_plan(apart_model))
    apart_run, apart_loss = train(lambda: residual_net(3, frozen, relu))
    for a, b in zip(fused_run[:-1], apart_run[:-1]):  # the weights
        np.testing.assert_array_equal(a, b)
    assert fused_loss == apart_loss
    # predict folds the BNs into the convs before them: the same within float32 round-off
    np.testing.assert_allclose(fused_run[-1], apart_run[-1], rtol=1e-5, atol=1e-6)


def test_batchnorm_read_twice_or_before_a_wide_add_stays_a_layer():
    inputs = fastcnn.Input((6, 6, 2))
    z = layers.BatchNormalization()(layers.Conv2D(2, 3, padding="same")(inputs))
    twice = layers.Add()([layers.Activation("relu")(z), z])  # z read twice
    three = layers.Add()([twice, layers.BatchNormalization()(twice), inputs])
    model = fastcnn.Model(inputs, layers.Activation("relu")(three))
    model.compile("sgd", "mse")
    assert step_names(training_plan(model)) == [
        "Conv2D", "BatchNormalization", "Activation", "Add", "BatchNormalization", "Add",
        "Activation"]


def test_batchnorm_before_a_broadcasting_add_stays_a_layer():
    """Add broadcasts a (1, 1, C) residual as Keras does; the fused pass adds one of the
    normalised value's own shape, so the planner leaves that Add apart, and training matches
    the unfused plan bitwise."""
    def make():
        fastcnn.utils.set_random_seed(0)
        maps, bias = fastcnn.Input((4, 4, 3)), fastcnn.Input((1, 1, 3))
        y = layers.Add()([layers.BatchNormalization()(maps), bias])
        return fastcnn.Model([maps, bias], layers.Activation("relu")(y))

    rng = np.random.default_rng(0)
    x = [rng.random((8, 4, 4, 3), dtype=np.float32), rng.random((8, 1, 1, 3), dtype=np.float32)]
    target = rng.random((8, 4, 4, 3), dtype=np.float32)
    runs = []
    for fuse in (True, False):
        model = make()
        model.compile("sgd", "mse", fuse=fuse)
        if fuse:
            assert step_names(training_plan(model)) == ["BatchNormalization", "Add", "Activation"]
        model.fit(x, target, batch_size=4, epochs=2, verbose=0, shuffle=False)
        runs.append(model.get_weights())
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def inference_plan(model):
    from fastcnn.engine.graph import FlatGraph
    from fastcnn.engine.plan import make_plan
    return make_plan(FlatGraph(model._built_graph(), False), True)


def test_inference_folds_batchnorm_into_the_conv_before_it(monkeypatch):
    """predict runs conv + BN (+ Add) (+ relu) as one conv with the folded kernel and bias,
    the Add's other input added in the conv kernel's epilogue; of the two convs + BNs an Add
    reads, the first in call order takes the Add and the other folds alone. After training
    (moving statistics away from their initial values) the outputs match the layers apart."""
    model = residual_net(5)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(2).random((16, 12, 12, 2), dtype=np.float32)
    model.fit(x, np.arange(16) % 3, batch_size=8, epochs=2, verbose=0)
    plan = inference_plan(model)
    assert step_names(plan) == ["ConvBatchNormStep"] * 5 + [
        "Activation", "GlobalAveragePooling2D", "Dense"]
    folds = plan.steps[:5]
    # the projection shortcut (reading the first fold's output) takes the Add and its relu; the
    # last BN is followed by a sigmoid, which stays a layer
    assert [s.add is not None for s in folds] == [False, False, False, True, False]
    assert folds[3].inputs == [folds[0].outputs[0], folds[2].outputs[0]]
    assert [s.relu for s in folds] == [True, True, False, True, False]
    folded = model.predict(x, verbose=0)
    monkeypatch.setattr(layers.BatchNormalization, "fusion", None)
    apart = fastcnn.Model(model.inputs[0], model.outputs[0])  # a new model: a new plan
    assert "ConvBatchNormStep" not in step_names(inference_plan(apart))
    np.testing.assert_allclose(folded, apart.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_inference_fold_keeps_to_what_the_conv_kernel_runs():
    """A dilated or grouped conv (whose fusion is None) is not folded; relu6 after a folded BN
    joins the fold (the conv kernel's epilogue caps it)."""
    inputs = fastcnn.Input((8, 8, 4))
    bn_after = lambda conv: layers.BatchNormalization()(conv(inputs))
    outputs = [bn_after(layers.Conv2D(4, 3, dilation_rate=2)),
               bn_after(layers.Conv2D(4, 3, groups=2)),
               layers.Activation("relu6")(bn_after(layers.Conv2D(4, 3)))]
    model = fastcnn.Model(inputs, outputs)
    assert step_names(inference_plan(model)) == [
        "Conv2D", "BatchNormalization", "Conv2D", "BatchNormalization", "ConvBatchNormStep"]


def test_training_and_batch_statistics_keep_batchnorm_apart_from_the_conv():
    model = residual_net(5)
    model.compile("adam", "sparse_categorical_crossentropy")
    assert "ConvBatchNormStep" not in step_names(training_plan(model))
    from fastcnn.engine.graph import FlatGraph
    from fastcnn.engine.plan import make_plan
    eager_training = make_plan(FlatGraph(model._built_graph(), True), True)  # model(x, training=True)
    assert "ConvBatchNormStep" not in step_names(eager_training)
