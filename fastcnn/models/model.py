"""Model: a graph of layer calls that compiles, trains, evaluates, predicts and saves.

A model is built one of two ways, as in Keras:

- **functional**: ``Model(inputs, outputs)`` on the symbolic tensors that layer calls on
  ``Input`` tensors return; any structure of them (a tensor, a list, a dict);
- **subclassed**: a subclass that assigns layers in ``__init__`` and composes them in
  ``call(inputs, training=False)``; ``call`` is traced on symbolic inputs into a graph (once per
  input shape and mode), and that graph trains like a functional one.

A model is also a layer: called on symbolic tensors it becomes one node of another graph, which
the planner inlines, so nested models train, freeze and save like their layers.
"""
import contextlib

from .. import random as fc_random
from .. import saving
from ..engine.graph import Graph
from ..engine.tensor import (KerasTensor, compatible_shapes, flatten, free_batch, pack_like,
                             shape_structure, shapes_of, template_of, unique_name)
from ..layers.base import Layer
from ..layers.input_layer import Input
from ..serialization import checked_config, deserialize, register_builtin, serialize
from ..trainer import Trainer


@register_builtin
class Model(Trainer, Layer):
    """Keras's Model: ``Model(inputs, outputs, name=None)``, or a subclass with ``call``."""

    def __init__(self, *args, **kwargs):
        if len(args) > 2:
            raise TypeError(f"Model takes inputs and outputs, received {len(args)} positional "
                            "arguments")
        inputs = args[0] if args else kwargs.pop("inputs", None)
        outputs = args[1] if len(args) > 1 else kwargs.pop("outputs", None)
        functional = inputs is not None or outputs is not None
        if functional and kwargs.get("name") is None:
            kwargs["name"] = unique_name("functional")
        Layer.__init__(self, **kwargs)
        Trainer.__init__(self)
        self.seed = fc_random.draw_seed()  # epoch e shuffles and drops out from RNG (seed, e)
        self._graph = None
        self._build_input = None  # the input shapes a subclassed model was built for
        if functional:
            self._init_graph(inputs, outputs)

    def _init_graph(self, inputs, outputs):
        if inputs is None or outputs is None:
            raise ValueError("Expected both inputs and outputs for a functional Model")
        self._graph = Graph(inputs, outputs)
        self.built = True

    def _is_functional(self):
        return self._graph is not None

    # -- graphs ----------------------------------------------------------------------------
    def _graph_for_inputs(self, inputs, shapes, training, build_shape=None):
        if not self._is_functional():
            if not self._is_composite():
                raise NotImplementedError(f"{type(self).__name__} has neither a call method nor "
                                          "inputs and outputs: subclass Model and define call, "
                                          "or pass Model(inputs, outputs)")
            graph = Layer._graph_for_inputs(self, inputs, shapes, training, build_shape)
            if self._build_input is None:
                self._build_input = free_batch(shape_structure(inputs))
            self.built = True
            return graph
        if any(isinstance(t, KerasTensor) for t in flatten(inputs)):
            self._check_shapes(shapes, "inputs")
        return self._graph

    def _check_shapes(self, shapes, what):
        expected = [t.shape for t in self._graph.inputs]
        if len(shapes) != len(expected) or not all(
                compatible_shapes(tuple(s)[1:], e[1:]) for s, e in zip(shapes, expected)):
            raise ValueError(f"Model {self.name!r} expects {what} of shapes {expected}, received "
                             f"{[tuple(s) for s in shapes]}")

    def _graph_for_data(self, data, training):
        """The graph that runs on ``data`` (None: the graph the model was built with)."""
        if data is None:
            if self._is_functional():
                return self._graph
            structure = self._build_input
            return self._trace(template_of(structure), shapes_of(structure), training)
        return self._graph_for_inputs(data, [a.shape for a in flatten(data)], training,
                                      build_shape=shape_structure(data))

    def build(self, input_shape=None):
        """Build for inputs of ``input_shape`` (batch axis included; a list or dict of shapes
        for several inputs): a subclassed model traces its ``call``."""
        if self._is_functional() or input_shape is None:
            return
        self._trace(template_of(input_shape), shapes_of(input_shape), False)
        self._build_input = free_batch(input_shape)

    @contextlib.contextmanager
    def _build_rollback(self):
        """Undo whatever building the block did if it raises: a rejected input leaves the model
        (and its layers) as they were: unbuilt layers unbuilt, and no node or traced graph
        of the refused call left on any layer. The model's lock is held throughout, so that
        threads whose first calls arrive together build it once, and none sees another's
        rollback."""
        with self._lock:
            layers = _all_layers(self)
            unbuilt = [layer for layer in layers if not layer.built]
            marks = [(len(layer._inbound_nodes), set(layer._traces)) for layer in layers]
            try:
                yield
            except BaseException:
                for layer in unbuilt:
                    layer._reset_build()
                # Nodes are only appended, so those of the refused call are the tail.
                for layer, (n_nodes, traces) in zip(layers, marks):
                    del layer._inbound_nodes[n_nodes:]
                    for key in set(layer._traces) - traces:
                        del layer._traces[key]
                raise

    def _reset_build(self):
        Layer._reset_build(self)
        if self._is_functional():
            self.built = True
        self._build_input = None

    # -- names and structure ---------------------------------------------------------------
    @property
    def inputs(self):
        return list(self._built_graph().inputs)

    @property
    def outputs(self):
        return list(self._built_graph().outputs)

    @property
    def input(self):
        if self._is_functional():
            return self._graph.input_structure
        return Layer.input.fget(self)

    @property
    def output(self):
        if self._is_functional():
            return self._graph.output_structure
        return Layer.output.fget(self)

    def _built_graph(self):
        if not self.built:
            raise ValueError(f"Model {self.name!r} has not been built yet: call it on data, "
                             "fit it, or call model.build(input_shape)")
        return self._graph_for_data(None, False)

    def _input_names(self, graph):
        if self._is_functional() and isinstance(self._graph.input_structure, dict):
            return sorted(self._graph.input_structure)
        return [t.node.operation.name if t.node is not None else f"input_{k}"
                for k, t in enumerate(graph.inputs)]

    def _output_names(self, graph):
        structure = graph.output_structure
        if isinstance(structure, dict):
            return sorted(structure)
        names = []
        for k, t in enumerate(graph.outputs):
            name = t.node.operation.name if t.node is not None else f"output_{k}"
            names.append(name if name not in names else f"{name}_{k}")
        return names

    @property
    def output_names(self):
        return self._output_names(self._built_graph())

    @property
    def input_names(self):
        return self._input_names(self._built_graph())

    @property
    def layers(self):
        if self._is_functional():
            sources = [t.node.operation for t in self._graph.inputs
                       if t.node is not None and t.node.operation.is_input]
            return sources + self._sublayers()
        return self._sublayers()

    def _sublayers(self):
        if self._is_functional():  # the layers among the operations: not fastcnn.ops' nodes
            return [op for op in self._graph.operations if isinstance(op, Layer)]
        return Layer._sublayers(self)

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or at ``index`` in ``layers``."""
        layers = self.layers
        if index is not None:
            if not isinstance(index, int) or not -len(layers) <= index < len(layers):
                raise ValueError(f"Expected index in [{-len(layers)}, {len(layers)}), received "
                                 f"index={index!r}")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No layer named {name!r}; the layers are {[l.name for l in layers]}")

    # -- calling on arrays -----------------------------------------------------------------
    def _call_eagerly(self, inputs, training):
        with self._build_rollback():
            graph, arrays = self._model_inputs(inputs, "inputs", training, whole_outputs=True)
        return pack_like(graph.output_structure,
                         self._run_graph(graph, arrays, training, self.fuse))

    # -- summary ---------------------------------------------------------------------------
    def summary(self, print_fn=print):
        """A table of the layers, their output shapes, parameters and (for a graph that is not
        a plain stack) the layers each one reads, then the parameter counts."""
        graphs = []
        if self.built:
            # A subclassed model's traces may differ by mode (a layer called only in training).
            graphs = [self._built_graph()] + [g for g in self._traces.values()]
        in_graph = {id(n) for g in graphs for n in g.nodes}
        sources = {id(t) for g in graphs for t in g.inputs}
        rows = []
        for layer in self.layers:
            nodes = [n for n in layer._inbound_nodes
                     if id(n) in in_graph or any(id(t) in sources for t in n.output_tensors)]
            shape = str(nodes[0].output_tensors[0].shape) if nodes else "?"
            reads = ", ".join(f"{t.node.operation.name if t.node else t.name}"
                              for n in nodes for t in n.input_tensors)
            kind = ("Functional" if type(layer) is Model and layer._is_functional()
                    else type(layer).__name__)
            rows.append((f"{layer.name} ({kind})", shape,
                         f"{layer.count_params():,}", reads))
        headers = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        if not self._shows_connections():
            headers, rows = headers[:3], [r[:3] for r in rows]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) + 2 for i, h in enumerate(headers)]
        rule = "─" * (sum(widths) + 2)

        def line(cells):
            # Each column holds two spaces of gap, after the right-aligned counts too.
            return "".join(f"{c:>{w - 2}}  " if i == 2 else f"{c:<{w}}"
                           for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        total = self.count_params()
        trainable = sum(w.size for w in self.trainable_weights)
        lines = [f'Model: "{self.name}"', rule, line(headers), rule]
        lines += [line(r) for r in rows]
        lines += [rule, f" Total params: {total:,} ({total * 4 / 1024:.2f} KB)",
                  f" Trainable params: {trainable:,} ({trainable * 4 / 1024:.2f} KB)",
                  f" Non-trainable params: {total - trainable:,} "
                  f"({(total - trainable) * 4 / 1024:.2f} KB)"]
        print_fn("\n".join(lines))

    def _shows_connections(self):
        # A subclassed model's graph is a trace of its call, whose inputs have no layer to name.
        return self._is_functional()

    # -- config and saving -----------------------------------------------------------------
    def get_config(self):
        if self._is_functional():
            return _functional_config(self)
        if type(self).get_config is Model.get_config:
            raise NotImplementedError(
                f"{type(self).__name__} is a subclassed model without get_config, so its "
                "architecture cannot be saved: define get_config (and register the class), or "
                "save the weights alone with save_weights and load them into a new instance")
        return Layer.get_config(self)

    @classmethod
    def from_config(cls, config):
        checked_config(config, cls.__name__)
        if "nodes" in config and "layers" in config:
            return _functional_from_config(cls, config)
        return cls(**config)

    def save(self, filepath, overwrite=True, *, format=None):
        """Write architecture, weights, seed and compiled state to one zip file, atomically;
        ``load_model(filepath)`` restores it to predict bitwise alike and to resume training.
        ``format="keras"`` writes Keras 3's ``.keras`` layout instead, which Keras loads
        (without the optimizer's state and the seed; see ``fastcnn.saving.save_model``)."""
        saving.save_model(self, filepath, overwrite, format=format)

    def save_weights(self, filepath, overwrite=True):
        """Write the weights alone to ``filepath``, atomically: Keras's HDF5 layout for a name
        ending ``.weights.h5``, a zip of .npy arrays for any other."""
        saving.save_weights(self, filepath, overwrite)

    def load_weights(self, filepath):
        """Set the weights from a file written by save_weights or save for this architecture,
        by fastcnn or by Keras (``.weights.h5`` or ``.keras``)."""
        saving.load_weights(self, filepath)

    def export(self, filepath, format="onnx", verbose=None, input_signature=None,
               opset_version=17):
        """Write the model for inference elsewhere, as Keras's export does, in the one format
        fastcnn writes: "onnx" (Keras's default, "tf_saved_model", needs TensorFlow), with
        ONNX operator set ``opset_version`` (see ``fastcnn.onnx.export``). The inputs are the
        model's own, batch axis free: ``input_signature`` must be None. ``verbose`` prints
        where the file went."""
        if format != "onnx":
            raise ValueError(f'Expected format="onnx" (the only export format fastcnn writes), '
                             f"received format={format!r}")
        if input_signature is not None:
            raise ValueError("Expected input_signature=None: the export takes the model's own "
                             f"input shapes, received input_signature={input_signature!r:.100}")
        from .. import onnx
        onnx.export(self, filepath, opset=opset_version)
        if verbose:
            print(f"Saved artifact at '{filepath}'.")


def _all_layers(layer):
    """``layer`` and every layer inside it, each once."""
    found, stack, seen = [], [layer], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        stack.extend(current._sublayers())
    return found


# -- the functional config -------------------------------------------------------------------
# Structures of tensors are written with tensors as {"input": k} or {"node": j, "index": i} (the
# i-th output of the j-th node, in graph order), lists as lists and dicts as {"dict": {...}}.

def _encode(structure, ref):
    if isinstance(structure, dict):
        return {"dict": {k: _encode(v, ref) for k, v in structure.items()}}
    if isinstance(structure, (list, tuple)):
        return [_encode(v, ref) for v in structure]
    return ref(structure)


def _decode(encoded, lookup):
    if isinstance(encoded, list):
        return [_decode(v, lookup) for v in encoded]
    if isinstance(encoded, dict) and set(encoded) == {"dict"}:
        if not isinstance(encoded["dict"], dict):
            raise ValueError(f"Expected a dict of tensor references under 'dict', received "
                             f"{encoded['dict']!r:.100}")
        return {k: _decode(v, lookup) for k, v in encoded["dict"].items()}
    return lookup(encoded)


def _functional_config(model):
    graph = model._graph
    operations = graph.operations
    op_index = {id(op): k for k, op in enumerate(operations)}
    position = {id(node): j for j, node in enumerate(graph.nodes)}
    input_index = {id(t): k for k, t in enumerate(graph.inputs)}

    def ref(t):
        if id(t) in input_index:
            return {"input": input_index[id(t)]}
        return {"node": position[id(t.node)], "index": t.index}

    return {"name": model.name, "trainable": model.trainable,
            "layers": [serialize(op) for op in operations],
            "inputs": [{"name": t.node.operation.name if t.node is not None else t.name,
                        "batch_shape": list(t.shape)} for t in graph.inputs],
            "input_structure": _encode(graph.input_structure, ref),
            "nodes": [{"layer": op_index[id(n.operation)], "inputs": _encode(n.inputs, ref),
                       "training": n.training} for n in graph.nodes],
            "outputs": _encode(graph.output_structure, ref)}


def _position(entry, key, items, what):
    """``items[entry[key]]``, or a ValueError that names the valid range."""
    index = entry[key]
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(items):
        raise ValueError(f"Expected {key!r} of {what} to be an index in [0, {len(items)}), "
                         f"received {index!r:.100}")
    return items[index]


def _functional_from_config(cls, config):
    name = f"functional {cls.__name__}"
    checked_config(config, name, ("input_structure", "outputs"), ("layers", "inputs", "nodes"))
    layers = [deserialize(entry) for entry in config["layers"]]
    inputs = [Input(batch_shape=checked_config(entry, f"{name}'s input", ("batch_shape", "name"))
                    ["batch_shape"], name=entry["name"])
              for entry in config["inputs"]]
    produced = []

    def lookup(entry):
        if not isinstance(entry, dict) or not ({"input"} <= set(entry)
                                               or {"node", "index"} <= set(entry)):
            raise ValueError(f"Expected a tensor reference {{'input': k}} or {{'node': j, "
                             f"'index': i}}, received {entry!r:.100}")
        if "input" in entry:
            return _position(entry, "input", inputs, "a tensor reference")
        outputs = flatten(_position(entry, "node", produced, "a tensor reference"))
        return _position(entry, "index", outputs, "a tensor reference")

    for node in config["nodes"]:
        layer = _position(checked_config(node, f"{name}'s node", ("layer", "inputs")), "layer",
                          layers, "a node")
        produced.append(layer(_decode(node["inputs"], lookup), training=node.get("training")))
    model = cls(inputs=_decode(config["input_structure"], lookup),
                outputs=_decode(config["outputs"], lookup), name=config.get("name"))
    if not config.get("trainable", True):
        model.trainable = False
    return model
