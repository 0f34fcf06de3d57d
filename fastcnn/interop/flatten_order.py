"""Which Dense layers read a flattened feature map, found by following the model's graph.

fastcnn flattens a (*spatial, channels) map channels last; torch flattens its (channels,
*spatial) map channels first. A Dense that reads flattened features (directly, or through
layers that keep each feature where it is, such as Dropout or Activation) sees them in another
order in torch, so its kernel's rows are permuted on the way (torch_layouts._dense).

The walk gives every value of the graph one of three orders: the same in torch (model inputs,
feature maps, the outputs of Dense and global pooling), a flattened map's, or unknown: a layer
that this module does not follow made it from a flattened map, or turned a map into features
its own way. A Dense that reads features of unknown order is refused rather than guessed at.
"""
import math

from .. import layers
from ..engine.graph import FlatGraph

# Each output feature is the same position's input feature(s), whatever the order.
_ELEMENTWISE = (layers.Activation, layers.Dropout, layers.ELU, layers.GaussianDropout,
                layers.GaussianNoise, layers.LeakyReLU, layers.ReLU, layers.Add, layers.Average,
                layers.Maximum, layers.Minimum, layers.Multiply, layers.Subtract)
# Outputs whose features are units or channels, in the same order on both sides.
_ORDERED = (layers.Dense, layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)


class _Unknown:
    """The order of features that ``layer`` made in a way fastcnn cannot follow."""

    def __init__(self, layer):
        self.layer = layer


def _output_order(layer, orders, in_shapes, out_shape):
    """The order of ``layer``'s outputs of ``out_shape``, from its inputs' ``orders`` (None:
    the same in torch; a map's shape: that map flattened; or an _Unknown)."""
    if isinstance(layer, layers.Flatten) or (isinstance(layer, layers.Reshape)
                                             and len(out_shape) == 2):
        if len(in_shapes[0]) == 2 or orders[0] is not None:
            return orders[0]
        map_shape = tuple(in_shapes[0][1:])
        return map_shape if math.prod(map_shape[:-1]) > 1 else None  # one position: no change
    if isinstance(layer, _ORDERED):
        return None
    if isinstance(layer, _ELEMENTWISE):
        if all(order == orders[0] for order in orders):
            return orders[0]
        return _Unknown(layer)
    known = [order for order in orders if order is not None]
    if not known and (len(out_shape) > 2 or all(len(s) == 2 for s in in_shapes)):
        return None
    return next((order for order in known if isinstance(order, _Unknown)), _Unknown(layer))


def flattened_maps(model):
    """{id(dense): (*spatial, channels)} for each Dense in ``model`` (nested models included)
    that reads that map flattened; a ValueError for a Dense whose features' order in torch
    cannot be told, or that reads features in different orders at two places."""
    graph = FlatGraph(model._built_graph(), training=False)
    orders = dict.fromkeys(graph.input_slots)
    found = {}
    for call in graph.calls:
        layer = call.layer
        in_orders = [orders[slot] for slot in call.inputs]
        if isinstance(layer, layers.Dense):
            order = in_orders[0]
            if isinstance(order, _Unknown):
                maker = order.layer
                raise ValueError(
                    f"Dense {layer.name!r} reads features that {type(maker).__name__} "
                    f"{maker.name!r} made from a feature map (or a flattened one) in a way "
                    "fastcnn.interop does not follow, so their order in torch (which flattens "
                    "channels first) is unknown; only Flatten, and layers that keep each feature "
                    "in place (Dropout, Activation...), may stand between a map and a Dense")
            if found.setdefault(id(layer), order) != order:
                raise ValueError(f"Dense {layer.name!r} reads features in different orders at "
                                 f"two places ({found[id(layer)]} and {order}), which one torch "
                                 "Linear cannot match")
        out_shapes = [graph.shapes[slot] for slot in call.outputs]
        order = _output_order(layer, in_orders, [graph.shapes[slot] for slot in call.inputs],
                              out_shapes[0])
        orders.update(dict.fromkeys(call.outputs, order))
    return {key: order for key, order in found.items() if order is not None}
