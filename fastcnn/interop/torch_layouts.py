"""Each fastcnn layer's weights as the tensors of the PyTorch module that computes the same
function: the module's class, the names torch gives its tensors, and the maps between layouts.

fastcnn keeps Keras's channels-last layouts; torch's modules are channels-first:

==========================  ===============================  ===================================
fastcnn layer (weight)      fastcnn layout                   torch module: tensor layout
==========================  ===============================  ===================================
Conv2D (kernel)             (kh, kw, in / groups, out)       Conv2d: weight (out, in / groups,
                                                             kh, kw)
Conv1D (kernel)             (k, in / groups, out)            Conv1d: weight (out, in / groups, k)
DepthwiseConv2D (kernel)    (kh, kw, c, m)                   Conv2d(c, c * m, groups=c): weight
                                                             (c * m, 1, kh, kw), output channel
                                                             ``ch * m + j`` from channel ``ch``
SeparableConv2D             depthwise (kh, kw, c, m),        two Conv2d: ``<name>.depthwise``
                            pointwise (1, 1, c * m, out)     (no bias) and ``<name>.pointwise``
Conv2DTranspose (kernel)    (kh, kw, out, in)                ConvTranspose2d: weight (in, out,
                                                             kh, kw), the window not flipped
Dense (kernel)              (in, out)                        Linear: weight (out, in)
BatchNormalization          gamma, beta, moving_mean,        BatchNorm1d/2d: weight, bias,
                            moving_variance                  running_mean, running_var
LayerNormalization          gamma, beta over the channels,   LayerNorm: weight, bias (channels,)
                            or over every axis but batch     or (channels, *spatial)
GroupNormalization          gamma, beta (channels)           GroupNorm: weight, bias
PReLU (alpha)               one slope, or one per channel    PReLU: weight (1,) or (channels,)
==========================  ===============================  ===================================

Biases are (out,) on both sides. A Dense that reads a flattened feature map sees its features
in another order in torch, which flattens channels first: its weight's columns are permuted
(see flatten_order). The window of a transposed convolution needs no flip: Keras and torch
both define it as the adjoint of the correlation with that kernel.

Only weights are mapped: the torch module must be built with the same hyperparameters
(strides, padding, groups, and the epsilon of each normalisation: Keras's default is 1e-3,
torch's 1e-5).
"""
import numpy as np

from .. import layers

# The buffer of torch's BatchNorm that counts its training batches: no fastcnn weight holds it.
BATCH_COUNT = "num_batches_tracked"


class TorchParam:
    """A tensor of a torch module that holds one fastcnn weight: its ``name`` in the module
    ("weight", "running_mean"...), the fastcnn ``weight`` (an array its layer owns), and the maps
    ``to_torch`` (fastcnn's layout to torch's) and ``from_torch`` (torch's to fastcnn's)."""

    __slots__ = ("from_torch", "name", "to_torch", "weight")

    def __init__(self, name, weight, to_torch, from_torch):
        self.name, self.weight = name, weight
        self.to_torch, self.from_torch = to_torch, from_torch

    @property
    def torch_shape(self):
        return self.to_torch(self.weight).shape


class TorchModule:
    """The torch module that stands for a fastcnn ``layer`` (or for one part of it): ``suffix``
    is its path under the layer's name ("" for the layer itself), ``kind`` the torch class that
    computes it, ``params`` its TorchParams in torch's order, and ``buffers`` the tensors torch
    keeps beside them that no fastcnn weight holds, with the values they are exported with."""

    __slots__ = ("buffers", "kind", "layer", "params", "suffix")

    def __init__(self, layer, kind, params, suffix="", buffers=None):
        self.layer, self.kind, self.params = layer, kind, params
        self.suffix, self.buffers = suffix, buffers or {}

    def describe(self):
        """The layer, the torch module and its tensors' shapes, for error messages."""
        tensors = ", ".join(f"{p.name} {p.torch_shape}" for p in self.params)
        part = f" (its {self.suffix} part)" if self.suffix else ""
        return (f"fastcnn layer {self.layer.name!r} ({type(self.layer).__name__}){part}, a torch "
                f"{self.kind} with {tensors}")


def _same():
    return (lambda a: a), (lambda a: a)


def _transposed(axes):
    """The maps of a layout that is a transposition of the other: by ``axes``, and back."""
    inverse = tuple(int(a) for a in np.argsort(axes))
    return (lambda a: a.transpose(axes)), (lambda a: a.transpose(inverse))


_HWIO_TO_OIHW = (3, 2, 0, 1)  # also Conv2DTranspose's (kh, kw, out, in) to (in, out, kh, kw)


def _depthwise(kernel_shape):
    """(kh, kw, c, m) to (c * m, 1, kh, kw): the C order of (c, m) is torch's ``ch * m + j``."""
    kh, kw, c, m = kernel_shape
    return (lambda k: k.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None],
            lambda w: w[:, 0].transpose(1, 2, 0).reshape(kh, kw, c, m))


def _dense(map_shape):
    """(in, out) to (out, in); when the inputs are a flattened (*spatial, channels) map, torch's
    input features are that map's values channels first, and the columns follow them."""
    if map_shape is None:
        return _transposed((1, 0))
    *spatial, channels = map_shape
    rank = len(spatial)

    def to_torch(kernel):
        out = kernel.shape[-1]
        return kernel.reshape(*map_shape, out).transpose(rank + 1, rank, *range(rank)).reshape(
            out, -1)

    def from_torch(weight):
        out = weight.shape[0]
        return weight.reshape(out, channels, *spatial).transpose(*range(2, rank + 2), 1, 0).reshape(
            -1, out)

    return to_torch, from_torch


def _param(name, weight, maps):
    return TorchParam(name, weight, *maps)


def _kernel_module(layer, weights, kind, maps):
    """A convolution's or Dense's module: the mapped kernel, then the bias if the layer has one."""
    params = [_param("weight", weights["kernel"], maps)]
    if "bias" in weights:
        params.append(_param("bias", weights["bias"], _same()))
    return [TorchModule(layer, kind, params)]


def _groups(kind, groups):
    return kind if groups == 1 else f"{kind}(groups={groups})"


def _conv2d(layer, weights, map_shape):
    return _kernel_module(layer, weights, _groups("Conv2d", layer.groups),
                          _transposed(_HWIO_TO_OIHW))


def _conv1d(layer, weights, map_shape):
    return _kernel_module(layer, weights, _groups("Conv1d", layer.groups), _transposed((2, 1, 0)))


def _conv2d_transpose(layer, weights, map_shape):
    return _kernel_module(layer, weights, "ConvTranspose2d", _transposed(_HWIO_TO_OIHW))


def _depthwise_conv2d(layer, weights, map_shape):
    kernel = weights["kernel"]
    return _kernel_module(layer, weights, _groups("Conv2d", kernel.shape[2]),
                          _depthwise(kernel.shape))


def _separable_conv2d(layer, weights, map_shape):
    depthwise = weights["depthwise_kernel"]
    pointwise = [_param("weight", weights["pointwise_kernel"], _transposed(_HWIO_TO_OIHW))]
    if "bias" in weights:
        pointwise.append(_param("bias", weights["bias"], _same()))
    return [TorchModule(layer, _groups("Conv2d", depthwise.shape[2]),
                        [_param("weight", depthwise, _depthwise(depthwise.shape))], "depthwise"),
            TorchModule(layer, "Conv2d", pointwise, "pointwise")]


def _dense_layer(layer, weights, map_shape):
    return _kernel_module(layer, weights, "Linear", _dense(map_shape))


def _affine(weights, maps=None):
    """gamma and beta as torch's weight and bias, those the layer has."""
    return [_param(torch_name, weights[name], maps or _same())
            for name, torch_name in (("gamma", "weight"), ("beta", "bias")) if name in weights]


def _batch_normalization(layer, weights, map_shape):
    params = _affine(weights) + [_param("running_mean", weights["moving_mean"], _same()),
                                 _param("running_var", weights["moving_variance"], _same())]
    # torch counts the training batches the moving statistics saw; fastcnn does not, and 0 is
    # what torch starts from (it reads the count only with momentum=None).
    return [TorchModule(layer, "BatchNorm", params,
                        buffers={BATCH_COUNT: np.zeros((), np.int64)})]


def _layer_normalization(layer, weights, map_shape):
    """gamma spans the normalised axes in the order of ``axis``. Over the channels alone it is
    torch's LayerNorm(channels) on channels-last values (as ConvNeXt applies it); over every axis
    but the batch's it is LayerNorm((channels, *spatial)) on the channels-first tensor. Other
    axes have no torch LayerNorm on either layout."""
    rank = len(layer._build_shape)
    axes = [a % rank for a in (layer.axis if isinstance(layer.axis, list) else [layer.axis])]
    if axes == [rank - 1]:
        maps = _same()
    elif sorted(axes) == list(range(1, rank)):
        maps = _transposed(tuple(axes.index(a) for a in [rank - 1, *range(1, rank - 1)]))
    else:
        raise ValueError(f"LayerNormalization {layer.name!r} normalises axes {layer.axis} of "
                         f"inputs of rank {rank}, which no torch LayerNorm does: torch's "
                         "normalises the last axes, and fastcnn maps only the channel axis or "
                         "every axis but the batch's")
    return [TorchModule(layer, "LayerNorm", _affine(weights, maps))]


def _group_normalization(layer, weights, map_shape):
    # Both split the channels into groups of adjacent channels.
    return [TorchModule(layer, "GroupNorm", _affine(weights))]


def _prelu(layer, weights, map_shape):
    alpha = weights["alpha"]
    if alpha.size != alpha.shape[-1]:
        raise ValueError(f"PReLU {layer.name!r} has slopes of shape {alpha.shape}, but torch's "
                         "PReLU has one slope or one per channel: use shared_axes for every axis "
                         "but the channel axis")
    shape = alpha.shape
    return [TorchModule(layer, "PReLU", [TorchParam("weight", alpha, lambda a: a.reshape(-1),
                                                    lambda w: w.reshape(shape))])]


_LAYOUTS = {layers.Conv2D: _conv2d, layers.Conv1D: _conv1d,
            layers.Conv2DTranspose: _conv2d_transpose,
            layers.DepthwiseConv2D: _depthwise_conv2d, layers.SeparableConv2D: _separable_conv2d,
            layers.Dense: _dense_layer, layers.BatchNormalization: _batch_normalization,
            layers.LayerNormalization: _layer_normalization,
            layers.GroupNormalization: _group_normalization, layers.PReLU: _prelu}


def torch_modules(layer, map_shape=None):
    """The TorchModules that stand for ``layer``'s weights, in torch's order. ``map_shape``:
    for a Dense that reads a flattened feature map, the map's shape (*spatial, channels)."""
    layout = next((_LAYOUTS[cls] for cls in type(layer).__mro__ if cls in _LAYOUTS), None)
    if layout is None:
        raise ValueError(f"{type(layer).__name__} {layer.name!r} has weights "
                         f"{layer._weight_names} but no torch counterpart that fastcnn.interop "
                         f"maps; it maps {sorted(cls.__name__ for cls in _LAYOUTS)}")
    return layout(layer, dict(zip(layer._weight_names, layer._weights)), map_shape)
