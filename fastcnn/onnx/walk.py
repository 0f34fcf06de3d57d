"""A fastcnn model's graph walked into an ONNX ModelProto.

The walk follows the model's graph as inference runs it (``training=False`` unless a node says
otherwise): nested models and composite layers (a ``call`` made of other layers) are inlined,
each place they are called; every leaf layer goes to the converter of its exact class. What
has no converter is refused by name: a custom layer with its own forward, a subclass of a
built-in layer (its code may compute something else), a ``fastcnn.ops`` call.
"""
from .. import layers
from . import activations, images, normalization, structure, windows
from .builder import GraphBuilder, Value, keras_order


def _identity(b, layer, x):
    return x.name, x.perm


# The identity at inference (what predict runs), as in Keras: their training-time noise and
# augmentation have no ONNX form, nor need one.
INFERENCE_IDENTITY = (layers.Dropout, layers.GaussianDropout, layers.GaussianNoise,
                      layers.SpatialDropout2D, layers.RandomFlip, layers.RandomTranslation,
                      layers.RandomRotation, layers.RandomZoom, layers.RandomContrast,
                      layers.RandomBrightness)
# Layers that compute something else when called with training=True.
TRAINING_DEPENDENT = INFERENCE_IDENTITY + (layers.RandomCrop, layers.BatchNormalization)

CONVERTERS = {**activations.CONVERTERS, **images.CONVERTERS, **normalization.CONVERTERS,
              **structure.CONVERTERS, **windows.CONVERTERS,
              **{cls: _identity for cls in INFERENCE_IDENTITY}}


def model_proto(model, opset):
    """The ONNX ModelProto of ``model`` (built) for ``opset``: inputs named and shaped as the
    model's (channels-last, the batch axis "batch"), outputs named as ``model.output_names``
    and in fastcnn's layout. Also returns the bytes its constants take."""
    from onnx import TensorProto, helper
    graph = model._built_graph()
    b = GraphBuilder(opset)
    input_names = model.input_names
    inputs = [Value(b.reserve(name), keras_order(len(t.shape)), t.shape)
              for name, t in zip(input_names, graph.inputs)]
    # An output that is an input passed through keeps the input's name, as ONNX allows.
    output_names = [name if name in input_names else b.reserve(name)
                    for name in model.output_names]
    outputs = _inline(b, graph, inputs, False, ())
    b.scope = ""
    for k, (value, name) in enumerate(zip(outputs, output_names)):
        keras = keras_order(value.rank)
        if value.name == name and value.perm == keras:
            continue
        if name in input_names:
            name = output_names[k] = b.fresh(name)
        if value.perm == keras:
            b.node("Identity", [value.name], name)
        else:
            b.transpose(value.name, value.perm, keras, output=name)

    def info(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *shape[1:]])

    onnx_graph = helper.make_graph(
        b.nodes, model.name, [info(v.name, v.shape) for v in inputs],
        [info(name, t.shape) for name, t in zip(output_names, graph.outputs)],
        initializer=b.initializers)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="fastcnn",
                              ir_version=helper.find_min_ir_version_for(opsets))
    return proto, b.constant_bytes


def _inline(b, graph, values, mode, owners):
    """The Values of ``graph``'s outputs, its inputs being ``values``; ``mode`` is the training
    mode of the call it runs in, ``owners`` the layers it is inlined from (for errors)."""
    slots = {id(t): v for t, v in zip(graph.inputs, values)}
    for node in graph.nodes:
        inputs = [slots[id(t)] for t in node.input_tensors]
        training = mode if node.training is None else bool(node.training)
        op = node.operation
        inner = op._graph_for(node, training)
        if inner is not None:
            outputs = _inline(b, inner, inputs, training, owners + (op,))
        else:
            x = inputs if isinstance(node.inputs, (list, tuple)) else inputs[0]
            held = _convert(b, op, x, training, owners)
            outputs = [Value(name, perm, t.shape)
                       for (name, perm), t in zip(held, node.output_tensors)]
        slots.update((id(t), v) for t, v in zip(node.output_tensors, outputs))
    return [slots[id(t)] for t in graph.outputs]


def _convert(b, op, x, training, owners):
    """[(name, perm)] of the outputs of leaf ``op`` called on ``x``."""
    convert = CONVERTERS.get(type(op))
    if convert is None:
        raise ValueError(_refusal(op, owners))
    # A frozen BatchNormalization normalises with its moving statistics in training too.
    frozen = isinstance(op, layers.BatchNormalization) and not op.trainable
    if training and isinstance(op, TRAINING_DEPENDENT) and not frozen:
        raise ValueError(f"Cannot export {type(op).__name__} {op.name!r}{_inside(owners)} to "
                         "ONNX: it is called with training=True, where it computes what an "
                         "inference graph does not")
    b.scope = op.name
    held = convert(b, op, x)
    return held if isinstance(held, list) else [held]


def _inside(owners):
    return "".join(f" inside {type(o).__name__} {o.name!r}" for o in reversed(owners))


def _refusal(op, owners):
    kind = type(op).__name__
    name = getattr(op, "name", kind)
    if not isinstance(op, layers.Layer):
        return (f"Cannot export operation {name!r} ({kind}){_inside(owners)} to ONNX: a "
                "fastcnn.ops call in a model has no ONNX converter; build the model from "
                "fastcnn's layers")
    base = next((cls for cls in type(op).__mro__[1:] if cls in CONVERTERS), None)
    if base is not None:
        return (f"Cannot export layer {name!r} of class {kind}{_inside(owners)} to ONNX: it "
                f"subclasses fastcnn's {base.__name__}, and ONNX export converts fastcnn's own "
                "layer classes only (a subclass's code may compute something else)")
    return (f"Cannot export layer {name!r} of class {kind}{_inside(owners)} to ONNX: it is "
            "not one of fastcnn's layers, and a layer with its own forward has no ONNX form")
