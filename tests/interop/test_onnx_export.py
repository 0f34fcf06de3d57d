"""fastcnn.onnx.export and Model.export: every layer, with its non-default options, and every
application model, exported and run by onnxruntime, must give what model.predict gives; and
what cannot be exported is refused by name."""
import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastcnn  # noqa: E402
import fastcnn.onnx  # noqa: E402
from fastcnn import activations, applications, layers  # noqa: E402
from fastcnn._ops import activation as activation_ops  # noqa: E402
from fastcnn.onnx.builder import GraphBuilder, Value, keras_order  # noqa: E402
from fastcnn.onnx.activations import activate  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6
KERNELS = {"kernel", "depthwise_kernel", "pointwise_kernel"}


def randomize(model, seed=0):
    """Non-trivial weights: kernels as initialised, Normalization's statistics as adapted,
    every other weight (biases, gamma, beta, moving means, PReLU slopes) random, variances in [0.5, 1.5], so that a wrong formula
    shows."""
    rng = np.random.default_rng(seed)
    for owner, i in model._weight_owners():
        name, w = owner._weight_names[i], owner._weights[i]
        if name in KERNELS or isinstance(owner, layers.Normalization):  # adapted: keep
            continue
        if "variance" in name:
            w[...] = rng.uniform(0.5, 1.5, w.shape)
        elif name == "gamma":
            w[...] = 1 + 0.3 * rng.standard_normal(w.shape)
        else:
            w[...] = 0.3 * rng.standard_normal(w.shape)
    return model


def run_onnx(path, model, inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == model.input_names
    assert all(i.shape[0] == "batch" for i in session.get_inputs())
    assert [o.name for o in session.get_outputs()] == model.output_names
    return session.run(None, dict(zip(model.input_names, inputs)))


def check_export(model, inputs, tmp_path, opset=17):
    """Export ``model``, validate the file, and compare onnxruntime's outputs with predict's."""
    inputs = inputs if isinstance(inputs, list) else [inputs]
    path = tmp_path / "model.onnx"
    fastcnn.onnx.export(model, path, opset=opset)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    expected = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    expected = expected if isinstance(expected, list) else [expected]
    got = run_onnx(path, model, inputs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL)
    return path


def stack(input_shape, *stack_layers):
    return fastcnn.Sequential([fastcnn.Input(shape=input_shape), *stack_layers])


def data(shape, batch=3, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


def adapted(layer, x):
    layer.adapt(x)
    return layer


def conv(filters=4, **kwargs):
    return layers.Conv2D(filters, 3, padding="same", **kwargs)


# (id, input shape, layers): each a one-input Sequential model.
LAYER_CASES = [
    # Conv2D: strides, "same" with even kernels and odd sizes (the odd pixel after), dilation,
    # groups, no bias.
    ("conv2d_valid", (7, 6, 3), lambda: [layers.Conv2D(4, 3, activation="relu")]),
    ("conv2d_same_even_kernel_stride2", (9, 8, 3),
     lambda: [layers.Conv2D(5, (4, 2), strides=2, padding="same")]),
    ("conv2d_same_strides_3_2", (10, 7, 2),
     lambda: [layers.Conv2D(3, (3, 4), strides=(3, 2), padding="same")]),
    ("conv2d_valid_stride2_leftover", (8, 9, 2), lambda: [layers.Conv2D(3, 2, strides=3)]),
    ("conv2d_dilation", (9, 10, 2),
     lambda: [layers.Conv2D(4, 3, dilation_rate=(2, 3), padding="same")]),
    ("conv2d_groups", (6, 6, 6),
     lambda: [layers.Conv2D(9, 3, groups=3, padding="same", activation="relu6")]),
    ("conv2d_no_bias_tanh", (6, 5, 3),
     lambda: [layers.Conv2D(4, (2, 3), use_bias=False, activation="tanh")]),
    # Conv1D: valid, same, causal, dilation, groups.
    ("conv1d_valid_stride2", (11, 3), lambda: [layers.Conv1D(4, 3, strides=2)]),
    ("conv1d_same_even_kernel", (9, 3), lambda: [layers.Conv1D(4, 4, padding="same")]),
    ("conv1d_causal_dilated", (12, 2),
     lambda: [layers.Conv1D(3, 3, padding="causal", dilation_rate=2, activation="relu")]),
    ("conv1d_groups", (8, 4), lambda: [layers.Conv1D(6, 3, groups=2, padding="same")]),
    # Conv2DTranspose: paddings, strides above the kernel, output_padding, dilation.
    ("conv2d_transpose_valid", (4, 5, 3), lambda: [layers.Conv2DTranspose(4, 3)]),
    ("conv2d_transpose_same_stride2", (4, 5, 3),
     lambda: [layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")]),
    ("conv2d_transpose_same_even_kernel", (4, 3, 2),
     lambda: [layers.Conv2DTranspose(3, (4, 2), strides=(2, 3), padding="same")]),
    ("conv2d_transpose_stride_over_kernel", (3, 4, 2),
     lambda: [layers.Conv2DTranspose(3, 2, strides=3)]),
    ("conv2d_transpose_same_stride_over_kernel", (3, 4, 2),
     lambda: [layers.Conv2DTranspose(3, 2, strides=3, padding="same")]),
    ("conv2d_transpose_output_padding_same", (4, 4, 2),
     lambda: [layers.Conv2DTranspose(3, 3, strides=(2, 3), padding="same",
                                     output_padding=(1, 2))]),
    ("conv2d_transpose_output_padding_valid", (4, 4, 2),
     lambda: [layers.Conv2DTranspose(3, (3, 2), strides=(3, 2), output_padding=(2, 0))]),
    ("conv2d_transpose_dilation", (4, 5, 2),
     lambda: [layers.Conv2DTranspose(3, 3, dilation_rate=(2, 1), padding="same",
                                     use_bias=False)]),
    # Depthwise and separable convolutions.
    ("depthwise_multiplier_stride2", (7, 8, 3),
     lambda: [layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                                     activation="relu")]),
    ("depthwise_dilation_valid", (9, 8, 2),
     lambda: [layers.DepthwiseConv2D((3, 2), dilation_rate=2, use_bias=False)]),
    ("separable_multiplier_stride2", (8, 7, 3),
     lambda: [layers.SeparableConv2D(5, 3, strides=2, padding="same", depth_multiplier=2,
                                     activation="relu")]),
    ("separable_dilation_no_bias", (9, 9, 2),
     lambda: [layers.SeparableConv2D(4, 3, dilation_rate=2, use_bias=False)]),
    # Pooling: "same" with windows that overhang (max ignores, average leaves out the padding).
    ("max_pool_valid", (8, 7, 3), lambda: [layers.MaxPooling2D()]),
    ("max_pool_same_stride2", (7, 8, 3),
     lambda: [layers.MaxPooling2D(3, strides=2, padding="same")]),
    ("max_pool_strides_differ", (9, 9, 2), lambda: [layers.MaxPooling2D((3, 2), strides=(2, 3))]),
    ("average_pool_same", (7, 8, 3),
     lambda: [layers.AveragePooling2D(3, strides=2, padding="same")]),
    ("average_pool_same_stride1", (5, 6, 2),
     lambda: [layers.AveragePooling2D((2, 3), strides=1, padding="same")]),
    ("average_pool_valid", (8, 8, 2), lambda: [layers.AveragePooling2D((2, 3))]),
    ("sum_pool_same", (7, 8, 3), lambda: [layers.SumPooling2D(3, strides=2, padding="same")]),
    ("sum_pool_valid", (8, 8, 2), lambda: [layers.SumPooling2D(2)]),
    ("global_average_pool", (5, 6, 4), lambda: [conv(), layers.GlobalAveragePooling2D()]),
    ("global_average_pool_keepdims", (5, 6, 4),
     lambda: [conv(), layers.GlobalAveragePooling2D(keepdims=True)]),
    ("global_max_pool", (5, 6, 4), lambda: [conv(), layers.GlobalMaxPooling2D()]),
    ("global_max_pool_keepdims", (5, 6, 4),
     lambda: [conv(), layers.GlobalMaxPooling2D(keepdims=True)]),
    # Dense on every rank, and the layers that need Keras's order after convolutions.
    ("dense", (6,), lambda: [layers.Dense(4, activation="softmax")]),
    ("dense_rank3", (4, 5), lambda: [layers.Dense(3, activation="relu")]),
    ("dense_on_images", (4, 5, 3), lambda: [conv(), layers.Dense(3)]),
    ("flatten_after_conv", (6, 5, 3),
     lambda: [conv(), layers.MaxPooling2D(), layers.Flatten(), layers.Dense(4)]),
    ("reshape_after_conv", (6, 4, 3),
     lambda: [conv(), layers.Reshape((8, -1)), layers.Conv1D(3, 3)]),
    ("permute_after_conv", (6, 5, 3),
     lambda: [conv(), layers.Permute((3, 1, 2)), layers.Flatten()]),
    ("permute_then_conv", (6, 5, 3), lambda: [layers.Permute((2, 1, 3)), conv()]),
    ("permute_twice_then_dense", (6, 5, 3),
     lambda: [conv(), layers.Permute((2, 3, 1)), layers.Permute((3, 1, 2)), layers.Dense(2)]),
    # Normalisations.
    ("batch_norm_after_conv", (5, 6, 3),
     lambda: [conv(use_bias=False), layers.BatchNormalization(epsilon=0.01), layers.ReLU()]),
    ("batch_norm_rank2", (7,), lambda: [layers.BatchNormalization()]),
    ("batch_norm_no_center_no_scale", (5, 6, 3),
     lambda: [conv(), layers.BatchNormalization(center=False, scale=False)]),
    ("batch_norm_rank3", (9, 3), lambda: [layers.Conv1D(4, 3), layers.BatchNormalization()]),
    ("layer_norm_channels", (5, 6, 3), lambda: [conv(), layers.LayerNormalization()]),
    ("layer_norm_all_axes", (5, 6, 3),
     lambda: [conv(), layers.LayerNormalization(axis=[1, 2, 3], epsilon=1e-5)]),
    ("layer_norm_unsorted_axes", (5, 6, 3),
     lambda: [conv(), layers.LayerNormalization(axis=[2, 1], center=False)]),
    ("layer_norm_rank2", (8,), lambda: [layers.LayerNormalization(scale=False)]),
    ("group_norm", (5, 6, 4), lambda: [conv(), layers.GroupNormalization(groups=2)]),
    ("group_norm_instance", (5, 6, 4),
     lambda: [conv(), layers.GroupNormalization(groups=-1, epsilon=0.01)]),
    ("group_norm_rank2", (6,), lambda: [layers.GroupNormalization(groups=3, center=False)]),
    ("normalization_channels", (5, 6, 3),
     lambda: [layers.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 1.0]), conv()]),
    ("normalization_none_axis", (5, 6, 3),
     lambda: [conv(), layers.Normalization(axis=None, mean=0.3, variance=2.0)]),
    ("normalization_invert_two_axes", (5, 6, 3),
     lambda: [conv(), layers.Normalization(axis=(1, 3), mean=np.arange(20.0).reshape(5, 4),
                                           variance=np.full((5, 4), 0.5), invert=True)]),
    ("normalization_adapted", (5, 6, 3), lambda: [adapted(layers.Normalization(axis=(2, 3)),
                                                          data((5, 6, 3), batch=20, seed=5))]),
    ("rescaling", (5, 6, 3), lambda: [layers.Rescaling(1 / 255, offset=-0.5), conv()]),
    ("rescaling_per_channel", (5, 6, 3),
     lambda: [conv(), layers.Rescaling([1.0, 2.0, 0.5, -1.0], offset=[0.0, 1.0, 2.0, 3.0])]),
    # Activation layers with their options, on channels-first tensors.
    ("relu_max_value", (5, 6, 3), lambda: [conv(), layers.ReLU(max_value=6.0)]),
    ("relu_all_options", (5, 6, 3),
     lambda: [conv(), layers.ReLU(max_value=0.8, negative_slope=0.1, threshold=0.2)]),
    ("relu_threshold", (5, 6, 3), lambda: [conv(), layers.ReLU(threshold=0.3)]),
    ("relu_negative_slope", (5, 6, 3), lambda: [conv(), layers.ReLU(negative_slope=0.2)]),
    ("leaky_relu", (5, 6, 3), lambda: [conv(), layers.LeakyReLU(0.1)]),
    ("elu", (5, 6, 3), lambda: [conv(), layers.ELU(alpha=0.5)]),
    ("softmax_channels", (5, 6, 3), lambda: [conv(), layers.Softmax()]),
    ("softmax_axis1", (5, 6, 3), lambda: [conv(), layers.Softmax(axis=1)]),
    ("softmax_two_axes", (5, 6, 3), lambda: [conv(), layers.Softmax(axis=[1, 2])]),
    ("prelu_shared", (5, 6, 3), lambda: [conv(), layers.PReLU(shared_axes=[1, 2])]),
    ("prelu_per_entry", (5, 6, 3), lambda: [conv(), layers.PReLU()]),
    ("prelu_rank2", (7,), lambda: [layers.PReLU()]),
    # Padding, cropping, resampling.
    ("zero_padding", (5, 6, 3), lambda: [conv(), layers.ZeroPadding2D(((1, 2), (3, 0)))]),
    ("cropping", (7, 8, 3), lambda: [conv(), layers.Cropping2D(((1, 0), (2, 1)))]),
    ("upsampling_nearest", (4, 5, 3), lambda: [conv(), layers.UpSampling2D((2, 3))]),
    ("upsampling_bilinear_powers_of_two", (4, 5, 3),
     lambda: [conv(), layers.UpSampling2D((2, 4), interpolation="bilinear")]),
    ("upsampling_bilinear", (4, 5, 3),
     lambda: [conv(), layers.UpSampling2D((3, 2), interpolation="bilinear")]),
    ("resizing_bilinear_up", (5, 7, 3), lambda: [layers.Resizing(9, 12)]),
    ("resizing_bilinear_down", (11, 13, 3), lambda: [layers.Resizing(4, 6)]),
    ("resizing_nearest", (5, 7, 3),
     lambda: [layers.Resizing(8, 4, interpolation="nearest"),
              layers.Resizing(13, 10, interpolation="nearest")]),
    ("resizing_crop_to_aspect_ratio", (9, 14, 3),
     lambda: [layers.Resizing(6, 5, crop_to_aspect_ratio=True)]),
    ("resizing_pad_to_aspect_ratio", (9, 14, 3),
     lambda: [layers.Resizing(6, 5, pad_to_aspect_ratio=True, fill_value=0.7)]),
    ("center_crop", (9, 10, 3), lambda: [conv(), layers.CenterCrop(4, 7)]),
    ("center_crop_smaller_image", (5, 9, 3), lambda: [layers.CenterCrop(7, 4)]),
    ("random_crop_at_inference", (9, 10, 3), lambda: [layers.RandomCrop(5, 7, seed=1)]),
    # Identity at inference.
    ("inference_identities", (8, 8, 3), lambda: [
        layers.RandomFlip(seed=1), layers.RandomTranslation(0.2, 0.1, seed=1),
        layers.RandomRotation(0.1, seed=1), layers.RandomZoom(0.2, seed=1),
        layers.RandomContrast(0.3, seed=1), layers.RandomBrightness(0.2, seed=1), conv(),
        layers.Dropout(0.5), layers.SpatialDropout2D(0.3), layers.GaussianDropout(0.2),
        layers.GaussianNoise(0.5), layers.Flatten(), layers.Dense(3)]),
]


@pytest.mark.parametrize("name, shape, make", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_matches_predict(name, shape, make, tmp_path):
    model = randomize(stack(shape, *make()))
    check_export(model, data(shape), tmp_path)


@pytest.mark.parametrize("name", activation_ops.ACTIVATIONS)
def test_every_activation_on_images(name, tmp_path):
    model = randomize(stack((5, 4, 3), conv(activation=name)))
    check_export(model, data((5, 4, 3)), tmp_path)


ACTIVATION_OPTIONS = [
    ("relu", {"negative_slope": 0.3, "max_value": 1.5, "threshold": 0.25}),
    ("relu", {"max_value": 0.5}),
    ("leaky_relu", {"negative_slope": 0.05}),
    ("elu", {"alpha": 2.0}),
    ("gelu", {"approximate": True}),
    ("gelu", {"approximate": False}),
    ("softmax", {"axis": 1}),
    ("softmax", {"axis": (1, 3)}),
    ("log_softmax", {"axis": -1}),
    ("log_softmax", {"axis": (2, 3)}),
]


@pytest.mark.parametrize("name, options", ACTIVATION_OPTIONS,
                         ids=[f"{n}-{o}" for n, o in ACTIVATION_OPTIONS])
def test_activation_functions_with_options(name, options):
    """activate() against fastcnn.activations, with the options no layer passes
    (gelu's approximate), on a tensor held channels-first."""
    x = data((3, 4, 5), batch=2) * 2
    b = GraphBuilder(17)
    value = Value("x", (0, 3, 1, 2), x.shape)
    out = activate(b, value, name, activation_ops.check_options(name, options))
    y = b.transpose(out, value.perm, keras_order(4), output="y")
    graph = onnx.helper.make_graph(
        b.nodes, "activation",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 5, 3, 4])],
        [onnx.helper.make_tensor_value_info(y, onnx.TensorProto.FLOAT, None)],
        initializer=b.initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)],
                                   ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.transpose(0, 3, 1, 2)})[0]
    expected = getattr(activations, name)(x, **options)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_every_layer_class_has_a_converter():
    """Each of fastcnn's layer classes (but the Layer base and the model's inputs) exports."""
    from fastcnn.onnx.walk import CONVERTERS
    classes = {getattr(layers, name) for name in layers.__all__}
    missing = {cls.__name__ for cls in classes if isinstance(cls, type)
               and issubclass(cls, layers.Layer) and cls not in CONVERTERS}
    assert missing == {"Layer", "InputLayer"}


# -- graphs: merges, several inputs and outputs, nesting, unknown sizes --------------------------

@pytest.mark.parametrize("merge", [layers.Add, layers.Subtract, layers.Multiply, layers.Average,
                                   layers.Maximum, layers.Minimum])
def test_merges_of_channels_first_and_keras_order(merge, tmp_path):
    """One input straight from the model's input (Keras order), one from a convolution
    (channels-first); Add also with three inputs and a broadcast one of lower rank."""
    images = fastcnn.Input(shape=(5, 6, 3), name="images")
    features = layers.Conv2D(3, 3, padding="same")(images)
    output = merge()([images, features])
    if merge is not layers.Subtract:
        vector = fastcnn.Input(shape=(3,), name="vector")
        output = merge()([output, features, vector])
        inputs = [images, vector]
    else:
        inputs = [images]
    model = randomize(fastcnn.Model(inputs, output))
    arrays = [data((5, 6, 3)), data((3,), seed=2)][:len(inputs)]
    check_export(model, arrays, tmp_path)


@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_concatenate(axis, tmp_path):
    """Two channels-first inputs and one in Keras's order."""
    images = fastcnn.Input(shape=(6, 6, 4))
    left = layers.Conv2D(4, 3, padding="same")(images)
    right = layers.Conv2D(4, 3, padding="same", activation="relu")(images)
    joined = layers.Concatenate(axis=axis)([left, images, right])
    model = randomize(fastcnn.Model(images, layers.Conv2D(2, 1)(joined)))
    check_export(model, data((6, 6, 4)), tmp_path)


def test_several_inputs_and_outputs(tmp_path):
    """Outputs in fastcnn's layout: an image (transposed back), a vector, and an input passed
    straight through."""
    image = fastcnn.Input(shape=(8, 8, 2), name="image")
    extra = fastcnn.Input(shape=(4,), name="extra")
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(image)
    pooled = layers.GlobalAveragePooling2D()(x)
    head = layers.Dense(3, activation="softmax", name="head")(
        layers.Concatenate()([pooled, layers.Dense(4)(extra)]))
    mask = layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    model = randomize(fastcnn.Model([image, extra], [mask, head, extra]))
    check_export(model, [data((8, 8, 2)), data((4,), seed=3)], tmp_path)


def test_nested_models_are_inlined(tmp_path):
    """A Sequential used twice inside a functional model, which is itself a layer of a
    Sequential: the shared weights are stored once."""
    block = fastcnn.Sequential([fastcnn.Input(shape=(6, 6, 4)), layers.Conv2D(4, 3, padding="same"),
                                layers.BatchNormalization(), layers.ReLU()], name="block")
    images = fastcnn.Input(shape=(6, 6, 4))
    inner = fastcnn.Model(images, layers.Add()([block(images), block(block(images))]),
                          name="inner")
    model = randomize(stack((6, 6, 4), inner, layers.Flatten(), layers.Dense(2)))
    path = check_export(model, data((6, 6, 4)), tmp_path)
    names = [init.name for init in onnx.load(str(path)).graph.initializer]
    assert sum("kernel" in n for n in names) == 2  # the block's kernel, and the Dense's


def test_subclassed_model_of_layers(tmp_path):
    class Net(fastcnn.Model):
        def __init__(self):
            super().__init__()
            self.conv = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")
            self.norm = layers.BatchNormalization()
            self.dense = layers.Dense(3)

        def call(self, x, training=False):
            return self.dense(layers.Flatten()(self.norm(self.conv(x), training=training)))

    model = Net()
    model.build((None, 7, 7, 2))
    check_export(randomize(model), data((7, 7, 2)), tmp_path)


def test_unknown_image_sizes(tmp_path):
    """Input(shape=(None, None, c)): "same" under stride 2 as ONNX's SAME_UPPER, the same rule;
    one file for every size."""
    images = fastcnn.Input(shape=(None, None, 3))
    x = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(images)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.AveragePooling2D(3, strides=2, padding="same")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.Conv2DTranspose(3, 3, strides=2, padding="same")(x)
    x = layers.UpSampling2D((3, 2))(x)
    model = randomize(fastcnn.Model(images, layers.GlobalMaxPooling2D()(x)))
    path = tmp_path / "model.onnx"
    fastcnn.onnx.export(model, path)
    for shape in [(9, 11, 3), (16, 12, 3)]:
        x = data(shape)
        np.testing.assert_allclose(run_onnx(path, model, [x])[0], model.predict(x, verbose=0),
                                   rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("opset", [13, 18, None])
def test_opsets(opset, tmp_path):
    """Reductions took their axes as attributes before opset 18 and as inputs from it; Resize
    gained attributes at 18 and 19."""
    opset = opset or onnx.defs.onnx_opset_version()
    model = randomize(stack((6, 5, 3), conv(), layers.BatchNormalization(),
                            layers.LayerNormalization(axis=[1, 2]),
                            layers.GroupNormalization(groups=2), layers.Softmax(axis=[1, 3]),
                            layers.UpSampling2D(interpolation="bilinear"),
                            layers.Resizing(7, 4, interpolation="nearest"),
                            layers.GlobalMaxPooling2D()))
    path = check_export(model, data((6, 5, 3)), tmp_path, opset=opset)
    assert onnx.load(str(path)).opset_import[0].version == opset


def test_first_conv_transposes_the_input_once(tmp_path):
    """Layout tracking: one Transpose into channels-first and one after the convolutions,
    before the Flatten."""
    model = applications.convnet()
    path = tmp_path / "model.onnx"
    fastcnn.onnx.export(model, path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("Transpose") == 2
    assert ops.index("Transpose") < ops.index("Conv")
    assert ops[ops.index("Flatten") - 1] == "Transpose"


# -- the application models ----------------------------------------------------------------------

APPLICATIONS = [
    ("resnet20", lambda: applications.ResNet20(), (32, 32, 3)),
    ("resnet56", lambda: applications.ResNet56(), (32, 32, 3)),
    ("resnet18", lambda: applications.ResNet18(input_shape=(32, 32, 3), classes=10), (32, 32, 3)),
    ("mobilenetv2", lambda: applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                                     classes=10), (32, 32, 3)),
    ("mobilenetv2_pooling_no_top", lambda: applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, pooling="max"), (32, 32, 3)),
    ("unet", lambda: applications.UNet((16, 16, 3), depth=2, filters=4, classes=3), (16, 16, 3)),
    ("unet_batch_norm", lambda: applications.UNet((16, 16, 3), depth=2, filters=4,
                                                  batch_norm=True), (16, 16, 3)),
    ("convnet", lambda: applications.convnet(), (28, 28, 1)),
    ("convnet_batch_norm", lambda: applications.convnet(batch_norm=True), (28, 28, 1)),
    ("lenet5", lambda: applications.lenet5(), (28, 28, 1)),
    ("lenet5_tanh", lambda: applications.lenet5(input_shape=(32, 32, 3), activation="tanh"),
     (32, 32, 3)),
    ("mlp", lambda: applications.mlp(), (28, 28, 1)),
]


@pytest.mark.parametrize("name, make, shape", APPLICATIONS, ids=[a[0] for a in APPLICATIONS])
def test_applications(name, make, shape, tmp_path):
    check_export(randomize(make()), np.random.default_rng(0).random((2, *shape), np.float32),
                 tmp_path)


# -- Model.export and the refusals ---------------------------------------------------------------

def test_model_export_defaults_to_onnx(tmp_path, capsys):
    model = randomize(applications.mlp())
    path = tmp_path / "mlp.onnx"
    model.export(path, verbose=True)
    assert f"Saved artifact at '{path}'." in capsys.readouterr().out
    x = data((28, 28, 1))
    np.testing.assert_allclose(run_onnx(path, model, [x])[0], model.predict(x, verbose=0),
                               rtol=RTOL, atol=ATOL)
    model.export(path, format="onnx", opset_version=13)
    assert onnx.load(str(path)).opset_import[0].version == 13


@pytest.mark.parametrize("kwargs, message", [
    ({"format": "tf_saved_model"}, "format"),
    ({"format": "ONNX"}, "format"),
    ({"input_signature": [(None, 28, 28, 1)]}, "input_signature"),
    ({"opset_version": 12}, "opset"),
])
def test_model_export_refusals(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        applications.mlp().export(tmp_path / "m.onnx", **kwargs)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("opset", [12, 0, onnx.defs.onnx_opset_version() + 1, 17.0, "17", True])
def test_bad_opset(opset, tmp_path):
    with pytest.raises(ValueError, match="opset"):
        fastcnn.onnx.export(applications.mlp(), tmp_path / "m.onnx", opset=opset)


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install fastcnn\[onnx\]"):
        fastcnn.onnx.export(applications.mlp(), tmp_path / "m.onnx")


def test_not_a_model(tmp_path):
    with pytest.raises(TypeError, match="fastcnn Model"):
        fastcnn.onnx.export(layers.Dense(3), tmp_path / "m.onnx")


def test_unbuilt_model(tmp_path):
    with pytest.raises(ValueError, match="not been built"):
        fastcnn.onnx.export(fastcnn.Sequential([layers.Dense(3)]), tmp_path / "m.onnx")


class Doubler(layers.Layer):
    """A leaf layer with its own math."""

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x, ctx, training):
        return 2 * x

    def backward(self, dy, ctx, need_dx):
        return 2 * dy


class OpsLayer(layers.Layer):
    """A composite layer written with fastcnn.ops."""

    def call(self, x):
        return fastcnn.ops.exp(x) + 1.0


class DenseBlock(layers.Layer):
    """A composite layer of built-in layers: exported through its traced call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = layers.Dense(4, activation="relu")
        self.second = layers.Dense(2)

    def call(self, x):
        return self.second(self.first(x))


class MyConv(layers.Conv2D):
    pass


def test_composite_layer_of_builtin_layers(tmp_path):
    check_export(randomize(stack((5,), DenseBlock(name="block"))), data((5,)), tmp_path)


@pytest.mark.parametrize("make, message", [
    (lambda: stack((4,), Doubler(name="doubler")), r"'doubler' of class Doubler"),
    (lambda: stack((4,), layers.Dense(3), OpsLayer(name="custom")),
     r"inside OpsLayer 'custom'.*fastcnn\.ops"),
    (lambda: stack((6, 6, 2), MyConv(3, 3, name="mine")), r"'mine' of class MyConv.*Conv2D"),
    (lambda: fastcnn.Model(*(lambda x: (x, layers.Dense(2)(x) * 2.0))(fastcnn.Input((3,)))),
     r"operation .*fastcnn\.ops"),
])
def test_refused_layers(make, message, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match=message):
        fastcnn.onnx.export(make(), path)
    assert path.read_bytes() == b"previous"  # a refused export leaves the file as it was


@pytest.mark.parametrize("layer", [layers.Dropout(0.5), layers.BatchNormalization(),
                                   layers.RandomFlip()])
def test_training_calls_refused(layer, tmp_path):
    images = fastcnn.Input(shape=(4, 4, 2))
    model = fastcnn.Model(images, layer(images, training=True))
    with pytest.raises(ValueError, match="training=True"):
        fastcnn.onnx.export(model, tmp_path / "m.onnx")


def test_frozen_batch_norm_in_training_call(tmp_path):
    """A frozen BatchNormalization uses its moving statistics in training too: exportable."""
    images = fastcnn.Input(shape=(4, 4, 2))
    norm = layers.BatchNormalization()
    model = fastcnn.Model(images, norm(images, training=True))
    norm.trainable = False
    check_export(randomize(model), data((4, 4, 2)), tmp_path)


def test_weights_beyond_one_protobuf_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(fastcnn.onnx, "PROTOBUF_LIMIT", 1000)
    with pytest.raises(ValueError, match="mlp.*bytes of weights"):
        fastcnn.onnx.export(applications.mlp(), tmp_path / "m.onnx")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("layer", [layers.CenterCrop(2, 2), layers.Resizing(3, 4),
                                   layers.UpSampling2D(3, interpolation="bilinear")])
def test_resampling_needs_known_size(layer, tmp_path):
    """fastcnn's taps and weights depend on the input's size."""
    model = stack((None, None, 3), layer)
    with pytest.raises(ValueError, match=f"{type(layer).__name__} .*height and width known"):
        fastcnn.onnx.export(model, tmp_path / "m.onnx")


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_resizing_sizes(interpolation, tmp_path):
    """Sizes where ONNX's Resize would round its source coordinates otherwise than fastcnn."""
    for height, target in [(6, 37), (12, 37), (24, 37), (10, 34), (18, 10), (31, 7), (7, 31)]:
        model = stack((height, 3, 2), layers.Resizing(target, 5, interpolation=interpolation))
        check_export(model, data((height, 3, 2)), tmp_path)
