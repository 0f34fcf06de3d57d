"""Sequential: a stack of layers, with Keras's construction, config, weights and saving; it
trains through ``Trainer`` (compile, fit, evaluate, predict)."""
from . import layers as layers_module
from . import random as fc_random
from . import saving
from .layers.base import InputLayer, Layer, normalize_shape
from .serialization import serialize
from .trainer import Trainer


@saving.register_model
class Sequential(Trainer):
    """A linear stack of layers, with Keras's construction, training and Keras-shaped weights."""

    def __init__(self, layers=None, name=None):
        super().__init__()
        self.name = name or "sequential"
        self.layers = []
        self.input_shape = None
        self.built = False
        self.seed = fc_random.draw_seed()  # epoch e shuffles and drops out from RNG (seed, e)
        for layer in layers or []:
            self.add(layer)

    # -- construction ----------------------------------------------------------------------
    def add(self, layer):
        if isinstance(layer, InputLayer):
            if self.layers:
                raise ValueError("An Input can only start a Sequential model")
            self.input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Expected a fastcnn layer, received {layer!r}")
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(f"Layer names must be unique; {layer.name!r} is already in the model")
        self.layers.append(layer)
        self.built = False
        self._configure_fusion()
        if self.input_shape is not None:
            self.build((None, *self.input_shape))

    def build(self, input_shape):
        """Build every layer for inputs of ``input_shape`` (leading batch axis included)."""
        try:
            shape = normalize_shape(tuple(input_shape)[1:], "input_shape")
        except (TypeError, ValueError):
            raise ValueError(f"Expected input_shape to be (batch, *positive ints), received "
                             f"input_shape={input_shape!r}") from None
        model_input = shape
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            elif layer.input_shape != shape:
                raise ValueError(f"Layer {layer.name!r} was built for inputs {layer.input_shape}, "
                                 f"but the model feeds it {shape}")
            shape = layer.output_shape
        # Recorded only once every layer accepts it, so one bad x does not stick to the model.
        self.input_shape = model_input
        self.built = True

    @property
    def output_shape(self):
        return (None, *(self.layers[-1].output_shape if self.layers else self.input_shape))

    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self.layers for w in layer.trainable_weights]

    def count_params(self):
        return int(sum(layer.count_params() for layer in self.layers))

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"Expected {expected} weight arrays, received {len(weights)}")
        start = 0
        for layer in self.layers:
            layer.set_weights(weights[start:start + len(layer.weights)])
            start += len(layer.weights)

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No layer named {name!r}")

    def get_config(self):
        return {"name": self.name, "input_shape": self.input_shape,
                "layers": [serialize(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config):
        model = cls(name=config.get("name"))
        if config.get("input_shape") is not None:
            model.add(layers_module.Input(shape=tuple(config["input_shape"])))
        for entry in config["layers"]:
            model.add(layers_module.get(entry["class_name"]).from_config(entry["config"]))
        return model

    def summary(self, print_fn=print):
        rows = [(f"{l.name} ({type(l).__name__})",
                 str((None, *l.output_shape)) if l.built else "?", f"{l.count_params():,}")
                for l in self.layers]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) + 2
                  for i, h in enumerate(("Layer (type)", "Output Shape", "Param #"))]
        rule = "─" * (sum(widths) + 2)
        total = self.count_params()
        trainable = sum(w.size for w in self.trainable_weights)
        lines = [f'Model: "{self.name}"', rule,
                 f"{'Layer (type)':<{widths[0]}}{'Output Shape':<{widths[1]}}{'Param #':>{widths[2]}}",
                 rule]
        lines += [f"{a:<{widths[0]}}{b:<{widths[1]}}{c:>{widths[2]}}" for a, b, c in rows]
        lines += [rule, f" Total params: {total:,} ({total * 4 / 1024:.2f} KB)",
                  f" Trainable params: {trainable:,} ({trainable * 4 / 1024:.2f} KB)",
                  f" Non-trainable params: {total - trainable:,} ({(total - trainable) * 4 / 1024:.2f} KB)"]
        print_fn("\n".join(lines))

    # -- saving ----------------------------------------------------------------------------
    def save(self, filepath, overwrite=True):
        """Write architecture, weights, seed and compiled state to one zip file, atomically;
        ``load_model(filepath)`` restores it to predict bitwise alike and to resume training."""
        saving.save_model(self, filepath, overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Write the weights alone to ``filepath`` (a zip of .npy arrays), atomically."""
        saving.save_weights(self, filepath, overwrite)

    def load_weights(self, filepath):
        """Set the weights from a file written by save_weights or save for this architecture."""
        saving.load_weights(self, filepath)


def load_model(filepath, compile=True):
    """The model that ``model.save(filepath)`` wrote; see ``fastcnn.saving.load_model``."""
    return saving.load_model(filepath, compile)
