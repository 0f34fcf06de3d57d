"""fastcnn.applications: the architectures (parameter counts against Keras's and the papers'),
Keras's arguments and refusals, the weights argument, and a few training steps of each model,
bitwise alike at 1 and 2 threads."""
import numpy as np
import pytest

import fastcnn
from fastcnn import applications


def _bn_extra(channels):
    """Keras counts BatchNormalization's moving mean and variance as parameters; torch does not."""
    return 2 * channels


@pytest.mark.parametrize("make,params", [
    # the anchors' ResNet-20 (shared/anchors/keras_zoo.py) as Keras counts it
    (lambda: applications.ResNet20(), 274042),
    # 6n+2 layers with n = 9: the same stages, nine blocks each
    (lambda: applications.ResNet56(), 860026),
    # torchvision's resnet18 has 11,689,512 parameters; Keras adds the BN moving statistics
    (lambda: applications.ResNet18(),
     11689512 + _bn_extra(64 + 64 * 4 + 128 * 5 + 256 * 5 + 512 * 5)),
    # keras.applications.MobileNetV2(weights=None, ...) in Keras 3.15
    (lambda: applications.MobileNetV2(), 3538984),
    (lambda: applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, classes=10), 423018),
    (lambda: applications.MobileNetV2(input_shape=(96, 96, 3), alpha=1.4, classes=7), 4376263),
    (lambda: applications.MobileNetV2(input_shape=(33, 35, 3), alpha=0.5, include_top=False,
                                      pooling="max"), 706224),
    # the anchors' small U-Net
    (lambda: applications.UNet(input_shape=(64, 64, 1), depth=2, filters=16), 116753),
])
def test_parameter_counts(make, params):
    assert make().count_params() == params


def test_output_shapes_follow_include_top_and_pooling():
    assert applications.ResNet20().outputs[0].shape == (None, 10)
    features = applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.75, include_top=False)
    assert features.outputs[0].shape == (None, 2, 2, 1280)  # as Keras's
    pooled = applications.ResNet18(input_shape=(64, 64, 3), include_top=False, pooling="avg")
    assert pooled.outputs[0].shape == (None, 512)
    assert applications.UNet(input_shape=(32, 48, 3), depth=3, filters=4,
                             classes=5).outputs[0].shape == (None, 32, 48, 5)


def test_mobilenetv2_has_keras_layer_names():
    names = [layer.name for layer in applications.MobileNetV2(input_shape=(32, 32, 3)).layers]
    assert names[1:10] == ["Conv1", "bn_Conv1", "Conv1_relu", "expanded_conv_depthwise",
                           "expanded_conv_depthwise_BN", "expanded_conv_depthwise_relu",
                           "expanded_conv_project", "expanded_conv_project_BN", "block_1_expand"]
    assert names[-3:] == ["out_relu", "avg_pool", "predictions"]


def test_input_tensor_is_used():
    inputs = fastcnn.Input(shape=(16, 16, 3))
    model = applications.ResNet20(input_tensor=inputs, classes=4)
    assert model.inputs[0] is inputs and model.outputs[0].shape == (None, 4)


@pytest.mark.parametrize("call,exc,fragment", [
    (lambda: applications.ResNet20(weights="imagenet"), ValueError, "no pretrained weights"),
    (lambda: applications.MobileNetV2(weights="imagenet"), ValueError, "no pretrained weights"),
    (lambda: applications.UNet(weights="imagenet"), ValueError, "no pretrained weights"),
    (lambda: applications.ResNet20(weights=3), TypeError, "weights"),
    (lambda: applications.ResNet20(classes=0), ValueError, "classes"),
    (lambda: applications.ResNet20(pooling="sum", include_top=False), ValueError, "pooling"),
    (lambda: applications.ResNet20(include_top="yes"), TypeError, "include_top"),
    (lambda: applications.ResNet20(classifier_activation="nope"), ValueError, "activation"),
    (lambda: applications.MobileNetV2(input_shape=(28, 28, 1)), ValueError, "at least 32x32"),
    (lambda: applications.MobileNetV2(alpha=0), ValueError, "alpha"),
    (lambda: applications.ResNet18(input_shape=(64, 64)), ValueError, "input_shape"),
    (lambda: applications.ResNet20(input_tensor=np.zeros((1, 32, 32, 3))), ValueError,
     "input_tensor"),
    (lambda: applications.UNet(input_shape=(40, 40, 1), depth=4), ValueError, "divide by 2"),
    (lambda: applications.UNet(depth=0), ValueError, "depth"),
    (lambda: applications.UNet(filters=1.5), ValueError, "filters"),
])
def test_bad_arguments_are_refused(call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call()


def test_weights_path_loads_saved_weights(tmp_path):
    fastcnn.utils.set_random_seed(0)
    model = applications.ResNet20(input_shape=(8, 8, 3), classes=3)
    path = tmp_path / "resnet.weights.npz"
    model.save_weights(path)
    fastcnn.utils.set_random_seed(1)
    copy = applications.ResNet20(input_shape=(8, 8, 3), classes=3, weights=str(path))
    x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
    np.testing.assert_array_equal(copy.predict(x, verbose=0), model.predict(x, verbose=0))


SMALL = {
    "resnet20": (lambda: applications.ResNet20(input_shape=(8, 8, 3), classes=3), (8, 8, 3)),
    "resnet56": (lambda: applications.ResNet56(input_shape=(8, 8, 3), classes=3), (8, 8, 3)),
    "resnet18": (lambda: applications.ResNet18(input_shape=(32, 32, 3), classes=3), (32, 32, 3)),
    "mobilenetv2": (lambda: applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                                     classes=3), (32, 32, 3)),
    "unet": (lambda: applications.UNet(input_shape=(16, 16, 2), depth=2, filters=4), (16, 16, 2)),
}


def _train(name, threads, steps=4):
    """Weights and per-step training losses after ``steps`` Adam steps on one batch of 16
    synthetic images (the losses are measured in training mode, BatchNormalization using the
    batch's statistics, before each step's update)."""
    make, shape = SMALL[name]
    rng = np.random.default_rng(0)
    x = rng.random((16, *shape), dtype=np.float32)
    fastcnn.utils.set_random_seed(0)
    model = make()
    if name == "unet":
        y, loss = (x[..., :1] > 0.5).astype(np.float32), "binary_crossentropy"
    else:  # a label the images show: which third of the brightness range the first channel is in
        brightness = x[..., 0].mean(axis=(1, 2))
        y, loss = (np.digitize(brightness, np.quantile(brightness, [1 / 3, 2 / 3])),
                   "sparse_categorical_crossentropy")
    model.compile(optimizer=fastcnn.optimizers.Adam(1e-3), loss=loss)
    fastcnn.set_num_threads(threads)
    try:
        history = model.fit(x, y, batch_size=16, epochs=steps, verbose=0, shuffle=False)
    finally:
        fastcnn.set_num_threads(None)
    return model.get_weights(), history.history["loss"]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_training_lowers_the_loss_bitwise_alike_at_one_and_two_threads(name):
    weights1, losses1 = _train(name, 1)
    assert losses1[-1] < losses1[0]
    weights2, losses2 = _train(name, 2)
    assert losses2 == losses1
    for w1, w2 in zip(weights1, weights2, strict=True):
        np.testing.assert_array_equal(w1, w2)


def test_command_line_offers_the_classifiers():
    from fastcnn.__main__ import parse_args
    assert parse_args(["--model", "resnet20"]).model == "resnet20"
    assert set(applications.MODELS) >= {"convnet", "lenet5", "mlp", "resnet20", "mobilenetv2"}
