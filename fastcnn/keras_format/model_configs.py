"""Models' configs, Keras 3's to fastcnn's and back: Sequential, functional, and models nested in
either.

A Keras functional config lists its layers, each with the calls made of it ("inbound_nodes":
``{"args": [...], "kwargs": {...}}``, whose tensors name the call that made them as
``keras_history = [layer name, call index, output index]``), then the model's "input_layers" and
"output_layers" in the same form, except that there a nested functional model's first call has
index 1 (Keras counted a node that linked its own inputs to its outputs as its call 0).

``keras_layers`` gives a model's layers in the order Keras gives ``model.layers``, which is the
order its weights file numbers layers of one class in (``conv2d``, ``conv2d_1``...).
"""
import collections

from ..engine.tensor import flatten
from ..layers.base import Layer
from ..serialization import get_class
from .layer_configs import describe, dtype_from_keras, layer_from_keras, layer_to_keras, unwrap

_FUNCTIONAL = ("Functional", "Model")  # Keras's class names of a functional model
_MODEL_KEYS = {"Sequential": {"name", "trainable", "dtype", "layers", "build_input_shape"},
               "Functional": {"name", "trainable", "dtype", "layers", "input_layers",
                              "output_layers"}}
_CALL_KWARGS = {"training", "mask"}  # what a layer call may carry besides its input


# -- Keras to fastcnn ------------------------------------------------------------------------
def from_keras(entry):
    """The fastcnn layer or model a Keras config entry describes."""
    class_name, _ = unwrap(entry, describe(entry))
    if class_name == "Sequential" or class_name in _FUNCTIONAL:
        return model_from_keras(entry)
    return layer_from_keras(entry)


def model_from_keras(entry):
    """The fastcnn Sequential or functional Model that a Keras model config describes."""
    what = describe(entry).replace("layer", "model", 1)
    class_name, config = unwrap(entry, what)
    kind = "Sequential" if class_name == "Sequential" else "Functional"
    if class_name != "Sequential" and class_name not in _FUNCTIONAL:
        raise ValueError(f"{what} is not a Sequential or functional model, the ones fastcnn reads")
    unknown = set(config) - _MODEL_KEYS[kind]
    if unknown:
        raise ValueError(f"{what} has the options {sorted(unknown)}, which fastcnn does not read")
    dtype_from_keras(config.get("dtype"), what)
    if not isinstance(config.get("layers"), list):
        raise ValueError(f"Expected {what} to hold a list of layers, received "
                         f"{config.get('layers')!r:.100}")
    model = (_sequential_from_keras(config, entry) if kind == "Sequential"
             else _functional_from_keras(config, what))
    if config.get("trainable", True) is False:
        model.trainable = False
    return model


def _sequential_from_keras(config, entry):
    layers = [from_keras(e) for e in config["layers"]]
    if not (layers and getattr(layers[0], "is_input", False)):  # built from a shape, not an Input
        build_config = entry.get("build_config")
        shape = config.get("build_input_shape") or (
            build_config.get("input_shape") if isinstance(build_config, dict) else None)
        if shape is not None:
            layers.insert(0, get_class("InputLayer")(batch_shape=shape))
    return get_class("Sequential")(layers, name=config.get("name"))


def _history(reference, what):
    """``(layer name, call index), output index`` of a keras_history."""
    if not (isinstance(reference, list) and len(reference) == 3 and isinstance(reference[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                    for i in reference[1:])):
        raise ValueError(f"Expected {what} to reference a tensor as [layer name, node index, "
                         f"tensor index], received {reference!r:.100}")
    return (reference[0], reference[1]), reference[2]


def _tensor_references(value, what):
    """Each keras_history in a call's arguments, in order."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        config = value.get("config")
        return [_history(config.get("keras_history") if isinstance(config, dict) else None, what)]
    if isinstance(value, dict):
        if "class_name" in value:
            unwrap(value, what)
            raise ValueError(f"Expected tensors and plain values in {what}, received a Keras "
                             f"{value['class_name']} object")
        return [r for v in value.values() for r in _tensor_references(v, what)]
    if isinstance(value, list):
        return [r for v in value for r in _tensor_references(v, what)]
    return []


def _decode(value, tensor):
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return tensor(value["config"]["keras_history"])
    if isinstance(value, dict):
        return {k: _decode(v, tensor) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, tensor) for v in value]
    return value


def _structure(value, tensor, what):
    """Keras's model inputs or outputs: a reference, or a list or dict of them."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return tensor(value)
    if isinstance(value, dict):
        return {k: _structure(v, tensor, what) for k, v in value.items()}
    if isinstance(value, list) and value:
        return [_structure(v, tensor, what) for v in value]
    raise ValueError(f"Expected {what} to be tensor references [layer, node, tensor], received "
                     f"{value!r:.100}")


def _functional_from_keras(config, what):
    layers, calls, functional = {}, [], set()
    produced = {}  # (layer name, node index) -> the tensors that call returned
    for entry in config["layers"]:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name in layers:
            raise ValueError(f"Expected each layer of {what} once, under a name, received "
                             f"{name!r:.100}")
        layer = layers[name] = from_keras(entry)
        inbound = entry.get("inbound_nodes", [])
        if not isinstance(inbound, list):
            raise ValueError(f"Expected the inbound_nodes of layer {name!r} to be a list")
        if getattr(layer, "is_input", False):
            produced[name, 0] = layer._inbound_nodes[0].output_tensors
            continue
        if entry.get("class_name") in _FUNCTIONAL:
            functional.add(name)
        calls += [((name, k), node) for k, node in enumerate(inbound)]
    _call_in_order(layers, calls, produced, what)

    def tensor(reference):
        key, index = _history(reference, f"a tensor of {what}")
        if key[0] in functional:
            key = (key[0], key[1] - 1)
        if key not in produced or index >= len(produced[key]):
            raise ValueError(f"{what} references output {index} of call {key[1]} of layer "
                             f"{key[0]!r}, which its config does not make")
        return produced[key][index]

    inputs = _structure(config.get("input_layers"), tensor, f"the input_layers of {what}")
    outputs = _structure(config.get("output_layers"), tensor, f"the output_layers of {what}")
    return get_class("Model")(inputs=inputs, outputs=outputs, name=config.get("name"))


def _call_in_order(layers, calls, produced, what):
    """Make every call of ``calls`` ((layer name, node index), node data) once the calls it reads
    are made: in config order where it can, in time linear in the number of calls."""
    position = {key: k for k, (key, _) in enumerate(calls)}
    waiting, readers, arguments = [], collections.defaultdict(list), []
    for k, (key, node) in enumerate(calls):
        where = f"call {key[1]} of layer {key[0]!r} in {what}"
        if not (isinstance(node, dict) and isinstance(node.get("args"), list)
                and isinstance(node.get("kwargs", {}), dict)):
            raise ValueError(f"Expected {where} as {{'args': [...], 'kwargs': {{...}}}} (Keras 3's "
                             f"layout), received {node!r:.100}")
        kwargs = node.get("kwargs", {})
        if len(node["args"]) != 1 or set(kwargs) - _CALL_KWARGS or kwargs.get("mask") is not None:
            raise ValueError(f"Expected {where} to pass one input, and no arguments but "
                             f"training, received args {node['args']!r:.100} and kwargs "
                             f"{kwargs!r:.100}")
        if kwargs.get("training") not in (None, True, False):
            raise ValueError(f"Expected training to be true, false or null in {where}")
        references = _tensor_references([node["args"], kwargs], where)
        needs = {ref for ref, _ in references} - set(produced)
        missing = [ref for ref in needs if ref not in position]
        if missing:
            raise ValueError(f"{where} reads call {missing[0][1]} of layer {missing[0][0]!r}, "
                             "which the config does not make")
        waiting.append(len(needs))
        for ref in needs:
            readers[ref].append(k)
        arguments.append((node["args"][0], kwargs.get("training")))

    def tensor(reference):
        key, index = _history(reference, what)
        if index >= len(produced[key]):
            raise ValueError(f"{what} reads output {index} of call {key[1]} of layer {key[0]!r}, "
                             f"which makes {len(produced[key])}")
        return produced[key][index]

    ready = collections.deque(k for k, count in enumerate(waiting) if count == 0)
    made = 0
    while ready:
        k = ready.popleft()
        key = calls[k][0]
        inputs, training = arguments[k]
        produced[key] = flatten(layers[key[0]](_decode(inputs, tensor), training=training))
        made += 1
        for reader in readers[key]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    if made != len(calls):
        raise ValueError(f"{what} has calls that wait on each other in a cycle")


# -- fastcnn to Keras ------------------------------------------------------------------------
def model_kind(layer):
    """"Sequential", "Functional", or None for a layer that is no model Keras can rebuild."""
    if type(layer) is get_class("Sequential"):
        return "Sequential"
    if type(layer) is get_class("Model") and layer._is_functional():
        return "Functional"
    return None


def is_model(layer):
    return isinstance(layer, get_class("Model"))


def to_keras(layer):
    """Keras's config entry for a fastcnn layer or model."""
    return model_to_keras(layer) if is_model(layer) else layer_to_keras(layer)


def model_to_keras(model):
    """Keras's config entry of a fastcnn Sequential or functional model (or a ValueError naming
    what Keras lacks: a subclassed model, a layer Keras has no class for)."""
    kind = model_kind(model)
    if kind is None:
        raise ValueError(f"fastcnn model {model.name!r} ({type(model).__name__}) is subclassed, "
                         "and Keras cannot load a subclassed model's class from a file; save it "
                         "with format='fastcnn', or its weights with save_weights")
    if kind == "Sequential":
        return _sequential_to_keras(model)
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": _functional_to_keras(model), "registered_name": "Functional",
            "build_config": {"input_shape": None}}


def _input_to_keras(batch_shape, name):
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": list(batch_shape), "dtype": "float32", "sparse": False,
                       "ragged": False, "name": name, "optional": False},
            "registered_name": None}


def _sequential_to_keras(model):
    shape = model.input_shape
    layers = [] if shape is None else [_input_to_keras(shape, model.inputs[0].node.operation.name)]
    config = {"name": model.name, "trainable": model.trainable, "dtype": "float32",
              "layers": layers + [to_keras(layer) for layer in model.layers],
              "build_input_shape": None if shape is None else list(shape)}
    entry = {"module": "keras", "class_name": "Sequential", "config": config,
             "registered_name": None}
    if shape is not None:
        entry["build_config"] = {"input_shape": list(shape)}
    return entry


def _encode(structure, leaf):
    if isinstance(structure, dict):
        return {k: _encode(v, leaf) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [_encode(v, leaf) for v in structure]
    return leaf(structure)


def _functional_to_keras(model):
    graph = model._graph
    others = [op for op in graph.operations if not isinstance(op, Layer)]
    if others or not all(getattr(t.node.operation, "is_input", False) for t in graph.inputs):
        raise ValueError(f"fastcnn model {model.name!r} "
                         + (f"calls the operation {others[0].name!r}, which Keras has no layer for"
                            if others else "takes inputs that are not Input tensors")
                         + "; save it with format='fastcnn'")
    in_graph = {id(node) for node in graph.nodes} | {id(t.node) for t in graph.inputs}
    operations = keras_layers(model)
    calls, index = {}, {}  # id(operation) -> its nodes in this graph; id(node) -> their index
    for op in operations:
        calls[id(op)] = [node for node in op._inbound_nodes if id(node) in in_graph]
        index.update({id(node): k for k, node in enumerate(calls[id(op)])})

    def reference(t):
        return [t.node.operation.name, index[id(t.node)], t.index]

    def model_reference(t):
        first = 1 if model_kind(t.node.operation) == "Functional" else 0
        return [t.node.operation.name, first + index[id(t.node)], t.index]

    def tensor(t):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(t.shape), "dtype": "float32",
                           "keras_history": reference(t)}}

    layers = []
    for op in operations:
        if getattr(op, "is_input", False):
            entry = _input_to_keras(op.batch_shape, op.name)
        else:
            entry = to_keras(op)
        entry["name"] = op.name
        entry["inbound_nodes"] = [] if getattr(op, "is_input", False) else [
            {"args": [_encode(node.inputs, tensor)],
             "kwargs": {} if node.training is None else {"training": node.training}}
            for node in calls[id(op)]]
        layers.append(entry)
    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": _encode(graph.input_structure, model_reference),
            "output_layers": _encode(graph.output_structure, model_reference)}


# -- Keras's order of a model's layers -------------------------------------------------------
def keras_layers(model):
    """The layers of a Sequential or functional fastcnn model in the order of Keras's
    ``model.layers`` for the same model: a Sequential's in order; a functional model's by
    decreasing depth from the outputs (its inputs first), ties in the order a depth-first walk
    from the outputs first reaches them (Keras's ``map_graph``)."""
    if model_kind(model) != "Functional":
        return model.layers
    graph = model._graph
    inputs = {id(t) for t in graph.inputs}
    first_seen, finished, post_order = {}, set(), []
    stack = [(t.node, False) for t in reversed(graph.outputs)]
    while stack:  # depth first, as Keras's recursion walks, without recursion
        node, leaving = stack.pop()
        if leaving:
            finished.add(id(node))
            post_order.append(node)
            continue
        if id(node) in finished:
            continue
        first_seen.setdefault(id(node.operation), len(first_seen))
        stack.append((node, True))
        stack += [(t.node, False) for t in reversed(node.input_tensors) if id(t) not in inputs
                  or getattr(t.node.operation, "is_input", False)]
    node_depth, depth_of = {}, {}
    for node in reversed(post_order):
        depth = max(node_depth.setdefault(id(node), 0), depth_of.get(id(node.operation), 0))
        depth_of[id(node.operation)] = node_depth[id(node)] = depth
        for t in node.input_tensors:
            node_depth[id(t.node)] = max(depth + 1, node_depth.get(id(t.node), 0))
    operations = {id(node.operation): node.operation for node in post_order}
    for t in graph.inputs:  # an input no output depends on: depth 0, first
        if id(t.node.operation) not in operations:
            operations[id(t.node.operation)] = t.node.operation
            depth_of[id(t.node.operation)], first_seen[id(t.node.operation)] = 0, -1
    ordered = sorted(operations, key=lambda k: (-depth_of[k], first_seen[k]))
    return [operations[k] for k in ordered if isinstance(operations[k], Layer)]
