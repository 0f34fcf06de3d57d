"""The merging layers that join branches of a graph, and their functional forms: the elementwise
Add, Subtract, Multiply, Average, Maximum and Minimum (with Keras's broadcasting), and
Concatenate."""
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


def _broadcast_dims(first, second):
    """Keras's rule for two shapes without their batch axis: aligned on their last axes, a size
    of 1 repeats, an unknown size (None) stays unknown, and the longer shape's leading axes stay."""
    if len(first) < len(second):
        first, second = second, first
    lead, dims = list(first[:len(first) - len(second)]), []
    for a, b in zip(first[len(first) - len(second):], second):
        if a is not None and b is not None and a != b and 1 not in (a, b):
            raise ValueError
        dims.append(None if a is None or b is None else b if a == 1 else a)
    return (*lead, *dims)


class _Elementwise(_Merge):
    """An elementwise merge of inputs broadcast together as in Keras: the batch sizes agree, and
    the other axes are aligned on the last one, where a size of 1 repeats; an input of lower
    rank gets axes of size 1 after its batch axis."""

    op = None  # the operation of _ops.merge.elementwise_forward

    fusion = "add"

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        shapes = [tuple(s) for s in input_shape]
        batch = {s[0] for s in shapes if s} - {None}
        dims = shapes[0][1:]
        try:
            if len(batch) > 1 or not all(shapes):
                raise ValueError
            for shape in shapes[1:]:
                dims = _broadcast_dims(dims, shape[1:])
        except ValueError:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects inputs of one batch "
                             f"size whose other axes broadcast together (aligned on the last, "
                             f"a size of 1 repeating), received input shapes {shapes}") from None
        return (batch.pop() if batch else None, *dims)

    def forward(self, x, ctx, training):
        shape = self.compute_output_shape([a.shape for a in x])
        ctx.shapes = [a.shape for a in x]
        ctx.x = [a.reshape(a.shape[0], *(1,) * (len(shape) - a.ndim), *a.shape[1:]) for a in x]
        return merge.elementwise_forward(self.op, ctx.x, out=ctx.buffer("y", shape))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return [self._input_grad(dy, ctx, i).reshape(shape) for i, shape in enumerate(ctx.shapes)]

    def _input_grad(self, dy, ctx, i):
        return merge.elementwise_backward(self.op, dy, ctx.x, i,
                                          out=ctx.buffer(i, ctx.x[i].shape))


class Add(_Elementwise):
    """The elementwise sum of its inputs."""

    per_sample = True

    op = "add"

    def _input_grad(self, dy, ctx, i):
        # An input of the output's shape gets dy itself: the engine never writes into a
        # gradient it holds.
        return dy if ctx.x[i].shape == dy.shape else super()._input_grad(dy, ctx, i)


class Subtract(_Elementwise):
    """``inputs[0] - inputs[1]``: exactly two inputs."""

    per_sample = True

    op = "subtract"

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"Subtract {self.name!r} expects exactly two inputs, received "
                             f"{len(input_shape)}: input shapes {input_shape!r}")
        return super().compute_output_shape(input_shape)

    def _input_grad(self, dy, ctx, i):
        return dy if i == 0 and ctx.x[0].shape == dy.shape else super()._input_grad(dy, ctx, i)


class Multiply(_Elementwise):
    """The elementwise product of its inputs."""

    per_sample = True

    op = "multiply"


class Average(_Elementwise):
    """The elementwise mean of its inputs: their sum divided by their count."""

    per_sample = True

    op = "average"


class Maximum(_Elementwise):
    """The elementwise maximum of its inputs. Each element's gradient goes to one input: the
    first that holds the maximum (as TensorFlow's gradient of Keras's left-to-right fold, where
    maximum(x, y) sends it to x wherever x >= y); NaN counts as the maximum, as in NumPy."""

    per_sample = True

    op = "maximum"


class Minimum(_Elementwise):
    """The elementwise minimum of its inputs; ties send the gradient to the first input that
    holds the minimum, as Maximum's do."""

    per_sample = True

    op = "minimum"


class Concatenate(_Merge):
    """Its inputs joined along ``axis`` (default -1, the channels); the other axes must agree."""

    per_sample = True

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


def _functional_form(cls):
    """Keras's function of a merging layer: ``cls(**kwargs)(inputs)``."""
    def merge_inputs(inputs, **kwargs):
        return cls(**kwargs)(inputs)
    merge_inputs.__name__ = merge_inputs.__qualname__ = cls.__name__.lower()
    merge_inputs.__doc__ = f"``{cls.__name__}(**kwargs)(inputs)``."
    return merge_inputs


add, subtract, multiply, average, maximum, minimum = map(
    _functional_form, (Add, Subtract, Multiply, Average, Maximum, Minimum))


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
