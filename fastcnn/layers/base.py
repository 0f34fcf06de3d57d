"""The Layer contract shared by every layer and model, and RandomTransformLayer.

A layer holds its configuration and weights, nothing of any one call. Called on symbolic tensors
it records a node of a graph; called on arrays it runs at once. Its math is either

- **a leaf**: ``forward(x, ctx, training)`` and ``backward(dy, ctx, need_dx)``, where ``ctx`` (an
  ``engine.execution.CallContext``) is private to one call site of one execution: forward keeps
  on it what backward needs, and backward writes weight gradients into ``ctx.grads``; or
- **a composite**: ``call(inputs, training=...)`` composed of other layers, which the engine
  traces into a graph and differentiates through.
"""
import functools
import inspect
import itertools
import math
import numbers
import re
import threading
from collections import defaultdict

import numpy as np

from .. import initializers
from .._ops.checks import (
    INDEX_LIMIT,
    as_kernel_array,
    check_array,
    check_index_range,
    check_memory,
)
from ..engine.execution import CallContext, ExecutionPool
from ..engine.graph import FlatGraph, Graph
from ..engine.operation import Operation
from ..engine.plan import make_plan
from ..engine.tensor import (
    KerasTensor,
    Node,
    as_data_structure,
    flatten,
    is_symbolic,
    output_shapes,
    pack_like,
    shape_structure,
    shapes_of,
    template_of,
)
from ..ops.tracing import tracing, untraced
from ..ops.variables import Variable
from ..serialization import Configurable, claim_weight
from .arguments import normalize_seed, normalize_shape

_name_counters = defaultdict(itertools.count)


def _snake_case(name):
    """Keras's default layer names: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _check_shape_argument(shape):
    """Refuse, before a layer indexes or iterates it, what is neither a shape (a non-empty tuple
    or list of ints or None, batch axis first) nor a list or dict of shapes: an array, a string
    or a number given as ``input_shape``."""
    if isinstance(shape, dict):
        for value in shape.values():
            _check_shape_argument(value)
        return
    if isinstance(shape, (tuple, list)) and shape:
        if all(d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool))
               for d in shape):
            return
        if all(isinstance(s, (tuple, list, dict)) for s in shape):
            for value in shape:
                _check_shape_argument(value)
            return
    raise TypeError(f"Expected input_shape to be a shape (a tuple of ints or None, batch axis "
                    f"first) or a list or dict of shapes, received {shape!r:.200}")


def _checked_shapes(compute_output_shape):
    """Wrap a class's ``compute_output_shape`` with _check_shape_argument."""
    @functools.wraps(compute_output_shape)
    def wrapper(self, input_shape):
        _check_shape_argument(input_shape)
        return compute_output_shape(self, input_shape)
    return wrapper


def _atomic_build(build):
    """Wrap a class's ``build`` so that a build that raises leaves the layer as it was (no
    weights added, not built), and a successful one marks the layer built, as Keras does. A
    build for no shape (None) is the layer's to accept or refuse; any other ``input_shape``
    must be a shape or a structure of them."""
    @functools.wraps(build)
    def wrapper(self, input_shape=None, *args, **kwargs):
        if input_shape is not None:
            _check_shape_argument(input_shape)
        if self._build_depth:  # a super().build() inside a build: the outermost one decides
            return build(self, input_shape, *args, **kwargs)
        self._build_depth += 1
        count = len(self._weights)
        try:
            result = build(self, input_shape, *args, **kwargs)
        except BaseException:
            for entries in self._weight_lists():
                del entries[count:]
            raise
        finally:
            self._build_depth -= 1
        self.built = True
        self._build_shape = input_shape
        return result
    return wrapper


class Layer(Operation, Configurable):
    """Base of all layers and models (see the module docstring for the two kinds of layer).

    Shapes include the batch axis, as in Keras: ``build(input_shape)`` creates the weights with
    ``add_weight``; ``compute_output_shape(input_shape)`` checks an input shape and returns the
    output's. Sublayers and weights assigned as attributes (also in lists and dicts) are tracked.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A subclass with math of its own is not the layer the planner knows how to fuse.
        if "fusion" not in cls.__dict__ and any(k in cls.__dict__
                                                for k in ("forward", "backward", "call")):
            cls.fusion = None
        # Only a class that says so runs a batch in parts: a subclass may mix its samples.
        cls.per_sample = cls.__dict__.get("per_sample", False)
        if "build" in cls.__dict__:
            cls.build = _atomic_build(cls.__dict__["build"])
        if "compute_output_shape" in cls.__dict__:
            cls.compute_output_shape = _checked_shapes(cls.__dict__["compute_output_shape"])

    def __init__(self, trainable=True, dtype=None, name=None, input_shape=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments "
                            f"{sorted(kwargs)}")
        if name is None:
            base = _snake_case(type(self).__name__)
            index = next(_name_counters[base])
            name = base if index == 0 else f"{base}_{index}"
        if not isinstance(name, str) or not name:
            raise ValueError(f"Expected name to be a non-empty string, received name={name!r}")
        if dtype is not None and np.dtype(dtype) != np.float32:
            raise ValueError(f'Expected dtype "float32" (or None), received dtype={dtype!r}')
        Operation.__init__(self)
        self.name = name
        self._trainable = bool(trainable)
        self.built = False
        self._build_depth = 0
        self._build_shape = None
        self._weights, self._weight_names, self._weight_trainable = [], [], []
        self._weight_regularizers, self._weight_constraints = [], []
        self._traces = {}
        self._runners = {}
        self._lock = threading.RLock()
        self._declared_input_shape = (None if input_shape is None else
                                      (None, *normalize_shape(input_shape, "input_shape", True)))

    def _weight_lists(self):
        return (self._weights, self._weight_names, self._weight_trainable,
                self._weight_regularizers, self._weight_constraints)

    # -- building --------------------------------------------------------------------------
    def build(self, input_shape=None):
        """Create the weights for inputs of ``input_shape`` (batch axis included)."""

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape``: a composite traces its ``call``; a leaf that
        does not say runs ``forward`` once on one sample of zeros (its sizes must be known)."""
        if self._is_composite():
            graph = self._trace(template_of(input_shape), shapes_of(input_shape), False)
            return output_shapes(graph)
        shapes = shapes_of(input_shape)
        if any(d is None for s in shapes for d in s[1:]):
            raise ValueError(f"{type(self).__name__} {self.name!r} defines no "
                             f"compute_output_shape, so it needs inputs of known sizes, received "
                             f"{input_shape}")
        sample = pack_like(template_of(input_shape), [np.zeros((1, *s[1:]), np.float32)
                                                    for s in shapes])
        with untraced():  # a leaf's forward runs on arrays, even inside a traced call
            out = self.forward(sample, CallContext(rng=np.random.default_rng(0)), False)
        batch = shapes[0][0]
        if isinstance(out, (list, tuple)):
            return [(batch, *np.shape(o)[1:]) for o in out]
        return (batch, *np.shape(out)[1:])

    def _check_image_input(self, input_shape):
        """Refuse inputs that are not images, (batch, height, width, channels)."""
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} {self.name!r} expects inputs of shape "
                             f"(batch, height, width, channels), received {tuple(input_shape)}")

    def _check_channels(self, input_shape, expected):
        if self.built and input_shape[-1] != expected:
            raise ValueError(f"{type(self).__name__} {self.name!r} was built for inputs of shape "
                             f"{self._build_shape} ({expected} on the last axis), received "
                             f"input shape {tuple(input_shape)}")

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True,
                   regularizer=None, constraint=None, name=None):
        """A new weight (a float32 ``Variable``: an array the layer owns, with Keras's
        ``assign`` methods), in Keras 3's argument order.

        ``initializer`` defaults to "glorot_uniform" as in Keras; ``regularizer`` adds its
        penalty to the loss; ``constraint`` (a callable) maps the weight after each update."""
        from .. import regularizers
        shape = () if shape is None else tuple(int(d) for d in shape)
        # A weight the kernels cannot index is refused before anything is drawn for it.
        if any(d < 0 for d in shape) or math.prod(shape) > INDEX_LIMIT:
            raise ValueError(f"Expected a weight shape of sizes >= 0 and at most {INDEX_LIMIT} "
                             f"values, received shape={shape if len(str(shape)) < 200 else '...'}")
        if dtype is not None and np.dtype(dtype) != np.float32:
            raise ValueError(f'Expected dtype "float32" (or None), received dtype={dtype!r}')
        if constraint is not None and not callable(constraint):
            raise ValueError(f"Expected constraint to be None or a callable, received "
                             f"constraint={constraint!r}")
        regularizer = regularizers.get(regularizer)
        claim_weight(shape)
        value = initializers.initialize(initializers.validate(initializer or "glorot_uniform"),
                                        shape).view(Variable)
        name = name or f"variable_{len(self._weights)}"
        for entries, entry in zip(self._weight_lists(),
                                  (value, name, bool(trainable), regularizer, constraint)):
            entries.append(entry)
        return value

    def _reset_build(self):
        """Back to unbuilt: no weights, no traced graphs (used to undo a failed build)."""
        for entries in self._weight_lists():
            entries.clear()
        self.built = False
        self._traces.clear()
        self._runners.clear()

    def _maybe_build(self, input_shape):
        with self._lock:
            if not self.built:
                self.build(input_shape)

    # -- calling ---------------------------------------------------------------------------
    def _is_composite(self):
        return callable(getattr(self, "call", None))

    def forward(self, x, ctx, training):
        raise NotImplementedError(f"{type(self).__name__} defines neither forward nor call")

    def __call__(self, *args, **kwargs):
        if len(args) > 1:
            raise TypeError(f"{type(self).__name__} {self.name!r} takes one input (a tensor, or "
                            f"a list or dict of them), received {len(args)} positional arguments")
        if args:
            inputs = args[0]
        elif "inputs" in kwargs:
            inputs = kwargs.pop("inputs")
        else:
            raise TypeError(f"{type(self).__name__} {self.name!r} was called without inputs")
        training = kwargs.pop("training", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__} {self.name!r} got unexpected keyword "
                            f"arguments {sorted(kwargs)}")
        if training is not None and not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"Expected training to be None, True or False, received "
                            f"training={training!r}")
        if is_symbolic(inputs):
            return self._call_symbolic(inputs, training)
        return self._call_eagerly(inputs, bool(training))

    def _call_symbolic(self, inputs, training):
        tensors = flatten(inputs)
        if not all(isinstance(t, KerasTensor) for t in tensors):
            raise TypeError(f"Expected layer {self.name!r} to be called on symbolic tensors only "
                            "or on arrays only, received a mix")
        shapes = shape_structure(inputs)
        graph = self._graph_for_inputs(inputs, [t.shape for t in tensors],
                                       bool(training), build_shape=shapes)
        if graph is not None:
            out_shapes = output_shapes(graph)
        else:
            for shape in shapes_of(shapes):
                _check_sample_size(shape, f"layer {self.name!r} input")
            self._maybe_build(shapes)
            out_shapes = self.compute_output_shape(shapes)
            for shape in shapes_of(out_shapes):
                _check_sample_size(shape, f"layer {self.name!r} output")
        outputs = _tensors_for(out_shapes, self.name)
        Node(self, inputs, outputs, None if training is None else bool(training))
        return outputs

    def _call_eagerly(self, inputs, training):
        inputs = as_data_structure(inputs)
        arrays = [check_array(a, "x") for a in flatten(inputs)]
        for a in arrays:
            if a.ndim < 2 or a.size == 0:
                raise ValueError(f"Expected x with a batch axis and at least one value, "
                                 f"received shape {a.shape}")
        arrays = [as_kernel_array(a, "x", dtype=np.float32) for a in arrays]
        packed = pack_like(inputs, arrays)
        shape = shape_structure(packed)
        graph = self._graph_for_inputs(packed, [a.shape for a in arrays], training,
                                       build_shape=shape)
        if graph is None:
            self._maybe_build(shape)
            for out_shape in shapes_of(self.compute_output_shape(shape)):
                _check_sample_size(out_shape, f"layer {self.name!r} output")
            ctx = CallContext(rng=getattr(self, "rng", None))
            return _copies(self.forward(packed, ctx, training))
        return pack_like(graph.output_structure, self._run_graph(graph, arrays, training))

    def _run_graph(self, graph, arrays, training, fuse=True):
        """The outputs of ``graph`` (one of this layer's) on ``arrays``, as new arrays."""
        pool = self._runner(graph, training, fuse)
        execution = pool.acquire()
        try:
            return [np.array(v) for v in execution.forward(arrays)]
        finally:
            pool.release(execution)

    def _runner(self, graph, training, fuse):
        """The pool of executions of ``graph``'s forward plan in mode ``training``, which
        predict, evaluate and calls share."""
        key = (id(graph), training, fuse)
        with self._lock:
            entry = self._runners.get(key)
            if entry is None:
                plan = make_plan(FlatGraph(graph, training), fuse)
                entry = self._runners[key] = (graph, ExecutionPool(plan))
        return entry[1]

    # -- graphs ----------------------------------------------------------------------------
    def _graph_for_inputs(self, inputs, shapes, training, build_shape=None):
        """The graph this layer runs as on ``inputs`` (a structure of tensors or arrays of
        ``shapes``), or None for a leaf layer. A composite layer is built on first use."""
        if not self._is_composite():
            return None
        if build_shape is not None:
            self._maybe_build(build_shape)
        return self._trace(inputs, shapes, training)

    def _graph_for(self, node, training):
        return self._graph_for_inputs(node.inputs, [t.shape for t in node.input_tensors],
                                      training)

    def _trace(self, inputs, shapes, training):
        """``call`` traced on symbolic inputs shaped like ``inputs`` (batch axis free), once per
        input shape and mode: a ``training`` argument may change what ``call`` does. Ops on
        its weights record weight reads, and assignments to its variables (fastcnn.ops.variables)
        join the graph as effects, which run whenever it runs."""
        shapes = [(None, *s[1:]) for s in shapes]
        key = (tuple(shapes), bool(training))
        with self._lock:
            graph = self._traces.get(key)
            if graph is None:
                symbolic = pack_like(inputs, [KerasTensor(s) for s in shapes])
                kwargs = {"training": bool(training)} if _takes_training(self.call) else {}
                with tracing(self) as scope:
                    try:
                        outputs = self.call(symbolic, **kwargs)
                    except TypeError as e:
                        raise TypeError(f"{type(self).__name__} {self.name!r}: its call cannot "
                                        f"be traced. {e}") from e
                graph = self._traces[key] = Graph(symbolic, outputs, effects=scope.effects)
        return graph

    # -- nodes -----------------------------------------------------------------------------
    def _node_attribute(self, attribute):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer {self.name!r} has never been called on symbolic tensors "
                                 f"and so has no {attribute}")
        node = self._inbound_nodes[0]
        return getattr(node, "inputs" if attribute == "input" else "outputs")

    @property
    def input(self):
        return self._node_attribute("input")

    @property
    def output(self):
        return self._node_attribute("output")

    # -- weights ---------------------------------------------------------------------------
    def _sublayers(self):
        """The layers assigned as attributes (also inside lists, tuples and dicts), in order."""
        found, seen = [], set()

        def visit(value):
            if isinstance(value, Layer):
                if id(value) not in seen:
                    seen.add(id(value))
                    found.append(value)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    visit(item)
            elif isinstance(value, dict):
                for item in value.values():
                    visit(item)

        for name, value in vars(self).items():
            if name not in _UNTRACKED:
                visit(value)
        return found

    @property
    def layers(self):
        return self._sublayers()

    def _weight_owners(self):
        """(layer, index) of every weight, own weights first, each weight once."""
        owners, seen = [], set()
        for layer in [self] + self._sublayers():
            pairs = ([(layer, i) for i in range(len(layer._weights))] if layer is self
                     else layer._weight_owners())
            for owner, i in pairs:
                if id(owner._weights[i]) not in seen:
                    seen.add(id(owner._weights[i]))
                    owners.append((owner, i))
        return owners

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Freezing a layer freezes its sublayers too; unfreezing unfreezes them, as in Keras."""
        self._trainable = bool(value)
        for layer in self._sublayers():
            layer.trainable = value

    @property
    def weights(self):
        return [owner._weights[i] for owner, i in self._weight_owners()]

    def _is_trained(self, owner, i):
        """Whether weight i of ``owner`` (a layer inside this one) is among trainable_weights."""
        return id(owner._weights[i]) in {id(w) for w in self.trainable_weights}

    @property
    def trainable_weights(self):
        """The trainable weights of this layer and its sublayers; none at all when the layer is
        frozen, whatever its sublayers say (as in Keras 3)."""
        if not self.trainable:
            return []
        own = [w for w, t in zip(self._weights, self._weight_trainable) if t]
        seen, found = set(), []
        for w in own + [w for layer in self._sublayers() for w in layer.trainable_weights]:
            if id(w) not in seen:
                seen.add(id(w))
                found.append(w)
        return found

    @property
    def non_trainable_weights(self):
        trained = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trained]

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Set every weight from ``weights``: each array is checked, and copied (it may be one
        of the layer's own), before any weight changes."""
        owners = self._weight_owners()
        if not hasattr(weights, "__len__"):
            weights = list(weights)
        if len(weights) != len(owners):  # before a list of a huge array's rows is made
            raise ValueError(f"Layer {self.name!r} expects {len(owners)} weight arrays, "
                             f"received {len(weights)}")
        arrays = []
        for (owner, i), new in zip(owners, weights):
            current, name = owner._weights[i], f"{owner.name}/{owner._weight_names[i]}"
            new = np.asarray(new)
            if new.dtype.kind not in "fiu":
                raise TypeError(f"Expected real numbers for weight {name!r}, received dtype "
                                f"{new.dtype}")
            if new.shape != current.shape:
                raise ValueError(f"Expected shape {current.shape} for weight {name!r}, received "
                                 f"{new.shape}")
            arrays.append(np.array(new, dtype=current.dtype))
        for (owner, i), new in zip(owners, arrays):
            owner._weights[i][...] = new

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": "float32"}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


# Attributes of Layer itself that hold layers or graphs but are not sublayers.
_UNTRACKED = {"_inbound_nodes", "_traces", "_runners"}


def _check_sample_size(shape, name):
    """Refuse, when a layer is called, shapes beyond the memory (the float32 values of the
    batch, or of one sample while the batch size is unknown) or the kernels' 32-bit indices."""
    if None not in shape[1:]:
        what = "one sample" if shape[0] is None else "the batch"
        values = math.prod(shape[1:]) * (1 if shape[0] is None else shape[0])
        check_memory([(f"{what} of shape {tuple(shape)} in float32", 4 * values)], name)
        check_index_range(shape, name)


def _takes_training(call):
    try:
        return "training" in inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False


def _tensors_for(shapes, name):
    """New symbolic outputs for ``shapes`` (a shape, or a list of shapes)."""
    if isinstance(shapes, list):
        return [KerasTensor(s, name=_tensor_name(name)) for s in shapes]
    return KerasTensor(shapes, name=_tensor_name(name))


def _tensor_name(layer_name):
    from ..engine.tensor import unique_name
    return unique_name(f"{layer_name}_output")


def _copies(value):
    return [np.array(v) for v in value] if isinstance(value, (list, tuple)) else np.array(value)


class RandomTransformLayer(Layer):
    """Base of the layers that transform their input at random during training and are the
    identity otherwise (Dropout, RandomFlip, RandomTranslation).

    Each draws from ``ctx.rng``: in fit, the engine gives each call site a generator per epoch
    (so a seeded fit, and a resumed one, draws the same transforms); called on its own, the
    layer's ``rng``, seeded by ``seed``. Forward sets ``ctx.active`` to whether it transformed
    its input; ``_transform_backward(dy, ctx)`` is the gradient through that transform.
    """

    draws_random = True

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = normalize_seed(seed)
        self.rng = np.random.default_rng(self.seed)

    def _transform_backward(self, dy, ctx):
        raise NotImplementedError

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        if not ctx.active:
            return dy
        return self._transform_backward(dy, ctx)


Layer.build = _atomic_build(Layer.build)
Layer.compute_output_shape = _checked_shapes(Layer.compute_output_shape)
