"""The graph engine under the Keras API.

- ``tensor``: symbolic tensors and the nodes that layer calls record on them.
- ``graph``: a graph between input and output tensors, and its flattening into leaf calls
  (nested models and composite layers inlined).
- ``plan``: the planner, which turns a flat graph into steps and decides every fusion.
- ``elementwise``: the step that runs a fused chain of elementwise op nodes as one program.
- ``execution``: one run of a plan, owning every buffer and per-call context, so that calls from
  several threads never share state.
"""
