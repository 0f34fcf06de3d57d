"""The ONNX graph under construction: its names, constants and nodes, and the order in which
each tensor's axes are held.

fastcnn's tensors are channels-last (NHWC); ONNX's convolutions, poolings and resizes take
channels-first ones (NCHW). Rather than transposing around each such node, every tensor of the
export is a ``Value`` that records the order its axes are held in: ``perm``, where ONNX axis i
holds Keras axis ``perm[i]`` (the batch axis always first). A converter asks for the order it
needs (``keras`` or ``channels_first``) and gets a Transpose only where the tensor is held in
another, made once per tensor and order: a chain of convolutions stays channels-first, and a
Flatten after it sees the channels-last order its Dense weights were trained on.
"""
import numpy as np


def keras_order(rank):
    """The axes of a tensor held as fastcnn holds it."""
    return tuple(range(rank))


def channels_first(rank):
    """(0, rank - 1, 1, ..., rank - 2): the channels (Keras's last axis) right after the
    batch axis, as ONNX's convolutions take them."""
    return (0, rank - 1, *range(1, rank - 1)) if rank > 2 else keras_order(rank)


class Value:
    """A tensor of the export: its ONNX name, the order its axes are held in (``perm``) and
    its Keras shape (batch axis first, None where unknown)."""

    __slots__ = ("name", "perm", "shape")

    def __init__(self, name, perm, shape):
        self.name, self.perm, self.shape = name, tuple(perm), tuple(shape)

    @property
    def rank(self):
        return len(self.shape)

    def axis(self, keras_axis):
        """The ONNX axis that holds Keras axis ``keras_axis`` (negative counts from the end)."""
        return self.perm.index(keras_axis % self.rank)


class GraphBuilder:
    """Nodes and initializers for ONNX opset ``opset``, with unique names.

    ``scope`` (the name of the layer being converted) prefixes the names of the tensors and
    constants made for it, so that the graph reads layer by layer."""

    def __init__(self, opset):
        self.opset = opset
        self.nodes = []
        self.initializers = []
        self.constant_bytes = 0
        self.scope = ""
        self._names = set()
        self._transposes = {}  # (tensor name, perm) -> the name of its transposed copy
        self._constants = {}  # (scope, hint) -> [(array, name)]: a shared layer's weights once

    # -- names -----------------------------------------------------------------------------
    def reserve(self, name):
        """Claim ``name`` (a graph input's or output's) as it is."""
        if name in self._names:
            raise ValueError(f"Expected unique input and output names, received {name!r} twice")
        self._names.add(name)
        return name

    def fresh(self, hint):
        """A new unique name: ``scope/hint``, numbered when taken."""
        base = f"{self.scope}/{hint}" if self.scope else hint
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    # -- nodes and constants ---------------------------------------------------------------
    def node(self, op_type, inputs, output=None, **attributes):
        """Append a node of one output (``output``, or a fresh name) and return that name."""
        from onnx import helper
        output = output or self.fresh(op_type)
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=output,
                                           **attributes))
        return output

    def const(self, array, hint):
        """An initializer holding ``array`` (float32 unless it is an integer array, then
        int64); the same array made twice in one scope under one hint is stored once."""
        from onnx import numpy_helper
        array = np.asarray(array)
        array = np.ascontiguousarray(array, np.int64 if array.dtype.kind in "iu" else np.float32)
        key = (self.scope, hint)
        for known, name in self._constants.get(key, ()):
            if known.shape == array.shape and np.array_equal(known, array):
                return name
        name = self.fresh(hint)
        self._constants.setdefault(key, []).append((array, name))
        self.initializers.append(numpy_helper.from_array(array, name))
        self.constant_bytes += array.nbytes
        return name

    def ints(self, values, hint):
        return self.const(np.array(list(values), np.int64), hint)

    def scalar(self, value):
        return self.const(np.float32(value), f"const_{float(value):g}")

    def reduce(self, op_type, x, axes, keepdims=True):
        """A Reduce* node over ``axes``: an attribute before opset 18, an input from it on
        (ReduceSum took it as an input from opset 13)."""
        axes = [int(a) for a in axes]
        if self.opset >= 18 or op_type == "ReduceSum":
            return self.node(op_type, [x, self.ints(axes, "axes")], keepdims=int(keepdims))
        return self.node(op_type, [x], axes=axes, keepdims=int(keepdims))

    # -- layouts ---------------------------------------------------------------------------
    def transpose(self, name, held, wanted, output=None):
        """Tensor ``name`` held in order ``held``, transposed to order ``wanted``."""
        return self.node("Transpose", [name], output,
                         perm=[held.index(axis) for axis in wanted])

    def held(self, value, perm):
        """``value``'s name in the order ``perm``: a Transpose where it is held otherwise,
        made once."""
        perm = tuple(perm)
        if value.perm == perm:
            return value.name
        key = (value.name, perm)
        if key not in self._transposes:
            self._transposes[key] = self.transpose(value.name, value.perm, perm)
        return self._transposes[key]

    def keras(self, value):
        return self.held(value, keras_order(value.rank))

    def channels_first(self, value):
        return self.held(value, channels_first(value.rank))

    def broadcast(self, array, value, hint):
        """A constant of Keras shape ``array.shape`` (``value``'s rank, ones where it repeats)
        in ``value``'s order of axes, to combine with it elementwise."""
        return self.const(np.transpose(np.asarray(array, np.float32), value.perm), hint)
