"""Operation: what the engine asks of whatever a node calls.

Layers are operations, and so is anything else that records nodes on symbolic tensors (the ops
of ``fastcnn.ops`` are meant to be). The engine reads only what this class declares:

- ``compute_output_shape(input_shape)``: shapes with the batch axis (a list for several inputs);
- ``forward(x, ctx, training)`` and ``backward(dy, ctx, need_dx)``: the math of one call, with
  ``ctx`` (``execution.CallContext``) private to that call; backward returns dX (a list for
  several inputs, None unless ``need_dx``) and writes weight gradients into ``ctx.grads``;
- ``_graph_for(node, training)``: a graph to inline in place of the node, or None for a leaf;
- ``_weights`` / ``_weight_trainable`` and ``trainable``: the weights the planner may train;
- ``fusion``, ``draws_random``, ``is_input``: what the planner and the graph need to know;
- ``per_sample``: forward outside training computes each sample's outputs from that sample's
  inputs alone, and keeps nothing from the call but its outputs, so that a batch may run in
  parts (engine/execution.py). Layers declare it class by class: a subclass does not inherit
  it.
"""


class Operation:
    fusion = None  # what the planner may fuse this as (see engine/plan.py); None: never
    draws_random = False  # whether forward draws from ctx.rng
    is_input = False  # a graph's source (InputLayer)
    per_sample = False  # whether a batch may run in parts outside training (see above)
    trainable = True
    _weights = ()
    _weight_trainable = ()

    def __init__(self):
        self._inbound_nodes = []

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x, ctx, training):
        raise NotImplementedError(f"{type(self).__name__} defines no forward")

    def backward(self, dy, ctx, need_dx):
        raise NotImplementedError(f"{type(self).__name__} defines no backward")

    def _graph_for(self, node, training):
        return None
