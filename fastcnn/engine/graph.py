"""A graph between input and output tensors, and its flattening into leaf calls.

``Graph`` orders the nodes that a model's outputs reach, stopping at its inputs. ``FlatGraph``
inlines every node whose operation is itself a graph (a nested model, a composite layer) until
only leaf calls remain, each reading and writing numbered value slots. A layer used at several
places gives one call per place; a nested model used twice is inlined twice.
"""


from .tensor import KerasTensor, flatten


class Graph:
    """The nodes from ``inputs`` to ``outputs`` (each a tensor, or a list or dict of them),
    parents first. ``inputs`` and ``outputs`` are the flat lists; ``input_structure`` and
    ``output_structure`` the structures as given. ``effects``: tensors that are not outputs
    but whose nodes must run (a traced call's variable assignments), after the outputs' nodes
    they do not feed."""

    def __init__(self, inputs, outputs, effects=()):
        for what, structure in (("inputs", inputs), ("outputs", outputs)):
            if not flatten(structure) or not all(isinstance(t, KerasTensor)
                                                 for t in flatten(structure)):
                raise TypeError(f"Expected {what} to be symbolic tensors (from keras.Input and "
                                f"layer calls), or a list or dict of them, received {structure!r}")
        self.input_structure, self.output_structure = inputs, outputs
        self.inputs = flatten(inputs)
        self.outputs = flatten(outputs)
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError("Expected each input tensor once in the model's inputs")
        sources = {id(t) for t in self.inputs}
        self.nodes = _topological(self.outputs + list(effects), sources)
        self.consumers = {}  # id(tensor) -> number of nodes reading it (each use counted)
        for node in self.nodes:
            for t in node.input_tensors:
                self.consumers[id(t)] = self.consumers.get(id(t), 0) + 1

    @property
    def operations(self):
        """Each operation once, in the order of its first node."""
        seen, ops = set(), []
        for node in self.nodes:
            if id(node.operation) not in seen:
                seen.add(id(node.operation))
                ops.append(node.operation)
        return ops


def _producer(tensor):
    node = tensor.node
    if node is None or not node.input_tensors and getattr(node.operation, "is_input", False):
        raise ValueError(f"Graph disconnected: the outputs depend on the input {tensor.name!r}, "
                         "which is not among the model's inputs")
    return node


def _topological(outputs, sources):
    """Depth-first, parents in input order, without recursion (graphs may be deep)."""
    order, done = [], set()
    for root in outputs:
        if id(root) in sources:
            continue
        stack = [(_producer(root), False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in done:
                continue
            if expanded:
                done.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            for t in reversed(node.input_tensors):
                if id(t) not in sources:
                    parent = _producer(t)
                    if id(parent) not in done:
                        stack.append((parent, False))
    return order


class Call:
    """One leaf layer call in a flat graph: value slots in and out, its training mode, and
    whether its weights may train here (not inside a frozen model or composite layer)."""

    __slots__ = ("inputs", "layer", "outputs", "single_input", "trainable", "training")

    def __init__(self, layer, inputs, single_input, outputs, training, trainable):
        self.layer, self.inputs, self.single_input = layer, inputs, single_input
        self.outputs, self.training = outputs, training
        self.trainable = trainable and layer.trainable


class FlatGraph:
    """``graph`` with every nested graph inlined, for a model running in mode ``training``
    (and ``trainable`` itself, or frozen).

    Each call's training mode is its node's explicit ``training`` argument, else that of the
    call it was inlined from, else the model's. A call inside a frozen model or composite layer
    trains no weight, whatever its own layer says, as Keras 3's trainable_weights has it.
    ``shapes`` maps each slot to its symbolic shape (batch axis first, None where unknown)."""

    def __init__(self, graph, training, trainable=True):
        self.calls = []
        self.n_slots = 0
        self.shapes = {}
        self.input_slots = [self._new_slot() for _ in graph.inputs]
        self.shapes.update(zip(self.input_slots, (t.shape for t in graph.inputs)))
        self.output_slots = self._inline(graph, self.input_slots, bool(training), trainable)

    def _new_slot(self):
        self.n_slots += 1
        return self.n_slots - 1

    def _inline(self, graph, input_slots, mode, trainable):
        slots = {id(t): s for t, s in zip(graph.inputs, input_slots)}
        for node in graph.nodes:
            inputs = [slots[id(t)] for t in node.input_tensors]
            training = mode if node.training is None else bool(node.training)
            inner = node.operation._graph_for(node, training)
            if inner is not None:
                outputs = self._inline(inner, inputs, training,
                                       trainable and node.operation.trainable)
            else:
                outputs = [self._new_slot() for _ in node.output_tensors]
                self.shapes.update(zip(outputs, (t.shape for t in node.output_tensors)))
                self.calls.append(Call(node.operation, inputs,
                                       not isinstance(node.inputs, (list, tuple)), outputs,
                                       training, trainable))
            slots.update((id(t), s) for t, s in zip(node.output_tensors, outputs))
        return [slots[id(t)] for t in graph.outputs]


def infer_shapes(graph, input_shapes):
    """The shapes of ``graph``'s outputs for inputs of ``input_shapes``, from each layer's
    ``compute_output_shape`` (nested graphs followed): no arithmetic runs."""
    shapes = {id(t): tuple(s) for t, s in zip(graph.inputs, input_shapes)}
    for node in graph.nodes:
        in_shapes = [shapes[id(t)] for t in node.input_tensors]
        inner = node.operation._graph_for(node, False)
        if inner is not None:
            out_shapes = infer_shapes(inner, in_shapes)
        else:
            out = node.operation.compute_output_shape(
                in_shapes[0] if not isinstance(node.inputs, (list, tuple)) else in_shapes)
            out_shapes = out if isinstance(out, list) else [out]
        shapes.update((id(t), tuple(s)) for t, s in zip(node.output_tensors, out_shapes))
    return [shapes[id(t)] for t in graph.outputs]
