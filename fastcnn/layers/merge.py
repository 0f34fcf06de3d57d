"""Add and Concatenate: the layers that join branches of a graph."""
import numbers

from .._ops import merge
from ..engine.tensor import compatible_shapes
from .base import Layer


class _Merge(Layer):
    """A layer of two or more inputs, given as a list."""

    def _check_inputs(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects a list of at least two "
                             f"inputs, received {input_shape!r}")


class Add(_Merge):
    """The elementwise sum of its inputs, which share one shape."""

    fusion = "add"

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        first = tuple(input_shape[0])
        for shape in input_shape[1:]:
            if not compatible_shapes(first, tuple(shape)):
                raise ValueError(f"Add {self.name!r} expects inputs of one shape, received "
                                 f"{[tuple(s) for s in input_shape]}")
        return tuple(next((d for d in dims if d is not None), None) for dims in zip(*input_shape))

    def forward(self, x, ctx, training):
        self.compute_output_shape([a.shape for a in x])
        ctx.n = len(x)
        return merge.add_forward(x, out=ctx.buffer("y", x[0].shape))

    def backward(self, dy, ctx, need_dx):
        # Each input's gradient is dy itself; the engine never writes into a gradient it holds.
        return [dy] * ctx.n if need_dx else None


class Concatenate(_Merge):
    """Its inputs joined along ``axis`` (default -1, the channels); the other axes must agree."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"Expected axis to be an int, received axis={axis!r}")
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        rank = len(input_shape[0])
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"Concatenate {self.name!r}: expected axis in [{1 - rank}, "
                             f"{rank - 1}] and not the batch axis for inputs of rank {rank}, "
                             f"received axis={self.axis}")
        axis = self.axis % rank
        drop = [tuple(s[:axis]) + tuple(s[axis + 1:]) for s in input_shape]
        if any(len(s) != rank or not compatible_shapes(drop[0], d)
               for s, d in zip(input_shape, drop)):
            raise ValueError(f"Concatenate {self.name!r} expects inputs whose shapes agree except "
                             f"on axis {self.axis}, received {[tuple(s) for s in input_shape]}")
        sizes = [s[axis] for s in input_shape]
        out = list(next((d for d in dims if d is not None), None) for dims in zip(*input_shape))
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def forward(self, x, ctx, training):
        shape = self.compute_output_shape([a.shape for a in x])
        ctx.sizes = [a.shape[self.axis] for a in x]
        return merge.concatenate_forward(x, self.axis, out=ctx.buffer("y", shape))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        axis = self.axis % dy.ndim
        shapes = [(*dy.shape[:axis], size, *dy.shape[axis + 1:]) for size in ctx.sizes]
        return merge.concatenate_backward(
            dy, ctx.sizes, self.axis, outs=[ctx.buffer(i, s) for i, s in enumerate(shapes)])

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
