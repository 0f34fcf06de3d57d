"""A chain of elementwise op nodes on one shape, and the sum or mean over its last axis that may
end it, run as one program of the program kernel (``_ops.program``): forward in one pass, and
backward in one pass that recomputes the forward values it needs from the step's inputs rather
than keeping them.

The planner (plan.py) decides the members; this module compiles them, once per dtype and
shapes, into a forward and a backward program. Each member writes itself into the programs
(``emit``, ``emit_gradients`` of its op), with the same instructions it runs alone, and
gradient parts within the step are added in the order the execution adds them, so a fused
result equals the unfused one bit for bit. Two exceptions, within round-off: a value read both
by members and by steps outside adds the step's gradient parts together, before or after the
outside ones as the steps run, where an unfused plan interleaves them; and a zero gradient
summed over a broadcast axis may differ in sign. Arrays that are not what the plan expected
(another dtype, shapes that broadcast otherwise) run the members one by one.
"""
import numpy as np

from .._ops import program as programs
from .._ops import reduce as reduce_ops


class _Compiled:
    """The programs of one dtype and shapes: forward, backward (made at its first use) and the
    geometry they run on."""

    def __init__(self, rows, cols, domain, dtype):
        self.rows, self.cols, self.domain, self.dtype = rows, cols, domain, dtype
        self.forward = self.backward = self.combined = None


class ElementwiseStep:
    """``calls`` (elementwise op nodes in graph order, the last possibly a row sum) as one step.
    ``kinds[i]``: call i's operands as OpCall.operand_kinds gives them; ``outputs``: the slots
    that are read after the step (or are the graph's outputs)."""

    trainable = False
    random_index = random_layer = None

    def __init__(self, calls, kinds, outputs):
        self.calls, self.kinds = calls, kinds
        self.layer = calls[0].layer  # reads no weight: nothing for the optimizer
        self.flags = {}
        made = {s for c in calls for s in c.outputs}
        self.inputs, self.input_kinds = [], []
        for c, operands in zip(calls, kinds):
            for operand in operands:
                if operand[0] == "input" and c.inputs[operand[1]] not in made \
                        and c.inputs[operand[1]] not in self.inputs:
                    self.inputs.append(c.inputs[operand[1]])
                    self.input_kinds.append(operand[2])
        self.outputs = outputs
        self.wanted = [True] * len(self.inputs)  # the inputs whose gradients backward gives
        # comparisons' results, 1 or 0 in a program: bool arrays when read after the step
        self.bools = {c.outputs[0] for c in calls
                      if getattr(c.layer.op, "dtype", None) == "bool"}
        self._compiled = {}

    # -- compiling -------------------------------------------------------------------------
    def _geometry(self, xs):
        """_Compiled for arrays ``xs`` of the step's inputs, or None when they are not one float
        dtype and shapes that the programs read as the plan expects."""
        key = tuple((x.shape, x.dtype) for x in xs)
        try:
            return self._compiled[key]
        except KeyError:
            pass
        compiled = None
        dtypes = {getattr(x, "dtype", None) for x in xs}
        full = {x.shape for x, kind in zip(xs, self.input_kinds) if kind == "full"}
        if len(dtypes) == 1 and dtypes <= {np.dtype(np.float32), np.dtype(np.float64)} \
                and len(full) == 1:
            domain = full.pop()
            rows, cols = programs.rows_cols(domain)
            if rows * cols and all(x.size == {"full": rows * cols, "row": rows, "col": cols}[k]
                                   and (k != "row" or x.shape == domain[:-1] + (1,))
                                   for x, k in zip(xs, self.input_kinds)):
                compiled = _Compiled(rows, cols, domain, dtypes.pop())
                compiled.forward, compiled.slots, _ = self._program(compiled, True, False)
                compiled.shapes = {s: self._shape(s, compiled) for s in compiled.slots}
        if len(self._compiled) < 64:
            self._compiled[key] = compiled
        return compiled

    def _emit_forward(self, b):
        """The members' forward values: {slot: register}, and the row sums' (call index,
        register)."""
        regs = {s: b.input(kind) for s, kind in zip(self.inputs, self.input_kinds)}
        sums = []
        for i, (c, operands) in enumerate(zip(self.calls, self.kinds)):
            if c.layer.fusion == "row_sum":
                sums.append((i, regs[c.inputs[0]]))
                continue
            args = [regs[c.inputs[o[1]]] if o[0] == "input" else b.constant(o[1])
                    for o in operands]
            regs[c.outputs[0]] = c.layer.op.emit(b, args)
        return regs, sums

    def _divisor(self, call, compiled):
        _, mean = call.layer.op.row_divisor(len(compiled.domain))
        return compiled.cols if mean else None

    def _program(self, compiled, forward, backward):
        """(program, its output slots, slots of the gradients it gives): the forward values of
        the step's outputs (row sums first) when ``forward``, and when ``backward``, reading the
        gradient of each of those after the step's inputs, the gradients of the wanted inputs
        that get one; None for a program without outputs."""
        b = programs.Builder()
        regs, sums = self._emit_forward(b)
        slots = [self.calls[i].outputs[0] for i, _ in sums]
        slots += [s for s in self.outputs if s not in slots]
        if forward:
            for i, reg in sums:
                b.row_sum(reg, self._divisor(self.calls[i], compiled))
            for s in slots[len(sums):]:  # a comparison's value as the bools it is read as
                (b.store_mask if s in self.bools else b.store)(regs[s])
        grad_slots = self._emit_backward(b, compiled, regs, slots, len(sums)) if backward else []
        if not (forward or grad_slots):
            return None, slots, grad_slots
        return b.build(compiled.dtype), slots, grad_slots

    def _emit_backward(self, b, compiled, regs, slots, n_sums):
        grads = {s: b.input("row" if k < n_sums else "full") for k, s in enumerate(slots)}
        for c, operands in zip(reversed(self.calls), reversed(self.kinds)):
            dy = grads.get(c.outputs[0])
            if dy is None:
                continue
            if c.layer.fusion == "row_sum":
                divisor = self._divisor(c, compiled)
                parts = [dy if divisor is None else b.op("multiply", dy,
                                                          b.constant(1 / divisor))]
            else:
                args = [regs[c.inputs[o[1]]] if o[0] == "input" else b.constant(o[1])
                        for o in operands]
                parts = c.layer.op.emit_gradients(b, dy, args, regs[c.outputs[0]])
            for o, g in zip(operands, parts):
                if g is not None and o[0] == "input":
                    s = c.inputs[o[1]]
                    grads[s] = g if s not in grads else b.op("add", grads[s], g)
        given = []
        for s, kind, wanted in zip(self.inputs, self.input_kinds, self.wanted):
            if wanted and s in grads:
                if kind == "row":
                    b.row_sum(grads[s])
                else:
                    b.store(grads[s])
                given.append(s)
        return given

    # -- running ---------------------------------------------------------------------------
    def forward(self, values, ctx):
        given = [values[s] for s in self.inputs]
        compiled = self._geometry(given)
        xs = [np.ascontiguousarray(x) for x in given]  # (which makes a 0-d array 1-d)
        ctx.compiled, ctx.shapes = compiled, [x.shape for x in given]
        if compiled is None:
            ctx.members = getattr(ctx, "members", None) or [type(ctx)() for _ in self.calls]
            for c, member_ctx in zip(self.calls, ctx.members):
                x = values[c.inputs[0]] if c.single_input else [values[s] for s in c.inputs]
                values[c.outputs[0]] = c.layer.forward(x, member_ctx, c.training)
            return
        outs = programs.run(compiled.forward, xs, compiled.rows, compiled.cols)
        for s, out in zip(compiled.slots, outs):
            values[s] = out.reshape(compiled.shapes[s])
        ctx.xs = xs

    def _shape(self, slot, compiled):
        for c in self.calls:
            if c.outputs[0] == slot and c.layer.fusion == "row_sum":
                keep = c.layer.op.keepdims
                return compiled.domain[:-1] + ((1,) if keep else ())
        return compiled.domain

    def backward(self, dys, ctx, need_dx):
        compiled = ctx.compiled
        if compiled is None:
            return self._backward_members(dys, ctx)
        if compiled.backward is None:
            compiled.backward = self._program(compiled, False, True)
        program, _, given = compiled.backward
        if program is None:
            return [None] * len(self.inputs)
        dy = dict(zip(self.outputs, dys))
        outs = programs.run(program, ctx.xs + [np.ascontiguousarray(dy[s], compiled.dtype)
                                               for s in compiled.slots],
                            compiled.rows, compiled.cols)
        dxs = self._input_gradients(compiled, ctx.shapes, dict(zip(given, outs)))
        ctx.xs = None
        return dxs

    def _input_gradients(self, compiled, shapes, found):
        """The inputs' gradients (of ``shapes``) from the program's, ``found`` by slot."""
        dxs = []
        for s, shape, kind in zip(self.inputs, shapes, self.input_kinds):
            g = found.get(s)
            if g is not None and kind == "col":  # summed over the rows, as unbroadcast does
                g = reduce_ops.reduce_forward("sum", g.reshape(compiled.rows, compiled.cols),
                                              (0,))
            dxs.append(None if g is None else g.reshape(shape))
        return dxs

    def forward_backward(self, xs, dys):
        """(the outputs, the inputs' gradients) for ``xs`` and the outputs' gradients ``dys``
        (given before the outputs are known: their shapes are the plan's), in one program; None
        when the arrays are not what the plan expected."""
        compiled = self._geometry(xs)
        if compiled is None:
            return None
        if compiled.combined is None:
            program, slots, given = self._program(compiled, True, True)
            order = [self.outputs.index(s) for s in slots]
            compiled.combined = (program, slots, order,
                                 {s: len(slots) + i for i, s in enumerate(given)})
        program, slots, order, given = compiled.combined
        arrays = [np.ascontiguousarray(x) for x in xs]
        arrays += [np.ascontiguousarray(dys[k], compiled.dtype) for k in order]
        outs = programs.run(program, arrays, compiled.rows, compiled.cols)
        values = [None] * len(self.outputs)
        for s, k, out in zip(slots, order, outs):
            values[k] = out.reshape(compiled.shapes[s])
        return values, self._input_gradients(compiled, [x.shape for x in xs],
                                             {s: outs[i] for s, i in given.items()})

    def _backward_members(self, dys, ctx):
        """Backward member by member, last first, each value's gradient parts added in the
        order they come, as the execution adds them."""
        parts = {s: [dy] for s, dy in zip(self.outputs, dys)}
        for c, member_ctx in zip(reversed(self.calls), reversed(ctx.members)):
            got = parts.pop(c.outputs[0], None)
            if got:
                dxs = c.layer.backward(_total(got), member_ctx, True)
                for s, dx in zip(c.inputs, [dxs] if c.single_input else dxs):
                    if dx is not None:
                        parts.setdefault(s, []).append(dx)
        return [_total(parts[s]) if parts.get(s) else None for s in self.inputs]


def _total(parts):
    total = parts[0]
    for g in parts[1:]:
        total = total + g
    return total
