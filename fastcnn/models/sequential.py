"""Sequential: a linear stack of layers, kept as the graph a functional model would build from
them, so that it trains, nests and saves through the same engine."""
from ..engine.tensor import KerasTensor
from ..layers.arguments import normalize_shape
from ..layers.base import Layer
from ..layers.input_layer import Input, InputLayer
from ..serialization import checked_config, deserialize, register_builtin, serialize
from .model import Model


@register_builtin
class Sequential(Model):
    """A linear stack of layers, with Keras's construction, training and Keras-shaped weights.

    Its input shape comes from a leading ``Input``, from ``input_shape=`` on its first layer,
    from ``build(input_shape)``, or from the first data it sees.
    """

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(trainable=trainable, name=name or "sequential")
        self._layers = []
        self._input_batch_shape = None
        self._declared_batch_shape = None  # from a leading Input or input_shape=, not from data
        self._nodes = []  # the nodes of the current graph, removed from the layers on a rebuild
        self._extend(layers or [])

    # -- construction ----------------------------------------------------------------------
    def add(self, layer):
        """Append ``layer`` (or, first, an ``Input``). With a known input shape the stack is
        rebuilt at once, and a layer that does not fit is refused and not added."""
        self._extend([layer])

    def _extend(self, layers):
        """``add`` each of ``layers``, with one rebuild at the end rather than one per layer, so
        that constructing or loading a stack of n layers takes time linear in n. If any layer
        is refused, none is added."""
        count, shapes = len(self._layers), (self._input_batch_shape, self._declared_batch_shape)
        names = {existing.name for existing in self._layers}
        try:
            for layer in layers:
                self._append(layer, names)
            if len(self._layers) == count:
                return
            if self._input_batch_shape is not None:
                with self._build_rollback():
                    self._rebuild()
            else:
                self._graph = None
                self.built = False
        except BaseException:
            del self._layers[count:]
            self._input_batch_shape, self._declared_batch_shape = shapes
            raise

    def _append(self, layer, names):
        """Check and append one layer, or take the input shape from a leading ``Input``."""
        if isinstance(layer, KerasTensor) and layer.node is not None and layer.node.operation.is_input:
            layer = layer.node.operation
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("An Input can only start a Sequential model")
            self._input_batch_shape = self._declared_batch_shape = layer.batch_shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Expected a fastcnn layer, received {layer!r}")
        if layer.name in names:
            raise ValueError(f"Layer names must be unique; {layer.name!r} is already in the model")
        declared = layer._declared_input_shape
        if not self._layers and self._input_batch_shape is None and declared is not None:
            self._input_batch_shape = self._declared_batch_shape = declared
        self._layers.append(layer)
        names.add(layer.name)

    def pop(self):
        """Remove the last layer."""
        if not self._layers:
            raise IndexError("There are no layers in the model to pop")
        layer = self._layers.pop()
        if self._graph is not None:
            self._rebuild()
        return layer

    def build(self, input_shape=None):
        """Build every layer for inputs of ``input_shape`` (leading batch axis included)."""
        if input_shape is None:
            if self._input_batch_shape is None:
                raise ValueError("Expected input_shape to build a Sequential model without an "
                                 "Input")
            input_shape = self._input_batch_shape
        try:
            shape = (None, *normalize_shape(tuple(input_shape)[1:], "input_shape", True))
        except (TypeError, ValueError):
            raise ValueError(f"Expected input_shape to be (batch, *positive ints), received "
                             f"input_shape={input_shape!r}") from None
        previous = self._input_batch_shape
        self._input_batch_shape = shape
        try:
            with self._build_rollback():
                self._rebuild()
        except BaseException:
            self._input_batch_shape = previous
            raise

    def _rebuild(self):
        """Call every layer on an input of the model's shape: the graph of the stack. If a
        layer refuses, the previous graph and its nodes stay as they were."""
        if not self._layers:
            self._drop_graph()
            return
        x = inputs = Input(batch_shape=self._input_batch_shape)
        nodes = [inputs.node]
        try:
            for layer in self._layers:
                x = layer(x)
                nodes.append(x.node)
        except BaseException:
            _remove_nodes(nodes)
            raise
        _remove_nodes(self._nodes)
        self._nodes = nodes
        self._init_graph(inputs, x)

    def _drop_graph(self):
        _remove_nodes(self._nodes)
        self._nodes = []
        self._graph = None
        self.built = False

    def _graph_for_inputs(self, inputs, shapes, training, build_shape=None):
        if self._graph is None:
            if len(shapes) != 1:
                raise ValueError(f"A Sequential model takes one input, received {len(shapes)}")
            if not self._layers:
                raise ValueError(f"Sequential model {self.name!r} has no layers")
            self.build((None, *shapes[0][1:]))
        return Model._graph_for_inputs(self, inputs, shapes, training, build_shape)

    def _reset_build(self):
        """Back to unbuilt, and to the input shape the user declared: a shape taken from data
        that was then refused is forgotten."""
        Layer._reset_build(self)
        self._drop_graph()
        self._input_batch_shape = self._declared_batch_shape

    @property
    def input_shape(self):
        """The input shape, batch axis included, once known."""
        return self._input_batch_shape

    @property
    def output_shape(self):
        return self._built_graph().outputs[0].shape

    @property
    def layers(self):
        return list(self._layers)

    def _sublayers(self):
        return list(self._layers)

    def _shows_connections(self):
        return False

    # -- config ----------------------------------------------------------------------------
    def get_config(self):
        shape = self._input_batch_shape
        return {"name": self.name, "trainable": self.trainable,
                "input_shape": None if shape is None else list(shape[1:]),
                "layers": [serialize(layer) for layer in self._layers]}

    @classmethod
    def from_config(cls, config):
        checked_config(config, cls.__name__, lists=("layers",))
        shape = config.get("input_shape")
        leading = [] if shape is None else [Input(shape=shape)]
        model = cls(leading + [deserialize(entry) for entry in config["layers"]],
                    name=config.get("name"))
        if not config.get("trainable", True):
            model.trainable = False
        return model


def _remove_nodes(nodes):
    for node in nodes:
        node.operation._inbound_nodes.remove(node)
