"""fastcnn.interop's PyTorch weights interchange, with torch as the oracle: a torch module of the
same architecture predicts what the fastcnn model predicts once the weights went either way
(fastcnn -> torch through to_torch_state_dict and torch's strict load_state_dict; torch ->
fastcnn through load_torch_state_dict, matched by order), directly or through a .safetensors
file; and what does not match is refused before anything changes."""
import collections
import json
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from fastcnn import Model, Sequential, layers  # noqa: E402
from fastcnn.applications import ResNet20, convnet  # noqa: E402
from fastcnn.interop import (  # noqa: E402
    load_torch_state_dict,
    load_torch_weights,
    save_torch_weights,
    to_torch_state_dict,
)
from fastcnn.saving import JSON_LIMIT, InvalidSaveFileError  # noqa: E402

EPS = 1e-3  # Keras's epsilon for every normalisation; torch's default is 1e-5


# -- helpers ---------------------------------------------------------------------------------
def channels_first(x):
    return np.ascontiguousarray(np.moveaxis(x, -1, 1)) if x.ndim > 2 else x


def torch_predict(module, x):
    """The torch module's output on the channels-last ``x``, channels last."""
    module.eval()
    with torch.no_grad():
        y = module(torch.from_numpy(channels_first(x))).numpy()
    return np.moveaxis(y, 1, -1) if y.ndim > 2 else y


def assert_same_predictions(model, module, x):
    np.testing.assert_allclose(model(x), torch_predict(module, x), rtol=1e-5, atol=1e-6)


def randomize(model, seed=0):
    """Random values for the weights that start constant (biases, normalisations' parameters
    and statistics, PReLU slopes), so that each one's mapping shows."""
    rng = np.random.default_rng(seed)
    draws = {"bias": lambda s: rng.normal(0, 0.2, s), "beta": lambda s: rng.normal(0, 0.2, s),
             "moving_mean": lambda s: rng.normal(0, 0.2, s),
             "gamma": lambda s: rng.uniform(0.5, 1.5, s),
             "moving_variance": lambda s: rng.uniform(0.5, 1.5, s),
             "alpha": lambda s: rng.uniform(0, 0.5, s)}
    for layer in _all_layers(model):
        for name, weight in zip(layer._weight_names, layer._weights):
            if name in draws:
                weight[...] = draws[name](weight.shape)


def _all_layers(layer):
    for sub in layer._sublayers():
        yield sub
        yield from _all_layers(sub)


def randomize_torch(module, seed=0):
    """torch's initialisation, with random normalisation parameters and statistics too."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
            if isinstance(sub, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
                sub.weight.uniform_(0.5, 1.5)
                sub.bias.normal_(0, 0.2)
            if isinstance(sub, (nn.BatchNorm1d, nn.BatchNorm2d)):
                sub.running_mean.normal_(0, 0.2)
                sub.running_var.uniform_(0.5, 1.5)
            if isinstance(sub, nn.PReLU):
                sub.weight.uniform_(0, 0.5)
    return module


def calibrate(model, shape):
    """Set every BatchNormalization's moving statistics to those of a batch of random images
    (one training pass with momentum 0): the activations then keep their scale through the
    layers, as in a trained network, and the softmax does not saturate, so that the
    predictions show any difference."""
    norms = [layer for layer in _all_layers(model)
             if isinstance(layer, layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(images(shape, n=8, seed=2), training=True)
    for layer in norms:
        layer.momentum = 0.99


def calibrate_torch(module, shape):
    """calibrate, for the torch module: torch's momentum is the weight of the new statistics."""
    norms = [sub for sub in module.modules() if isinstance(sub, nn.BatchNorm2d)]
    for sub in norms:
        sub.momentum = 1.0
    module.train()
    with torch.no_grad():
        module(torch.from_numpy(channels_first(images(shape, n=8, seed=2))))
    for sub in norms:
        sub.momentum = 0.1


def load_into_torch(module, model, by_order=False):
    """to_torch_state_dict into the module with torch's strict load_state_dict: by name (the
    module's submodules are named like the fastcnn layers), or renamed as the module names its
    tensors, in order."""
    state = to_torch_state_dict(model)
    keys = list(module.state_dict()) if by_order else list(state)
    assert len(keys) == len(state)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in zip(keys, state.values())},
                           strict=True)


def images(shape, n=3, seed=1):
    return np.random.default_rng(seed).normal(0, 1, (n, *shape)).astype(np.float32)


# -- the models and their torch twins -------------------------------------------------------
class TorchConvnet(nn.Module):
    """fastcnn.applications.convnet: (conv 3x3, relu, [batch norm], max pool 2) twice, flatten,
    dropout, dense softmax; its modules registered in the fastcnn model's order, under
    ``names`` (by default torch-style ones)."""

    def __init__(self, batch_norm, names=None):
        super().__init__()
        parts = [("conv1", nn.Conv2d(1, 32, 3)), ("bn1", nn.BatchNorm2d(32, eps=EPS)),
                 ("conv2", nn.Conv2d(32, 64, 3)), ("bn2", nn.BatchNorm2d(64, eps=EPS)),
                 ("fc", nn.Linear(1600, 10))]
        if not batch_norm:
            parts = [part for part in parts if not part[0].startswith("bn")]
        for name, (_, module) in zip(names or [p[0] for p in parts], parts):
            self.add_module(name, module)

    def forward(self, x):
        *convs, fc = self.children()
        per_stage = len(convs) // 2  # a convolution, and its batch norm if any
        for stage in (convs[:per_stage], convs[per_stage:]):
            x = F.relu(stage[0](x))
            if len(stage) > 1:
                x = stage[1](x)
            x = F.max_pool2d(x, 2)
        return F.softmax(fc(torch.flatten(x, 1)), dim=1)  # dropout: the identity in eval


def same_padding(x, kernel, stride):
    """Keras's padding "same" on square images: the pixels the window needs beyond the image,
    the odd one after (bottom and right), as TensorFlow puts it."""
    size = x.shape[-1]
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return F.pad(x, (total // 2, total - total // 2) * 2)


class ConvBN(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=EPS)

    def forward(self, x):
        return self.bn(self.conv(same_padding(x, self.kernel, self.stride)))


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        # Registered first: fastcnn's functional graph visits the Add's first input, the
        # shortcut, before the block's convolutions, and that is the order of model.weights.
        self.shortcut = ConvBN(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None
        self.conv1 = ConvBN(c_in, c_out, 3, stride)
        self.conv2 = ConvBN(c_out, c_out, 3, 1)

    def forward(self, x):
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu((x if self.shortcut is None else self.shortcut(x)) + y)


class TorchResNet20(nn.Module):
    """fastcnn.applications.ResNet20 (fastcnn/applications/resnet.py) for 32x32x3 images."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 16, 3, 1)
        blocks, c_in = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for block in range(3):
                blocks.append(BasicBlock(c_in, width, 2 if stage > 0 and block == 0 else 1))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        return F.softmax(self.fc(x.mean(dim=(2, 3))), dim=1)


MODELS = {"convnet": (lambda: convnet(), lambda: TorchConvnet(False), (28, 28, 1)),
          "convnet_batch_norm": (lambda: convnet(batch_norm=True), lambda: TorchConvnet(True),
                                 (28, 28, 1)),
          "resnet20": (ResNet20, TorchResNet20, (32, 32, 3))}


@pytest.mark.parametrize("name", MODELS)
def test_fastcnn_to_torch_predicts_alike(name):
    make_model, make_module, shape = MODELS[name]
    model, module = make_model(), make_module()
    randomize(model)
    calibrate(model, shape)
    load_into_torch(module, model, by_order=True)
    assert_same_predictions(model, module, images(shape))


@pytest.mark.parametrize("name", MODELS)
def test_torch_to_fastcnn_by_order_predicts_alike(name):
    make_model, make_module, shape = MODELS[name]
    model, module = make_model(), randomize_torch(make_module())
    calibrate_torch(module, shape)
    model(images(shape))  # run first: nothing of the weights it ran with may linger
    assert load_torch_state_dict(model, module.state_dict()) == ([], [])
    assert_same_predictions(model, module, images(shape))


# -- one layer at a time ---------------------------------------------------------------------
LAYER_CASES = {  # input shape (channels last), [(fastcnn layer, torch module)]
    "conv1d_groups": ((9, 4), lambda: [(layers.Conv1D(6, 3, dilation_rate=2, groups=2),
                                        nn.Conv1d(4, 6, 3, dilation=2, groups=2))]),
    "conv2d_groups": ((7, 6, 6), lambda: [(layers.Conv2D(6, (3, 2), strides=(2, 1), groups=3),
                                           nn.Conv2d(6, 6, (3, 2), stride=(2, 1), groups=3))]),
    "depthwise": ((6, 5, 4), lambda: [(layers.DepthwiseConv2D((3, 2), depth_multiplier=3),
                                       nn.Conv2d(4, 12, (3, 2), groups=4))]),
    "separable": ((6, 5, 3), lambda: [(
        layers.SeparableConv2D(5, (2, 3), depth_multiplier=2),
        nn.Sequential(collections.OrderedDict(
            depthwise=nn.Conv2d(3, 6, (2, 3), groups=3, bias=False),
            pointwise=nn.Conv2d(6, 5, 1))))]),
    # A non-square window of distinct values: a flip on either axis would show.
    "conv2d_transpose": ((4, 5, 3), lambda: [(layers.Conv2DTranspose(4, (3, 2), strides=2),
                                              nn.ConvTranspose2d(3, 4, (3, 2), stride=2))]),
    "dense_on_flatten": ((4, 3, 5), lambda: [(layers.Flatten(), nn.Flatten()),
                                             (layers.Dropout(0.5), nn.Dropout(0.5)),
                                             (layers.Activation("relu"), nn.ReLU()),
                                             (layers.Dense(7), nn.Linear(60, 7))]),
    "dense_on_flattened_sequence": ((8, 2), lambda: [(layers.Conv1D(4, 3), nn.Conv1d(2, 4, 3)),
                                                     (layers.Flatten(), nn.Flatten()),
                                                     (layers.Dense(3), nn.Linear(24, 3))]),
    "layer_norm_features": ((6,), lambda: [(layers.LayerNormalization(),
                                            nn.LayerNorm(6, eps=EPS))]),
    "layer_norm_whole_map": ((3, 4, 5), lambda: [(layers.LayerNormalization(axis=[1, 2, 3]),
                                                  nn.LayerNorm([5, 3, 4], eps=EPS))]),
    "group_norm": ((4, 3, 6), lambda: [(layers.GroupNormalization(groups=2),
                                        nn.GroupNorm(2, 6, eps=EPS))]),
    "prelu_per_channel": ((4, 3, 5), lambda: [(layers.PReLU(shared_axes=[1, 2]),
                                               nn.PReLU(5))]),
    "batch_norm_features": ((6,), lambda: [(layers.BatchNormalization(),
                                            nn.BatchNorm1d(6, eps=EPS))]),
}


def one_layer_pair(case):
    """The fastcnn model of the case and its torch twin, whose modules carry the fastcnn
    layers' names."""
    shape, make = LAYER_CASES[case]
    pairs = make()
    model = Sequential([layers.Input(shape=shape), *[layer for layer, _ in pairs]])
    module = nn.Sequential(collections.OrderedDict((layer.name, m) for layer, m in pairs))
    return model, module, shape


@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_to_torch(case):
    model, module, shape = one_layer_pair(case)
    randomize(model)
    load_into_torch(module, model)
    assert_same_predictions(model, module, images(shape))


@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_from_torch(case):
    model, module, shape = one_layer_pair(case)
    randomize_torch(module)
    # by name (the module's names are fastcnn's), then by order (torch's own names)
    assert load_torch_state_dict(model, module.state_dict()) == ([], [])
    assert_same_predictions(model, module, images(shape))
    renamed = collections.OrderedDict((f"features.{k}", v) for k, v in module.state_dict().items())
    model, _, _ = one_layer_pair(case)
    assert load_torch_state_dict(model, renamed) == ([], [])
    assert_same_predictions(model, module, images(shape))


def test_depthwise_output_channel_order_is_torchs():
    """Output channel ch * m + j of DepthwiseConv2D comes from input channel ch, as in a torch
    Conv2d with groups=channels: with a kernel of ones only channel ch's input reaches it."""
    model = Sequential([layers.Input(shape=(1, 1, 3)),
                        layers.DepthwiseConv2D(1, depth_multiplier=2, use_bias=False)])
    model.layers[0].kernel[...] = np.arange(6, dtype=np.float32).reshape(1, 1, 3, 2)
    weight = to_torch_state_dict(model)[f"{model.layers[0].name}.weight"]
    np.testing.assert_array_equal(weight[:, 0, 0, 0], np.arange(6))
    np.testing.assert_array_equal(model(np.array([[[[1, 10, 100]]]], np.float32))[0, 0, 0],
                                  [0, 1, 20, 30, 400, 500])


def test_nested_model_names_follow_torch_submodules():
    inner = Sequential([layers.Input(shape=(4,)), layers.Dense(3, name="hidden")], name="inner")
    inputs = layers.Input(shape=(4,))
    model = Model(inputs, layers.Dense(2, name="head")(inner(inputs)))
    module = nn.Module()
    module.inner = nn.Sequential(collections.OrderedDict(hidden=nn.Linear(4, 3)))
    module.head = nn.Linear(3, 2)
    assert list(to_torch_state_dict(model)) == list(module.state_dict())
    load_into_torch(module, model)
    x = images((4,))
    with torch.no_grad():
        expected = module.head(module.inner(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)


# -- .safetensors files ----------------------------------------------------------------------
def test_safetensors_round_trip_and_torch_reads_the_file(tmp_path):
    path = tmp_path / "convnet.safetensors"
    model = convnet(batch_norm=True)
    randomize(model)
    save_torch_weights(model, path)
    copy = convnet(batch_norm=True)
    assert load_torch_weights(copy, path) == ([], [])
    for a, b in zip(model.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
    names = [layer.name for layer in model.layers if layer.weights]
    module = TorchConvnet(True, names)
    module.load_state_dict(safetensors_torch.load_file(path), strict=True)
    assert_same_predictions(model, module, images((28, 28, 1)))
    with pytest.raises(FileExistsError):
        save_torch_weights(model, path, overwrite=False)


def test_torch_written_file_loads(tmp_path):
    """A file torch wrote from a module named like the fastcnn layers loads by name; one with
    torch's own names is refused (a file keeps no order to match by), and loads by order once
    read and put in the module's order."""
    model = convnet(batch_norm=True)
    names = [layer.name for layer in model.layers if layer.weights]
    module = randomize_torch(TorchConvnet(True, names))
    path = tmp_path / "named.safetensors"
    safetensors_torch.save_file(module.state_dict(), path)
    assert load_torch_weights(model, path) == ([], [])
    assert_same_predictions(model, module, images((28, 28, 1)))

    module = randomize_torch(TorchConvnet(True), seed=1)
    path = tmp_path / "torch_names.safetensors"
    safetensors_torch.save_file(module.state_dict(), path)
    before = model.get_weights()
    with pytest.raises(InvalidSaveFileError, match="order"):
        load_torch_weights(model, path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    tensors = safetensors_torch.load_file(path)
    load_torch_state_dict(model, {key: tensors[key] for key in module.state_dict()})
    assert_same_predictions(model, module, images((28, 28, 1)))


def _header(path):
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + length]), data[8 + length:]


def _write(path, header, body=b""):
    header = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + body)


def test_safetensors_refusals(tmp_path):
    model = convnet(batch_norm=True)
    good = tmp_path / "good.safetensors"
    save_torch_weights(model, good)
    header, body = _header(good)
    bad = tmp_path / "bad.safetensors"
    before = model.get_weights()

    other = convnet(classes=5, batch_norm=True)  # a sound file of other shapes
    save_torch_weights(other, bad)
    with pytest.raises(InvalidSaveFileError, match=r"dense.*\(5, 1600\)"):
        load_torch_weights(model, bad)

    # A shape far beyond the file, the header otherwise sound: refused before reading on.
    dense = f"{model.layers[-1].name}.weight"
    huge = [2**40, 1600]
    _write(bad, {dense: {"dtype": "F32", "shape": huge, "data_offsets": [0, 2**40 * 6400]}})
    with pytest.raises(InvalidSaveFileError, match=r"\(1099511627776, 1600\).*\(10, 1600\)"):
        load_torch_weights(model, bad, strict=False)
    forged = {**header, dense: {**header[dense], "shape": huge}}
    _write(bad, forged, body)
    with pytest.raises(InvalidSaveFileError, match="span"):
        load_torch_weights(model, bad)
    metadata = {**header["__metadata__"], "fastcnn_order": json.dumps({"keys": [dense]})}
    _write(bad, {**header, "__metadata__": metadata}, body)
    with pytest.raises(InvalidSaveFileError, match="fastcnn_order"):
        load_torch_weights(model, bad)
    _write(bad, {**header, dense: {**header[dense], "dtype": "I32"}}, body)
    with pytest.raises(InvalidSaveFileError, match="dtypes"):
        load_torch_weights(model, bad)
    _write(bad, header, body[:-1])  # truncated
    with pytest.raises(InvalidSaveFileError, match="bytes that the header describes"):
        load_torch_weights(model, bad)

    bad.write_bytes((JSON_LIMIT + 1).to_bytes(8, "little") + b"{}" + b" " * 64)
    with pytest.raises(InvalidSaveFileError, match="header of at most"):
        load_torch_weights(model, bad)
    bad.write_bytes((10**6).to_bytes(8, "little") + b"{}")  # beyond the file's end
    with pytest.raises(InvalidSaveFileError, match="header of at most"):
        load_torch_weights(model, bad)
    _write(bad, b"[" * 5000 + b"]" * 5000)
    with pytest.raises(InvalidSaveFileError, match="nested"):
        load_torch_weights(model, bad)
    _write(bad, b"{not json")
    with pytest.raises(InvalidSaveFileError, match="JSON"):
        load_torch_weights(model, bad)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_without_safetensors_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=r"pip install fastcnn\[torch\]"):
        save_torch_weights(convnet(), tmp_path / "w.safetensors")


def test_torch_is_never_imported(tmp_path):
    script = f"""
import sys
import numpy as np
from fastcnn import interop
from fastcnn.applications import convnet
model = convnet(batch_norm=True)
interop.load_torch_state_dict(model, interop.to_torch_state_dict(model))
interop.save_torch_weights(model, {str(tmp_path / "w.safetensors")!r})
interop.load_torch_weights(model, {str(tmp_path / "w.safetensors")!r})
assert "torch" not in sys.modules, "torch was imported"
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


# -- refusals --------------------------------------------------------------------------------
def test_wrong_shape_is_refused_and_nothing_changes():
    model = convnet(batch_norm=True)
    module = TorchConvnet(True)
    module.conv2 = nn.Conv2d(32, 48, 3)  # replaces the module in place: the order stays
    before = model.get_weights()
    conv2 = [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)][1]
    with pytest.raises(ValueError, match=rf"'conv2\.weight'.*{conv2}.*\(64, 32, 3, 3\)"):
        load_torch_state_dict(model, module.state_dict())
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_missing_and_extra_keys_by_name():
    model = convnet()
    dense = model.layers[-1].name
    state = to_torch_state_dict(model)
    del state[f"{dense}.bias"]
    with pytest.raises(ValueError, match=rf"missing \['{dense}\.bias'\].*{dense}"):
        load_torch_state_dict(model, state)
    assert load_torch_state_dict(model, state, strict=False) == ([f"{dense}.bias"], [])

    state = to_torch_state_dict(model)
    state["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"unexpected \['extra\.weight'\]"):
        load_torch_state_dict(model, state)
    randomize(model, seed=5)
    expected = to_torch_state_dict(model)
    fresh = convnet()
    assert load_torch_state_dict(fresh, {**expected, "extra.weight": np.zeros(3)},
                                 strict=False) == ([], ["extra.weight"])
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_count_and_kind_mismatches_by_order():
    model = convnet(batch_norm=True)
    state = TorchConvnet(True).state_dict()
    dense = model.layers[-1].name
    without_fc = collections.OrderedDict((k, v) for k, v in state.items()
                                         if not k.startswith("fc."))
    with pytest.raises(ValueError, match=rf"{dense}.*no counterpart after its last key "
                                         r"'bn2\.running_var'"):
        load_torch_state_dict(model, without_fc)
    assert load_torch_state_dict(model, without_fc, strict=False) == (
        [f"{dense}.weight", f"{dense}.bias"], [])

    state["extra.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"torch key 'extra\.weight'.*no counterpart"):
        load_torch_state_dict(model, state)

    bn_first = collections.OrderedDict(sorted(state.items(), key=lambda kv: kv[0] != "bn1.weight"))
    with pytest.raises(ValueError, match=rf"{model.layers[0].name}.*'bn1'.*not the same kind"):
        load_torch_state_dict(model, bn_first)


def test_dense_after_an_unknown_layer_on_flattened_features_is_refused():
    model = Sequential([layers.Input(shape=(2, 2, 3)), layers.Flatten(),
                        layers.BatchNormalization(name="bn_on_flat"), layers.Dense(2)])
    with pytest.raises(ValueError, match="bn_on_flat"):
        to_torch_state_dict(model)
    # the same layers on features whose order torch shares are fine
    plain = Sequential([layers.Input(shape=(12,)), layers.BatchNormalization(), layers.Dense(2)])
    assert len(to_torch_state_dict(plain)) == 7


def test_layers_without_a_torch_counterpart_are_refused():
    model = Sequential([layers.Input(shape=(2, 2, 3)), layers.PReLU(name="per_pixel")])
    with pytest.raises(ValueError, match="per_pixel"):
        to_torch_state_dict(model)
    model = Sequential([layers.Input(shape=(2, 2, 3)),
                        layers.LayerNormalization(axis=[1, 2], name="spatial_norm")])
    with pytest.raises(ValueError, match="spatial_norm"):
        to_torch_state_dict(model)
    with pytest.raises(TypeError, match="model"):
        to_torch_state_dict(layers.Dense(2))
