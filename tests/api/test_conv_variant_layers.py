"""Conv2D(dilation_rate, groups), Conv1D and Conv2DTranspose as layers: the layer contract,
Keras's argument checks and output shapes, torch as oracle through the engine, and fusion."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from conftest import call_layer, check_layer, step_names, training_plan

CASES = {  # make, input shape, output shape, parameter count
    "conv2d_dilated": (lambda: layers.Conv2D(4, 3, padding="same", dilation_rate=2,
                                             activation="relu"),
                       (9, 8, 2), (9, 8, 4), 3 * 3 * 2 * 4 + 4),
    "conv2d_dilated_valid": (lambda: layers.Conv2D(3, (2, 3), dilation_rate=(3, 1)),
                             (8, 7, 2), (5, 5, 3), 2 * 3 * 2 * 3 + 3),
    "conv2d_grouped": (lambda: layers.Conv2D(6, 3, strides=2, padding="same", groups=2,
                                             use_bias=False),
                       (7, 6, 4), (4, 3, 6), 3 * 3 * 2 * 6),
    "conv2d_grouped_dilated": (lambda: layers.Conv2D(8, 3, padding="same", groups=4,
                                                     dilation_rate=2, activation="tanh"),
                               (6, 6, 8), (6, 6, 8), 3 * 3 * 2 * 8 + 8),
    "conv1d_valid": (lambda: layers.Conv1D(4, 3, activation="relu"), (9, 2), (7, 4),
                     3 * 2 * 4 + 4),
    "conv1d_same_strided": (lambda: layers.Conv1D(5, 4, strides=2, padding="same"), (9, 3),
                            (5, 5), 4 * 3 * 5 + 5),
    "conv1d_causal_dilated_grouped": (lambda: layers.Conv1D(6, 3, padding="causal",
                                                            dilation_rate=2, groups=3),
                                      (10, 3), (10, 6), 3 * 1 * 6 + 6),
    "conv2d_transpose_unet": (lambda: layers.Conv2DTranspose(4, 2, strides=2, padding="same"),
                              (4, 5, 3), (8, 10, 4), 2 * 2 * 4 * 3 + 4),
    "conv2d_transpose_valid": (lambda: layers.Conv2DTranspose(3, (3, 2), strides=(2, 1),
                                                              activation="relu"),
                               (4, 5, 2), (9, 6, 3), 3 * 2 * 3 * 2 + 3),
    "conv2d_transpose_output_padding": (lambda: layers.Conv2DTranspose(
        2, 3, strides=2, padding="same", output_padding=1, use_bias=False), (3, 4, 2), (6, 8, 2),
        3 * 3 * 2 * 2),
    "conv2d_transpose_dilated": (lambda: layers.Conv2DTranspose(3, 3, dilation_rate=2,
                                                                activation="sigmoid"),
                                 (4, 4, 2), (8, 8, 3), 3 * 3 * 3 * 2 + 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_contract(name):
    check_layer(*CASES[name])


def test_keras_kernel_layouts():
    conv = layers.Conv2D(6, (3, 5), groups=3)
    conv.build((None, 8, 8, 9))
    assert conv.kernel.shape == (3, 5, 3, 6) and conv.bias.shape == (6,)
    conv1 = layers.Conv1D(4, 5, groups=2)
    conv1.build((None, 10, 6))
    assert conv1.kernel.shape == (5, 3, 4)
    transposed = layers.Conv2DTranspose(7, (2, 3))
    transposed.build((None, 8, 8, 5))
    assert transposed.kernel.shape == (2, 3, 7, 5) and transposed.bias.shape == (7,)


@pytest.mark.parametrize("make,message", [
    (lambda: layers.Conv2D(6, 3, groups=4), "divisible by groups"),
    (lambda: layers.Conv2D(6, 3, groups=0), "groups=0"),
    (lambda: layers.Conv2D(6, 3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: layers.Conv2D(6, 3, dilation_rate=(1, 0)), "dilation_rate"),
    (lambda: layers.Conv1D(6, 3, padding="full"), "padding='full'"),
    (lambda: layers.Conv1D(6, (3, 3)), "kernel_size"),
    (lambda: layers.Conv1D(6, 3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: layers.Conv2DTranspose(6, 3, strides=2, output_padding=2), "output_padding"),
    (lambda: layers.Conv2DTranspose(6, 3, output_padding=-1), "output_padding"),
    (lambda: layers.Conv2DTranspose(6, 3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: layers.Conv2DTranspose(0, 3), "filters=0"),
])
def test_bad_arguments_name_the_value(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_input_channels_must_divide_into_the_groups():
    with pytest.raises(ValueError, match="divisible by groups"):
        layers.Conv2D(6, 3, groups=3)(fastcnn.Input((8, 8, 4)))
    with pytest.raises(ValueError, match="divisible by groups"):
        layers.Conv1D(6, 3, groups=3)(fastcnn.Input((8, 4)))


def test_output_shapes_follow_keras():
    """Keras's rules in words: a convolution keeps floor((n - span) / stride) + 1 pixels with
    "valid" and ceil(n / stride) with "same" or "causal", where span = (kernel - 1) * dilation
    + 1; a transposed convolution makes n*stride pixels with "same" and n*stride plus what the
    span sticks out past a stride with "valid", or, given output_padding,
    (n - 1)*stride + span - 2*pad + output_padding, pad being 0 ("valid") or span // 2
    ("same"). Unknown sizes stay unknown."""
    for n in (5, 8, 11):
        for k, s, d, padding in [(3, 1, 2, "valid"), (3, 1, 3, "same"), (4, 3, 1, "valid"),
                                 (2, 2, 1, "same")]:
            span = (k - 1) * d + 1
            keep = (n - span) // s + 1 if padding == "valid" else -(-n // s)
            conv = layers.Conv2D(2, k, strides=s, padding=padding, dilation_rate=d)
            assert conv.compute_output_shape((None, n, None, 1)) == (None, keep, None, 2)
            conv1 = layers.Conv1D(2, k, strides=s, padding=padding, dilation_rate=d)
            assert conv1.compute_output_shape((None, n, 1)) == (None, keep, 2)
            for op in (None, *range(s)):
                if op is None:
                    grown = n * s + (max(span - s, 0) if padding == "valid" else 0)
                else:
                    pad = 0 if padding == "valid" else span // 2
                    grown = (n - 1) * s + span - 2 * pad + op
                transposed = layers.Conv2DTranspose(2, k, strides=s, padding=padding,
                                                    output_padding=op, dilation_rate=d)
                assert transposed.compute_output_shape((None, None, n, 1)) == (None, None,
                                                                               grown, 2)
        causal = layers.Conv1D(2, 3, padding="causal", dilation_rate=2)
        assert causal.compute_output_shape((None, n, 1)) == (None, n, 2)


def test_conv1d_matches_torch_forward_and_backward(rng):
    torch = pytest.importorskip("torch")
    layer = layers.Conv1D(6, 3, padding="causal", dilation_rate=2, groups=2, activation="relu")
    layer.build((None, 11, 4))
    layer.set_weights([rng.standard_normal(w.shape).astype(np.float32)
                       for w in layer.get_weights()])
    x = rng.standard_normal((3, 11, 4)).astype(np.float32)
    dy = rng.standard_normal((3, 11, 6)).astype(np.float32)
    y, dx, (dw, db) = call_layer(layer, x, dy)
    kernel, bias = (torch.tensor(w, dtype=torch.float64, requires_grad=True)
                    for w in layer.get_weights())
    t = torch.tensor(x.transpose(0, 2, 1), dtype=torch.float64, requires_grad=True)
    want = torch.relu(torch.nn.functional.conv1d(torch.nn.functional.pad(t, (4, 0)),
                                                 kernel.permute(2, 1, 0), bias, dilation=2,
                                                 groups=2))
    (want * torch.tensor(dy.transpose(0, 2, 1), dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(y, want.detach().numpy().transpose(0, 2, 1), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(dx, t.grad.numpy().transpose(0, 2, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, kernel.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, bias.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_conv2d_transpose_matches_torch_through_the_layer(rng):
    torch = pytest.importorskip("torch")
    layer = layers.Conv2DTranspose(5, 3, strides=2, padding="valid", output_padding=1,
                                   activation="relu")
    layer.build((None, 4, 5, 3))
    layer.set_weights([rng.standard_normal(w.shape).astype(np.float32)
                       for w in layer.get_weights()])
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    y, dx, (dw, db) = call_layer(layer, x, np.ones((2, 10, 12, 5), np.float32))
    kernel, bias = (torch.tensor(w, dtype=torch.float64, requires_grad=True)
                    for w in layer.get_weights())
    t = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    want = torch.relu(torch.nn.functional.conv_transpose2d(
        t, kernel.permute(3, 2, 0, 1), bias, stride=2, output_padding=1))
    want.sum().backward()
    np.testing.assert_allclose(y, want.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(dx, t.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, kernel.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, bias.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_dilated_and_grouped_convs_are_not_fused_with_pooling():
    """The fused conv + max-pool kernels run plain convolutions; a dilated or grouped Conv2D
    before a pooling stays its own step, and trains to the same weights fused or not."""
    def model(**variant):
        fastcnn.utils.set_random_seed(5)
        m = fastcnn.Sequential([fastcnn.Input((8, 8, 4)),
                                layers.Conv2D(4, 3, padding="same", activation="relu", **variant),
                                layers.MaxPooling2D(2), layers.Flatten(),
                                layers.Dense(3, activation="softmax")])
        m.compile(optimizer=fastcnn.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        return m

    x = np.random.default_rng(0).standard_normal((8, 8, 8, 4)).astype(np.float32)
    y = np.arange(8) % 3
    assert "ConvMaxPoolStep" in step_names(training_plan(model()))
    for variant in (dict(dilation_rate=2), dict(groups=2)):
        fused = model(**variant)
        assert "ConvMaxPoolStep" not in step_names(training_plan(fused))
        unfused = model(**variant)
        unfused.compile(optimizer=fastcnn.optimizers.SGD(0.1),
                        loss="sparse_categorical_crossentropy", fuse=False)
        for m in (fused, unfused):
            m.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
        for a, b in zip(fused.get_weights(), unfused.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_small_unet_trains_and_reloads(tmp_path):
    """Conv2DTranspose in the U-Net pattern (the acceptance net's shape, shrunk): the loss
    drops, and the saved model predicts bitwise alike."""
    from conftest import reloaded
    fastcnn.utils.set_random_seed(1)
    inputs = fastcnn.Input((16, 16, 1))
    s1 = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = layers.Conv2D(8, 3, padding="same", activation="relu")(layers.MaxPooling2D(2)(s1))
    u = layers.Conv2DTranspose(4, 2, strides=2, padding="same")(b)
    d = layers.Conv2D(4, 3, padding="same", activation="relu")(layers.Concatenate()([u, s1]))
    model = fastcnn.Model(inputs, layers.Conv2D(1, 1, activation="sigmoid")(d))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x = np.random.default_rng(0).random((16, 16, 16, 1), dtype=np.float32)
    y = (x > 0.5).astype(np.float32)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=8, epochs=5, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    reloaded(model, x[:4], tmp_path)
