"""DepthwiseConv2D and SeparableConv2D: the layer contract over several options, PyTorch as the
oracle of a whole layer's forward and gradients, Keras's output-shape formula, arguments, weight
names and config, and saving."""
import itertools

import numpy as np
import pytest

import fastcnn
from conftest import call_layer, check_layer, reloaded
from fastcnn import layers

torch = pytest.importorskip("torch")
F = torch.nn.functional

# name: (make_layer, input_shape, output_shape, parameters)
CASES = {
    "depthwise": (lambda: layers.DepthwiseConv2D(3), (6, 6, 4), (4, 4, 4), 3 * 3 * 4 + 4),
    "depthwise-same-multiplier-relu": (
        lambda: layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"),
        (6, 6, 3), (6, 6, 6), 3 * 3 * 3 * 2 + 6),
    "depthwise-strided-no-bias": (
        lambda: layers.DepthwiseConv2D((3, 2), strides=2, use_bias=False), (7, 6, 5), (3, 3, 5),
        3 * 2 * 5),
    "depthwise-dilated-tanh": (
        lambda: layers.DepthwiseConv2D(3, dilation_rate=2, padding="same", activation="tanh"),
        (7, 7, 3), (7, 7, 3), 3 * 3 * 3 + 3),
    "separable": (lambda: layers.SeparableConv2D(4, 3), (6, 6, 3), (4, 4, 4), 27 + 3 * 4 + 4),
    "separable-strided-multiplier-relu": (
        lambda: layers.SeparableConv2D(5, 3, strides=2, padding="same", depth_multiplier=2,
                                       activation="relu"),
        (7, 7, 3), (4, 4, 5), 3 * 3 * 3 * 2 + 6 * 5 + 5),
    "separable-dilated-no-bias": (
        lambda: layers.SeparableConv2D(2, (2, 3), dilation_rate=(2, 1), use_bias=False),
        (6, 6, 3), (4, 4, 2), 2 * 3 * 3 + 3 * 2),
}


@pytest.mark.parametrize("name", CASES)
def test_layer_contract(name):
    check_layer(*CASES[name])


def torch_depthwise(x, kernel, strides, dilation, padding):
    """NHWC x, (kh, kw, c, dm) kernel, through torch's grouped convolution (NCHW)."""
    kh, kw, c, dm = kernel.shape
    xin = x.permute(0, 3, 1, 2)
    if padding == "same":
        pads = []
        for size, k, s, r in zip(x.shape[1:3], (kh, kw), strides, dilation):
            total = max((-(-size // s) - 1) * s + (k - 1) * r + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        xin = F.pad(xin, (*pads[1], *pads[0]))
    weight = kernel.permute(2, 3, 0, 1).reshape(c * dm, 1, kh, kw)
    return F.conv2d(xin, weight, stride=strides, dilation=dilation, groups=c).permute(0, 2, 3, 1)


@pytest.mark.parametrize("separable", [False, True], ids=["depthwise", "separable"])
@pytest.mark.parametrize("strides, dilation, padding", [((1, 1), (1, 1), "same"),
                                                        ((2, 2), (1, 1), "valid"),
                                                        ((1, 1), (2, 2), "same")])
def test_layer_matches_torch(separable, strides, dilation, padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 9, 8, 6)).astype(np.float32)
    if separable:
        layer = layers.SeparableConv2D(5, 3, strides=strides, padding=padding,
                                       dilation_rate=dilation, depth_multiplier=2,
                                       bias_initializer="random_normal")
    else:
        layer = layers.DepthwiseConv2D(3, strides=strides, padding=padding,
                                       dilation_rate=dilation, depth_multiplier=2,
                                       bias_initializer="random_normal")
    layer.build(x.shape)
    dy = rng.standard_normal(layer.compute_output_shape(x.shape)).astype(np.float32)
    y, dx, grads = call_layer(layer, x, dy)

    tx = torch.tensor(x, requires_grad=True)
    tw = [torch.tensor(w, requires_grad=True) for w in layer.get_weights()]
    ty = torch_depthwise(tx, tw[0], strides, dilation, padding)
    if separable:
        ty = ty @ tw[1][0, 0]
    ty = ty + tw[-1]
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, tw, strict=True):
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=1e-4, atol=1e-4)


def keras_output_size(size, k, stride, rate, padding):
    """Keras's conv output size: floor((size - rate*(k - 1) - 1) / stride) + 1 for "valid",
    floor((size - 1) / stride) + 1 for "same"."""
    if padding == "valid":
        return (size - rate * (k - 1) - 1) // stride + 1
    return (size - 1) // stride + 1


def test_output_shape_follows_keras():
    for size, k, stride, rate, padding, multiplier in itertools.product(
            (7, 10), (1, 3, 4), (1, 2, 3), (1, 2), ("valid", "same"), (1, 3)):
        if stride > 1 and rate > 1:
            continue
        out = keras_output_size(size, k, stride, rate, padding)
        for layer, channels in ((layers.DepthwiseConv2D(k, stride, padding, multiplier,
                                                        dilation_rate=rate), 2 * multiplier),
                                (layers.SeparableConv2D(5, k, stride, padding, dilation_rate=rate,
                                                        depth_multiplier=multiplier), 5)):
            assert layer.compute_output_shape((None, size, None, 2)) == (None, out, None,
                                                                         channels)


def test_weights_have_keras_names_and_layouts():
    depthwise = layers.DepthwiseConv2D(3, depth_multiplier=2)
    depthwise.build((None, 8, 8, 5))
    assert depthwise._weight_names == ["kernel", "bias"]
    assert [w.shape for w in depthwise.get_weights()] == [(3, 3, 5, 2), (10,)]
    separable = layers.SeparableConv2D(7, 3, depth_multiplier=2)
    separable.build((None, 8, 8, 5))
    assert separable._weight_names == ["depthwise_kernel", "pointwise_kernel", "bias"]
    assert [w.shape for w in separable.get_weights()] == [(3, 3, 5, 2), (1, 1, 10, 7), (7,)]


def test_config_holds_keras_arguments():
    layer = layers.SeparableConv2D(4, 3, strides=2, padding="same", depth_multiplier=3,
                                   activation="relu", use_bias=False,
                                   depthwise_initializer="he_normal",
                                   pointwise_regularizer="l2", name="sep")
    config = layer.get_config()
    assert {key: config[key] for key in ("filters", "kernel_size", "strides", "padding",
                                         "depth_multiplier", "data_format", "dilation_rate",
                                         "activation", "use_bias", "depthwise_initializer",
                                         "pointwise_initializer", "bias_initializer")} == {
        "filters": 4, "kernel_size": (3, 3), "strides": (2, 2), "padding": "same",
        "depth_multiplier": 3, "data_format": "channels_last", "dilation_rate": (1, 1),
        "activation": "relu", "use_bias": False, "depthwise_initializer": "he_normal",
        "pointwise_initializer": "glorot_uniform", "bias_initializer": "zeros"}
    clone = layers.SeparableConv2D.from_config(config)
    assert clone.get_config() == config
    assert clone.pointwise_regularizer is not None and clone.depthwise_regularizer is None


@pytest.mark.parametrize("make, message", [
    (lambda: layers.DepthwiseConv2D(3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: layers.SeparableConv2D(4, 3, strides=(1, 2), dilation_rate=(2, 1)), "dilation_rate"),
    (lambda: layers.DepthwiseConv2D(3, data_format="channels_first"), "data_format"),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier"),
    (lambda: layers.SeparableConv2D(0, 3), "filters"),
    (lambda: layers.DepthwiseConv2D(0), "kernel_size"),
    (lambda: layers.DepthwiseConv2D(3, padding="causal"), "padding"),
])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_inputs_must_match_the_built_channels():
    layer = layers.DepthwiseConv2D(3)
    layer(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="built for inputs"):
        layer(np.zeros((1, 5, 5, 4), np.float32))


def test_model_saves_and_loads(tmp_path):
    fastcnn.utils.set_random_seed(1)
    inputs = fastcnn.Input((8, 8, 3))
    h = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu")(inputs)
    h = layers.SeparableConv2D(4, 3, strides=2, bias_initializer="random_normal")(h)
    model = fastcnn.Model(inputs, layers.Dense(2)(layers.Flatten()(h)))
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 3)).astype(np.float32)
    reloaded(model, x, tmp_path)
