"""A Python function of arrays written with ops, traced into a graph and differentiated: what
runs a custom loss ``fn(y_true, y_pred)``, and what the tests check gradients with.

``Function(fn)`` traces ``fn`` on symbolic tensors of its arguments' shapes and dtypes, once
per shapes and dtypes (a last, smaller batch is one more trace), and runs the graph with the
engine's planner and execution; ``value_and_grad`` gives the output and the gradients of
``sum(output * upstream)`` with respect to the arguments asked for.
"""
import threading

import numpy as np

from ..engine.execution import ExecutionPool
from ..engine.graph import FlatGraph, Graph
from ..engine.plan import make_plan
from ..engine.tensor import KerasTensor


class Function:
    def __init__(self, fn, name=None):
        if not callable(fn):
            raise TypeError(f"Expected a callable, received {fn!r:.200}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self._pools = {}
        self._lock = threading.Lock()

    def graph(self, specs):
        """The graph of ``fn`` on symbolic arguments of ``specs`` ((shape, dtype) pairs)."""
        symbolic = [KerasTensor(shape, dtype, any_rank=True) for shape, dtype in specs]
        try:
            outputs = self.fn(*symbolic)
        except TypeError as e:
            raise TypeError(f"{self.name} cannot be traced: {e}") from e
        if not isinstance(outputs, KerasTensor):
            raise TypeError(f"Expected {self.name} to return one tensor computed from its "
                            f"arguments with fastcnn.ops, received {outputs!r:.200}")
        return Graph(symbolic, outputs)

    def _pool(self, arrays, grads):
        key = (tuple((a.shape, a.dtype.str) for a in arrays), grads)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                graph = self.graph([(a.shape, a.dtype) for a in arrays])
                plan = make_plan(FlatGraph(graph, False), True,
                                 loss_outputs=[True] if grads else None, input_grads=grads)
                pool = self._pools[key] = ExecutionPool(plan)
        return pool

    def __call__(self, *arrays):
        arrays = [np.asarray(a) for a in arrays]
        pool = self._pool(arrays, None)
        execution = pool.acquire()
        try:
            return np.array(execution.forward(arrays)[0])
        finally:
            pool.release(execution)

    def value_and_grad(self, arrays, upstream, wrt):
        """(output, [gradient of sum(output * upstream) for each argument index in wrt]);
        ``upstream`` may be a callable of the output, giving the upstream gradient."""
        arrays = [np.asarray(a) for a in arrays]
        grads = tuple(i in wrt for i in range(len(arrays)))
        pool = self._pool(arrays, grads)
        execution = pool.acquire()
        try:
            out = execution.forward(arrays)[0]
            dy = upstream(out) if callable(upstream) else upstream
            execution.backward([np.asarray(np.broadcast_to(dy, out.shape), out.dtype)])
            return np.array(out), [execution.input_gradients[i] for i in wrt]
        finally:
            pool.release(execution)
