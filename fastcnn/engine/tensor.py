"""Symbolic tensors, and the nodes that record calls on them.

Calling a layer on a ``KerasTensor`` runs no arithmetic: it records a ``Node`` (the operation,
its input tensors, its output tensors) and returns the outputs, whose ``node`` points back to it.
A graph is what these back-pointers reach from a model's outputs. Any ``Operation`` can be a
node's operation (see ``operation.Operation``): layers are, and so can be the ops that
``fastcnn.ops`` adds, with ``x + y`` on symbolic tensors recording an op node.
"""
import itertools
import numbers
from collections import defaultdict

import numpy as np

_tensor_counters = defaultdict(itertools.count)
# The ops behind a symbolic tensor's operators, by NumPy ufunc name (and "matmul", "getitem",
# "cast"): filled by fastcnn.ops, which imports this module.
OPERATORS = {}


def unique_name(base):
    """``base``, then ``base_1``, ``base_2``...: Keras's default names."""
    index = next(_tensor_counters[base])
    return base if index == 0 else f"{base}_{index}"


def normalize_batch_shape(shape, name, any_rank=False):
    """A full shape (batch axis first) of None or positive ints, as a tuple; ``any_rank``: of
    any rank (a scalar's, ()) and sizes >= 0, as an op's result may have."""
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    least = 0 if any_rank else 1
    if dims is None or not (dims or any_rank) or not all(
            d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool)
                          and d >= least) for d in dims):
        raise ValueError(f"Expected {name} to be a tuple of positive ints or None, received "
                         f"{name}={shape!r}")
    return tuple(None if d is None else int(d) for d in dims)


class KerasTensor:
    """A placeholder with a shape (batch axis first; None where unknown) and a dtype. An op's
    result (``any_rank``) may be a scalar or hold no values."""

    def __init__(self, shape, dtype="float32", name=None, node=None, index=0, any_rank=False):
        self.shape = normalize_batch_shape(shape, "shape", any_rank)
        self.dtype = np.dtype(dtype).name
        self.name = name or unique_name("keras_tensor")
        self.node = node  # the Node whose output this is
        self.index = index  # which output of that node

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(f"A symbolic tensor ({self.name}) has no values: it stands for a model's "
                        "data while the model is defined. Call layers on it, not NumPy functions")

    def __call__(self, *args, **kwargs):
        raise TypeError(f"A symbolic tensor ({self.name}) cannot be called: call layers on it")

    def __bool__(self):
        raise TypeError(f"A symbolic tensor ({self.name}) has no truth value: Python control "
                        "flow on tensor values (if, while, and, or) cannot be traced; use "
                        "fastcnn.ops.where to choose between values")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """A NumPy array on the left of an operator calls the op; any other NumPy function
        on a symbolic tensor is refused."""
        if method == "__call__" and ufunc.__name__ in OPERATORS and not kwargs:
            return OPERATORS[ufunc.__name__](*inputs)
        raise TypeError(f"NumPy's {ufunc.__name__} cannot run on a symbolic tensor "
                        f"({self.name}): it has no values while a model or layer is traced; use "
                        "the fastcnn.ops function of that name")

    __hash__ = object.__hash__  # comparisons give tensors, so identity hashes them

    def __add__(self, other):
        return OPERATORS["add"](self, other)

    def __radd__(self, other):
        return OPERATORS["add"](other, self)

    def __sub__(self, other):
        return OPERATORS["subtract"](self, other)

    def __rsub__(self, other):
        return OPERATORS["subtract"](other, self)

    def __mul__(self, other):
        return OPERATORS["multiply"](self, other)

    def __rmul__(self, other):
        return OPERATORS["multiply"](other, self)

    def __truediv__(self, other):
        return OPERATORS["true_divide"](self, other)

    def __rtruediv__(self, other):
        return OPERATORS["true_divide"](other, self)

    def __matmul__(self, other):
        return OPERATORS["matmul"](self, other)

    def __rmatmul__(self, other):
        return OPERATORS["matmul"](other, self)

    def __pow__(self, other):
        return OPERATORS["power"](self, other)

    def __rpow__(self, other):
        return OPERATORS["power"](other, self)

    def __neg__(self):
        return OPERATORS["negative"](self)

    def __pos__(self):
        return self

    def __abs__(self):
        return OPERATORS["absolute"](self)

    def __eq__(self, other):
        return OPERATORS["equal"](self, other)

    def __ne__(self, other):
        return OPERATORS["not_equal"](self, other)

    def __lt__(self, other):
        return OPERATORS["less"](self, other)

    def __le__(self, other):
        return OPERATORS["less_equal"](self, other)

    def __gt__(self, other):
        return OPERATORS["greater"](self, other)

    def __ge__(self, other):
        return OPERATORS["greater_equal"](self, other)

    def __getitem__(self, key):
        return OPERATORS["getitem"](self, key)

    def __len__(self):
        if not self.shape or self.shape[0] is None:
            raise TypeError(f"A symbolic tensor ({self.name}) of shape {self.shape} has no "
                            "known length")
        return self.shape[0]

    def __iter__(self):
        raise TypeError(f"A symbolic tensor ({self.name}) cannot be iterated while it is "
                        "traced: use fastcnn.ops.split or slicing")


class Node:
    """One call of ``operation`` on ``inputs`` (a tensor or a list of tensors), giving
    ``outputs``. ``training`` is the call's explicit training argument, or None to follow the
    model's mode."""

    def __init__(self, operation, inputs, outputs, training=None):
        self.operation = operation
        self.inputs = inputs
        self.input_tensors = flatten(inputs)
        self.outputs = outputs
        self.output_tensors = flatten(outputs)
        self.training = training
        for i, tensor in enumerate(self.output_tensors):
            tensor.node, tensor.index = self, i
        operation._inbound_nodes.append(self)

    @property
    def parents(self):
        return [t.node for t in self.input_tensors]


def flatten(structure):
    """The tensors (or arrays) of a tensor, a list/tuple of them or a dict of them (by sorted
    key, as Keras flattens), in order."""
    if isinstance(structure, dict):
        return [v for k in sorted(structure) for v in flatten(structure[k])]
    if isinstance(structure, (list, tuple)):
        return [v for item in structure for v in flatten(item)]
    return [structure]


def as_data_structure(data):
    """``data`` with any list or tuple that is not a list of arrays (or of symbolic tensors,
    or of such lists), such as nested lists of numbers, turned into one array."""
    if isinstance(data, dict):
        return {k: as_data_structure(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        if data and all(isinstance(v, (np.ndarray, KerasTensor, dict)) or (
                isinstance(v, (list, tuple)) and _holds_arrays(v)) for v in data):
            return type(data)(as_data_structure(v) for v in data)
        return np.asarray(data)
    return data


MAX_NESTING = 32  # a structure of model inputs or targets is never nested deeper


def _holds_arrays(data, depth=1):
    """Whether ``data`` is a non-empty list (or tuple) of arrays or tensors, or of such lists,
    nested at most MAX_NESTING deep: deeper lists are data, not structure."""
    return bool(data) and depth <= MAX_NESTING and all(
        isinstance(v, (np.ndarray, KerasTensor))
        or (isinstance(v, (list, tuple)) and _holds_arrays(v, depth + 1)) for v in data)


def pack_like(structure, flat):
    """``flat`` (a list) put back into the shape of ``structure``."""
    items = iter(flat)

    def pack(s):
        if isinstance(s, dict):
            packed = {k: pack(s[k]) for k in sorted(s)}
            return {k: packed[k] for k in s}
        if isinstance(s, (list, tuple)):
            return type(s)(pack(item) for item in s)
        return next(items)

    return pack(structure)


def is_symbolic(structure):
    return any(isinstance(t, KerasTensor) for t in flatten(structure))


def shape_structure(structure):
    """The shapes of a structure of tensors or arrays: one tuple for one, a list for a list."""
    if isinstance(structure, dict):
        return {k: shape_structure(v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [shape_structure(v) for v in structure]
    return tuple(structure.shape)


def shapes_of(shape_structure):
    """The flat list of shapes in a structure built by shape_structure."""
    if isinstance(shape_structure, dict):
        return [s for k in sorted(shape_structure) for s in shapes_of(shape_structure[k])]
    if isinstance(shape_structure, list):
        return [s for item in shape_structure for s in shapes_of(item)]
    return [shape_structure]


def template_of(shape_structure):
    """A structure like the inputs whose shapes ``shape_structure`` holds (leaves are None)."""
    if isinstance(shape_structure, dict):
        return {k: template_of(v) for k, v in shape_structure.items()}
    if isinstance(shape_structure, list):
        return [template_of(v) for v in shape_structure]
    return None


def output_shapes(graph):
    """The shapes of ``graph``'s outputs, in the structure of its outputs."""
    return pack_like(graph.output_structure, [t.shape for t in graph.outputs])


def compatible_shapes(a, b):
    """Whether shapes ``a`` and ``b`` have one rank and agree wherever both sizes are known
    (None: not known)."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def free_batch(shapes):
    """A structure of shapes (as shape_structure builds) with each batch axis made None."""
    return pack_like(template_of(shapes), [(None, *tuple(s)[1:]) for s in shapes_of(shapes)])
