"""Tracing a layer's ``call``: the scope that ops consult while it runs.

While ``Layer._trace`` runs ``call`` on symbolic inputs, ``tracing(layer)`` holds a
``TraceScope``: ops read the layer's weights (its sublayers' too) as weights rather than
constants, and the variables that ``call`` assigns are recorded (``variables``). A leaf layer's
forward run on sample arrays inside a trace runs ``untraced()``.
"""
import contextlib
import threading

import numpy as np

_local = threading.local()


class TraceScope:
    """What a traced ``call`` of ``layer`` records beside its outputs: the weights it may
    read, the variables it assigns (and the nodes that read them before) and the effect
    tensors (assignments) that the traced graph must run."""

    def __init__(self, layer):
        self.layer = layer
        self.readers = {}  # id(variable) -> symbolic tensors computed from its old value
        self.assigned = {}  # id(variable) -> (variable, the symbolic tensor of its new value)
        self.effects = []

    def owner(self, value):
        """(layer, index) of ``value`` among the traced layer's weights (its sublayers'
        included), or None."""
        if not isinstance(value, np.ndarray):
            return None
        for owner, i in self.layer._weight_owners():
            if owner._weights[i] is value:
                return owner, i
        return None

    def is_weight(self, value):
        return self.owner(value) is not None

    def current_value(self, value):
        entry = self.assigned.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else value


def current_scope():
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def tracing(layer):
    """While ``layer.call`` is traced: ops read its weights as weights, and assignments are
    recorded. Yields the scope, whose ``effects`` the traced graph must include."""
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(TraceScope(layer))
    try:
        yield stack[-1]
    finally:
        stack.pop()


@contextlib.contextmanager
def untraced():
    """Meanwhile, arithmetic on weights runs on arrays (a leaf layer's forward run to find its
    output shape during a trace)."""
    stack = _local.__dict__.setdefault("stack", [])
    saved = stack[:]
    stack.clear()
    try:
        yield
    finally:
        stack[:] = saved
