"""A Python function of arrays written with ops, traced into a graph and differentiated: what
runs a custom loss ``fn(y_true, y_pred)``, and what the tests check gradients with.

``Function(fn)`` traces ``fn`` on symbolic tensors of its arguments' shapes and dtypes, once
per shapes and dtypes (a last, smaller batch is one more trace), and runs the graph with the
engine's planner and execution; ``value_and_grad`` gives the output and the gradients of
``sum(output * upstream)`` with respect to the arguments asked for. A graph that the planner
makes one elementwise step (a loss such as ``mean(square(y_true - y_pred), axis=-1)``) runs its
value and gradients as one program, its upstream gradient known before the output: one kernel
call, and no Python work per op.
"""
import threading

import numpy as np

from ..engine.elementwise import ElementwiseStep
from ..engine.execution import ExecutionPool
from ..engine.graph import FlatGraph, Graph
from ..engine.plan import make_plan
from ..engine.tensor import KerasTensor
from .core import OpCall


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
        key = (tuple([(a.shape, a.dtype) for a in arrays]), grads)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                graph = self.graph([(a.shape, a.dtype) for a in arrays])
                plan = make_plan(FlatGraph(graph, False), True,
                                 loss_outputs=[True] if grads else None, input_grads=grads)
                pool = ExecutionPool(plan)
                output = graph.outputs[0]
                pool.shape, pool.dtype = output.shape, np.dtype(output.dtype)
                pool.step = _whole_step(plan)
                self._pools[key] = pool  # complete before another thread can see it
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
        ``upstream`` may be a callable of the output's shape and dtype, giving the upstream
        gradient."""
        arrays = [np.asarray(a) for a in arrays]
        grads = tuple([i in wrt for i in range(len(arrays))])
        pool = self._pool(arrays, grads)
        shape, dtype = pool.shape, pool.dtype
        known = None not in shape  # then the upstream gradient is known before the output

        def gradient(shape, dtype):
            dy = upstream(shape, dtype) if callable(upstream) else upstream
            if isinstance(dy, np.ndarray) and dy.shape == shape and dy.dtype == dtype:
                return dy
            return np.asarray(np.broadcast_to(dy, shape), dtype)

        dy = gradient(shape, dtype) if known else None
        if pool.step is not None and known:
            done = pool.step(arrays, dy)
            if done is not None:
                out, found = done
                return out, [np.zeros_like(arrays[i]) if found[i] is None else found[i]
                             for i in wrt]
        execution = pool.acquire()
        try:
            out = execution.forward(arrays)[0]
            if not known or out.shape != shape or out.dtype != dtype:
                dy = gradient(out.shape, out.dtype)
            execution.backward([dy if dy.flags.writeable else dy.copy()])
            return np.array(out), [execution.input_gradients[i] for i in wrt]
        finally:
            pool.release(execution)


def _whole_step(plan):
    """For a plan of one step that reads only the graph's inputs and gives its one output:
    run(arrays, dy) -> (output, a gradient or None per argument), or None when the arrays are
    not what the plan expected. None for other plans."""
    if len(plan.steps) != 1:
        return None
    step, slots = plan.steps[0], list(plan.input_slots)
    if step.outputs != list(plan.output_slots) or not set(step.inputs) <= set(slots):
        return None

    positions = [slots.index(s) for s in step.inputs]

    def arguments(dxs):
        """Each argument's gradient: the sum of the step's for its slot, in input order."""
        found = [None] * len(slots)
        for k, dx in zip(positions, dxs):
            if dx is not None:
                found[k] = dx if found[k] is None else found[k] + dx
        return found

    if isinstance(step, ElementwiseStep):  # one program
        def run(arrays, dy):
            done = step.forward_backward([arrays[k] for k in positions], [dy])
            if done is None:
                return None
            (out,), dxs = done
            return out, arguments(dxs)
        return run
    if isinstance(step.layer, OpCall) and not step.layer._weights:  # one op
        call = step.layer

        def run(arrays, dy):
            out, dxs = call.forward_backward([arrays[k] for k in positions], dy)
            return np.asarray(out), arguments(dxs)
        return run
    return None
