"""One layer's config, Keras 3's to fastcnn's and back.

Most of fastcnn's configs already use Keras's names. What differs:

- Keras writes objects (initializers, regularizers, constraints, the dtype policy) as
  ``{"module", "class_name", "config", "registered_name"}``; fastcnn keeps a name or
  ``{"class_name", "config"}``;
- Keras has options fastcnn's layers lack (``data_format``, BatchNormalization's ``renorm``...):
  they are read when they hold the value that means what fastcnn computes (``NEUTRAL``), and
  refused otherwise;
- fastcnn has a layer Keras lacks (SumPooling2D): refused when writing Keras's format.

Nothing in a config is executed: a Lambda layer, a Python function, a custom class is refused
by name, as Keras's safe_mode refuses code.
"""
import inspect

import numpy as np

from .. import constraints, initializers, regularizers
from ..serialization import get_class

# The layers both have, under the class name they share.
LAYERS = frozenset({
    "Activation", "Add", "Average", "AveragePooling2D", "BatchNormalization", "CenterCrop",
    "Concatenate", "Conv1D", "Conv2D", "Conv2DTranspose", "Cropping2D", "Dense",
    "DepthwiseConv2D", "Dropout", "ELU", "Flatten", "GaussianDropout", "GaussianNoise",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "GroupNormalization", "InputLayer",
    "LayerNormalization", "LeakyReLU", "MaxPooling2D", "Maximum", "Minimum", "Multiply",
    "Normalization", "PReLU", "Permute", "RandomBrightness", "RandomContrast", "RandomCrop",
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "ReLU", "Rescaling",
    "Reshape", "Resizing", "SeparableConv2D", "Softmax", "SpatialDropout2D", "Subtract",
    "UpSampling2D", "ZeroPadding2D"})
# Keras's options that fastcnn's layers have no argument for, with the values under which they
# mean what fastcnn computes.
NEUTRAL = {"data_format": ("channels_last",), "noise_shape": (None,),
           "quantization_config": (None,), "lora_rank": (None,), "renorm": (False,),
           "renorm_clipping": (None,), "beta_constraint": (None,), "gamma_constraint": (None,),
           "beta_regularizer": (None,), "gamma_regularizer": (None,), "sparse": (False, None),
           "ragged": (False, None), "optional": (False,), "autocast": (True,)}
# Options that mean nothing once the NEUTRAL ones hold (renorm's momentum without renorm).
IGNORED = frozenset({"renorm_momentum"})
# Keras layers with a data_format argument that fastcnn's lack: written as channels_last, so that
# Keras does not fall back on its global image_data_format.
KERAS_DATA_FORMAT = frozenset({
    "AveragePooling2D", "CenterCrop", "Conv1D", "Conv2D", "Conv2DTranspose", "Flatten",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "MaxPooling2D", "RandomBrightness",
    "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation", "RandomTranslation",
    "RandomZoom", "Resizing", "UpSampling2D", "ZeroPadding2D"})
# Keras layers that take fewer of Layer's own arguments: SpatialDropout2D has no `trainable`
# (nor weights, so that it means nothing).
KERAS_OMITS = {"SpatialDropout2D": ("trainable",)}
_BASE_ARGUMENTS = frozenset({"name", "trainable", "dtype"})
_CODE = ("__lambda__", "function")  # how Keras writes a lambda and a Python function


# -- Keras's objects -------------------------------------------------------------------------
def unwrap(entry, what):
    """``(class_name, config)`` of a Keras object that names one of Keras's own classes; code
    (a lambda, a function) and custom classes are refused."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ValueError(f"Expected {what} to be a Keras object {{'class_name': ..., "
                         f"'config': {{...}}}}, received {entry!r:.100}")
    class_name, module = entry["class_name"], entry.get("module")
    registered = entry.get("registered_name")
    if class_name in _CODE or registered in _CODE or class_name == "Lambda":
        raise ValueError(f"{what} is Python code, which fastcnn never runs from a file, as "
                         "Keras's safe_mode refuses it; rebuild that part in fastcnn and load "
                         "the weights with load_weights")
    if (module is not None and not (module == "keras" or str(module).startswith("keras."))
            or registered not in (None, class_name)):
        raise ValueError(f"{what} is the custom class {registered or class_name!r} of module "
                         f"{module!r}; fastcnn reads Keras's own classes only")
    config = entry.get("config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"Expected the config of {what} to be a JSON object, received "
                         f"{config!r:.100}")
    return class_name, config


def wrap(module, class_name, config):
    """A Keras object of one of Keras's own classes, as Keras's files write it."""
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _same(value, neutral):
    return type(value) is type(neutral) and value == neutral


def _plain(value, what):
    """``value`` once it holds no serialized object: a Keras object where fastcnn reads plain
    JSON is code (refused by ``unwrap``) or an option fastcnn does not have."""
    if isinstance(value, dict):
        if "class_name" in value:
            class_name, _ = unwrap(value, what)
            raise ValueError(f"{what} holds a Keras {class_name} object, where fastcnn reads a "
                             "plain value")
        for v in value.values():
            _plain(v, what)
    elif isinstance(value, list):
        for v in value:
            _plain(v, what)
    return value


def dtype_from_keras(value, what):
    """"float32" for Keras's float32 dtype or policy (or None); anything else is refused."""
    name = value
    if isinstance(value, dict):
        _, config = unwrap(value, f"the dtype of {what}")
        name = config.get("name")
    if name is not None and (not isinstance(name, str) or name != "float32"):
        raise ValueError(f"{what} has dtype {name!r}; fastcnn computes in float32 only")
    return "float32"


def _initializer_from_keras(value, what):
    if isinstance(value, str):
        return value
    class_name, config = unwrap(value, what)
    if class_name not in initializers.ALIASES:
        raise ValueError(f"{what} is the initializer {class_name}, which fastcnn does not have; "
                         f"it has {sorted(initializers.ALIASES)}")
    config = dict(config)
    for axes in ("input_axes", "output_axes"):  # Keras's fan axes; None means fastcnn's fans
        if config.pop(axes, None) is not None:
            raise ValueError(f"{what} sets {axes}={value['config'][axes]!r}, which fastcnn's "
                             f"{class_name} does not have")
    return {"class_name": class_name, "config": config}


def _object_from_keras(value, what, registry):
    if value is None or isinstance(value, str):
        return value
    class_name, config = unwrap(value, what)
    if class_name not in registry:
        raise ValueError(f"{what} is {class_name}, which fastcnn does not have; it has "
                         f"{sorted(registry)}")
    return {"class_name": class_name, "config": config}


def _value_from_keras(key, value, what):
    what = f"{what} option {key}"
    if key == "dtype":
        return dtype_from_keras(value, what)
    if key.endswith("_initializer"):
        return initializers.validate(_initializer_from_keras(value, what))
    if key.endswith("_regularizer"):
        entry = _object_from_keras(value, what, regularizers.REGULARIZERS)
        regularizers.get(entry)
        return entry
    if key.endswith("_constraint"):
        entry = _object_from_keras(value, what, constraints.CONSTRAINTS)
        constraints.get(entry)
        return entry
    return _plain(value, what)


def _arguments(cls):
    """The keyword arguments ``cls`` takes: its own, and those its ``**kwargs`` pass on to the
    classes it derives from."""
    names = set(_BASE_ARGUMENTS)
    for base in cls.__mro__:
        if "__init__" in vars(base) and base is not object:
            parameters = inspect.signature(vars(base)["__init__"]).parameters.values()
            names |= {p.name for p in parameters
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - {"self"}


# -- layers ----------------------------------------------------------------------------------
def describe(entry):
    """How errors name the Keras layer or model of a config entry, whatever the entry holds."""
    config = entry.get("config") if isinstance(entry, dict) else None
    name = config.get("name") if isinstance(config, dict) else None
    class_name = entry.get("class_name") if isinstance(entry, dict) else None
    return f"Keras layer {name!r:.100} ({str(class_name):.100})"


def layer_from_keras(entry):
    """The fastcnn layer a Keras layer entry ``{"class_name": ..., "config": {...}}`` describes,
    or a ValueError that names the layer and the option fastcnn lacks."""
    what = describe(entry)
    class_name, config = unwrap(entry, what)
    if class_name not in LAYERS:
        raise ValueError(f"{what} has no fastcnn counterpart (fastcnn.keras_format lists the "
                         "layers it maps)")
    if config.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"{what} has data_format={config['data_format']!r}; fastcnn computes "
                         "channels_last (NHWC) only")
    cls = get_class(class_name)
    accepted = _arguments(cls)
    arguments = {}
    for key, value in config.items():
        if key in accepted:
            arguments[key] = _value_from_keras(key, value, what)
        elif key not in IGNORED and not any(_same(value, v) for v in NEUTRAL.get(key, ())):
            raise ValueError(f"{what} has {key}={value!r:.100}, which fastcnn's {class_name} "
                             "does not support")
    try:
        return cls.from_config(arguments)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what}: {error}") from None


def _initializer_to_keras(value, what):
    initializer = initializers.get(value)
    if not isinstance(initializer, initializers.Initializer):
        raise ValueError(f"{what} is the Python callable {value!r:.100}, which Keras cannot load "
                         "from a file")
    return wrap("keras.initializers", type(initializer).__name__, initializer.get_config())


def _value_to_keras(key, value, what):
    what = f"{what} option {key}"
    if key.endswith("_initializer"):
        return _initializer_to_keras(value, what)
    if key.endswith("_regularizer") and value is not None:
        regularizer = regularizers.get(value)
        return wrap("keras.regularizers", type(regularizer).__name__, regularizer.get_config())
    if key.endswith("_constraint") and value is not None:
        constraint = constraints.get(value)
        if not isinstance(constraint, constraints.Constraint):
            raise ValueError(f"{what} is the Python callable {value!r:.100}, which Keras cannot "
                             "load from a file")
        return wrap("keras.constraints", type(constraint).__name__, constraint.get_config())
    return _json_value(value)


def _json_value(value):
    """A config value as JSON holds it: NumPy's scalars and arrays as Python's numbers and
    lists."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def layer_to_keras(layer):
    """Keras's entry ``{"module", "class_name", "config", "registered_name"}`` for a fastcnn
    layer, or a ValueError naming a layer Keras lacks."""
    class_name = type(layer).__name__
    what = f"fastcnn layer {layer.name!r} ({class_name})"
    if class_name not in LAYERS or get_class(class_name) is not type(layer):
        raise ValueError(f"{what} has no Keras counterpart; save it with format='fastcnn'")
    config = {key: _value_to_keras(key, value, what) for key, value in layer.get_config().items()
              if key not in KERAS_OMITS.get(class_name, ())}
    if class_name in KERAS_DATA_FORMAT:
        config["data_format"] = "channels_last"
    return wrap("keras.layers", class_name, config)
