"""Inference's conv -> batch normalisation (-> relu or relu6) fold (engine/plan.py's
ConvBatchNormStep) on Conv2D and DepthwiseConv2D: the plan it makes, its outputs against the
layers apart, and their independence of the thread count."""
import numpy as np
import pytest
from conftest import step_names

import fastcnn
from fastcnn import layers
from fastcnn.engine.graph import FlatGraph
from fastcnn.engine.plan import make_plan


def inverted_residual(seed, relu6_layer=False, depth_multiplier=1, use_bias=False):
    """A MobileNetV2 block: 1x1 expand -> BN -> relu6, 3x3 depthwise -> BN -> relu6, 1x1
    project -> BN -> Add; then a depthwise conv with bias and a dilation, BN, relu."""
    fastcnn.utils.set_random_seed(seed)
    relu6 = (lambda: layers.ReLU(6.0)) if relu6_layer else (lambda: layers.Activation("relu6"))
    inputs = fastcnn.Input((8, 8, 4))
    y = relu6()(layers.BatchNormalization()(layers.Conv2D(12, 1, use_bias=False)(inputs)))
    y = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=depth_multiplier,
                               use_bias=use_bias)(y)
    y = relu6()(layers.BatchNormalization()(y))
    y = layers.BatchNormalization()(layers.Conv2D(4, 1, use_bias=False)(y))
    x = layers.Add()([inputs, y])
    x = layers.DepthwiseConv2D(3, dilation_rate=2, padding="same")(x)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    outputs = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    return fastcnn.Model(inputs, outputs)


def trained(model):
    """The model after two epochs, so that the moving statistics have left their start."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 8, 8, 4)).astype(np.float32) * 3
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, np.arange(32) % 3, batch_size=8, epochs=2, verbose=0)
    return model, x


def inference_plan(model):
    return make_plan(FlatGraph(model._built_graph(), False), True)


@pytest.mark.parametrize("relu6_layer", [False, True], ids=["Activation", "ReLU(6.0)"])
@pytest.mark.parametrize("depth_multiplier,use_bias", [(1, False), (2, True)])
def test_depthwise_and_relu6_fold_and_match_the_layers_apart(relu6_layer, depth_multiplier,
                                                              use_bias, monkeypatch):
    model, x = trained(inverted_residual(0, relu6_layer, depth_multiplier, use_bias))
    plan = inference_plan(model)
    assert step_names(plan) == [
        "ConvBatchNormStep", "ConvBatchNormStep", "ConvBatchNormStep", "ConvBatchNormStep",
        "GlobalAveragePooling2D", "Dense"]
    folds = plan.steps[:4]  # the projection adds the block's input in its epilogue
    assert [(s.depthwise, s.relu, s.relu6, s.add is not None) for s in folds] == [
        (False, True, True, False), (True, True, True, False), (False, False, False, True),
        (True, True, False, False)]
    # the outputs before the classifier, where the relu6 caps show
    features = fastcnn.Model(model.inputs[0], model.layers[-3].output)
    folded = features.predict(x, verbose=0)
    assert (folded > 0).any()
    monkeypatch.setattr(layers.BatchNormalization, "fusion", None)
    apart = fastcnn.Model(model.inputs[0], model.layers[-3].output)  # a new model: a new plan
    assert "ConvBatchNormStep" not in step_names(inference_plan(apart))
    np.testing.assert_allclose(folded, apart.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_relu6_fold_caps_at_six(monkeypatch):
    """A conv and a depthwise conv whose normalised outputs pass 6 (and go below 0) give the
    layers' relu6, exactly 6 and 0 at the caps."""
    def make():
        fastcnn.utils.set_random_seed(3)
        inputs = fastcnn.Input((6, 6, 3))
        bns = [layers.BatchNormalization(gamma_initializer=fastcnn.initializers.Constant(8.0))
               for _ in range(2)]
        y = layers.Activation("relu6")(bns[0](layers.Conv2D(16, 3)(inputs)))
        y = layers.Activation("relu6")(bns[1](layers.DepthwiseConv2D(3)(y)))
        return fastcnn.Model(inputs, y)

    x = np.random.default_rng(2).normal(size=(4, 6, 6, 3)).astype(np.float32)
    model = make()
    assert step_names(inference_plan(model)) == ["ConvBatchNormStep", "ConvBatchNormStep"]
    out = model.predict(x, verbose=0)
    assert (out == 6).mean() > 0.1 and (out == 0).mean() > 0.1 and out.max() == 6
    monkeypatch.setattr(layers.BatchNormalization, "fusion", None)
    np.testing.assert_allclose(out, make().predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_folded_inference_is_bitwise_the_same_for_any_thread_count():
    model, x = trained(inverted_residual(4))
    outs = []
    try:
        for threads in (1, 2, 3):
            fastcnn.set_num_threads(threads)
            outs.append(model.predict(x, batch_size=16, verbose=0))
    finally:
        fastcnn.set_num_threads(None)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


def test_training_keeps_the_depthwise_conv_and_batchnorm_apart():
    model = inverted_residual(5)
    model.compile("adam", "sparse_categorical_crossentropy")
    plan = make_plan(FlatGraph(model._built_graph(), True), True,
                     loss_outputs=[True] * len(model.outputs))
    assert "ConvBatchNormStep" not in step_names(plan)
    assert "DepthwiseConv2D" in step_names(plan)


def test_relu6_flag_is_checked():
    from fastcnn._ops import conv, depthwise
    x = np.zeros((1, 5, 5, 2), np.float32)
    kernel = np.zeros((3, 3, 2, 2), np.float32)
    with pytest.raises(TypeError, match="relu6"):
        conv.conv2d_forward(x, kernel, None, (1, 1), "same", relu6=1)
    with pytest.raises(TypeError, match="relu6"):
        depthwise.depthwise_forward(x, kernel[..., :1], None, (1, 1), "same", relu6="yes")
    with pytest.raises(ValueError, match="relu6=False"):
        conv.conv2d_forward(x, kernel, None, (1, 1), "same", dilation_rate=(2, 2), relu6=True)
