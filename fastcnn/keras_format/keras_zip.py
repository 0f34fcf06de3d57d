"""Keras 3's ``.keras`` zip: ``metadata.json`` (``{"keras_version": ...}``), ``config.json`` (the
model's config, with its compile config) and ``model.weights.h5`` (``keras_h5``'s layout).

What a Keras file holds that fastcnn does not read: the optimizer's variables (its step count
and moments), so a model loaded compiled trains on with a fresh optimizer; ``run_eagerly``,
``jit_compile``, ``steps_per_execution`` and ``auto_scale_loss``, which choose how Keras runs,
not what it computes. A compile config that names what fastcnn lacks (a loss, an optimizer
option) leaves the model uncompiled, with a warning that says why.

What fastcnn writes: the architecture and weights, and the compile config (optimizer, loss,
metrics by their Keras names) when Keras has each; neither the optimizer's state nor the
model's seed, which only fastcnn's own format keeps.
"""
import json
import re
import warnings

from .. import losses, optimizers, schedules
from .. import metrics as metrics_module
from ..serialization import get_class, weight_budget
from .keras_h5 import open_member, weights_file
from .layer_configs import unwrap, wrap
from .model_configs import model_from_keras, model_to_keras

# metadata.json's Keras version, which Keras only shows: the release fastcnn's files were
# checked against.
KERAS_VERSION = "3.15.1"
WEIGHTS = "model.weights.h5"
_MEMBER_NAMES = re.compile(r"(config|metadata)\.json|model\.weights\.h5")
_COMPILE_KEYS = {"optimizer", "loss", "loss_weights", "metrics", "weighted_metrics"}
_RUN_KEYS = {"run_eagerly", "jit_compile", "steps_per_execution", "auto_scale_loss"}


# -- writing ---------------------------------------------------------------------------------
def _leaves_to_keras(value, leaf):
    """A compile argument (a loss or metric, or dicts and lists of them) with ``leaf`` applied
    to each object in it; None and names stay as they are."""
    if isinstance(value, dict):
        return {k: _leaves_to_keras(v, leaf) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_leaves_to_keras(v, leaf) for v in value]
    return value if value is None or isinstance(value, str) else leaf(value)


def _loss_to_keras(loss):
    if type(loss) not in set(losses.LOSSES.values()):
        raise ValueError(f"the loss {loss!r:.100} has no Keras class")
    return wrap("keras.losses", type(loss).__name__, loss.get_config())


def _metric_to_keras(metric):
    entry = metrics_module.serialize(metric)
    if get_class(entry["class_name"]) is not type(metric):
        raise ValueError(f"the metric {metric!r:.100} has no Keras class")
    return wrap("keras.metrics", entry["class_name"], entry["config"])


def _compile_to_keras(model):
    """Keras's compile config of a compiled model, or None (with a warning where the model's
    compiled state has no Keras counterpart)."""
    optimizer = model.optimizer
    if optimizer is None:
        return None
    try:
        if type(optimizer) not in set(optimizers.OPTIMIZERS.values()) or (
                optimizer.schedule is not None
                and type(optimizer.schedule) not in set(schedules.SCHEDULES.values())):
            raise ValueError(f"the optimizer {optimizer!r:.100} or its schedule has no Keras class")
        config = optimizer.get_config()
        if optimizer.schedule is not None:
            schedule = config["learning_rate"]
            config["learning_rate"] = wrap("keras.optimizers.schedules", schedule["class_name"],
                                           schedule["config"])
        return {"optimizer": wrap("keras.optimizers", type(optimizer).__name__, config),
                "loss": _leaves_to_keras(model.loss, _loss_to_keras),
                "loss_weights": model.loss_weights,
                "metrics": _leaves_to_keras(model.metrics, _metric_to_keras),
                "weighted_metrics": _leaves_to_keras(model.weighted_metrics, _metric_to_keras)}
    except (TypeError, ValueError, NotImplementedError) as error:
        warnings.warn(f"The Keras file of model {model.name!r} is written uncompiled: its "
                      f"compiled state does not map onto Keras's ({error})", stacklevel=4)
        return None


def model_members(model):
    """The members of a Keras ``.keras`` file of ``model``, {name: bytes}, in Keras's order;
    a ValueError names what Keras has no class or option for."""
    document = model_to_keras(model)
    document["compile_config"] = _compile_to_keras(model)
    return {"metadata.json": json.dumps({"keras_version": KERAS_VERSION}).encode(),
            "config.json": json.dumps(document).encode(),
            WEIGHTS: weights_file(model)}


# -- reading ---------------------------------------------------------------------------------
def _plain(value, what):
    """``value`` with each Keras object as fastcnn's ``{"class_name", "config"}``."""
    if isinstance(value, dict) and "class_name" in value:
        class_name, config = unwrap(value, what)
        return {"class_name": class_name, "config": _plain(config, what)}
    if isinstance(value, dict):
        return {k: _plain(v, what) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, what) for v in value]
    return value


def _named(entry, classes, what):
    """The object of fastcnn's class that ``entry`` ({"class_name", "config"}) names."""
    by_name = {cls.__name__: cls for cls in classes}
    cls = by_name.get(entry["class_name"])
    if cls is None:
        raise ValueError(f"{what} {entry['class_name']!r} is not among fastcnn's "
                         f"{sorted(by_name)}")
    return cls.from_config(entry["config"])


def _optimizer_from_keras(entry):
    if isinstance(entry, str):
        return entry
    entry = _plain(entry, "the optimizer")
    config = dict(entry["config"])
    if config.pop("loss_scale_factor", None) is not None:
        raise ValueError("the optimizer scales the loss (loss_scale_factor), which fastcnn's "
                         "do not")
    return _named({**entry, "config": config}, optimizers.OPTIMIZERS.values(), "the optimizer")


def _loss_from_keras(entry):
    if isinstance(entry, dict) and "class_name" in entry:
        entry = _plain(entry, "the loss")
        config = {k: v for k, v in entry["config"].items()
                  if not (k == "dtype" and v in (None, "float32"))}
        return _named({**entry, "config": config}, losses.LOSSES.values(), "the loss")
    if isinstance(entry, dict):
        return {k: _loss_from_keras(v) for k, v in entry.items()}
    if isinstance(entry, list):
        return [_loss_from_keras(v) for v in entry]
    return entry


def compile_from_keras(config):
    """The arguments of ``compile`` that Keras's compile config holds."""
    if not isinstance(config, dict):
        raise ValueError(f"Expected the compile config to be a JSON object, received "
                         f"{config!r:.100}")
    unknown = set(config) - _COMPILE_KEYS - _RUN_KEYS
    if unknown:
        raise ValueError(f"the compile config holds {sorted(unknown)}, which fastcnn does not read")
    return {"optimizer": _optimizer_from_keras(config.get("optimizer")),
            "loss": _loss_from_keras(config.get("loss")),
            "loss_weights": config.get("loss_weights"),
            "metrics": _plain(config.get("metrics"), "a metric"),
            "weighted_metrics": _plain(config.get("weighted_metrics"), "a metric")}


def _check_members(archive):
    archive.check_names(_MEMBER_NAMES, "config.json, metadata.json and model.weights.h5 (the "
                                       "HDF5 layout of Keras's weights)")


def weights_of(archive):
    """The HDF5 weights of a Keras zip, for reading (a context manager)."""
    _check_members(archive)
    limit = archive.stored_bytes([WEIGHTS])
    return open_member(archive.read(WEIGHTS, limit), archive.filepath, limit)


def load_model(archive, compile=True):
    """The fastcnn model of a Keras ``.keras`` zip (``archive``, a ``file_limits.ZipArchive``),
    with its weights and, when ``compile``, its compile config where fastcnn has every part."""
    _check_members(archive)
    if WEIGHTS not in archive.members:
        archive.fail(f"Expected a member {WEIGHTS!r}, received none")
    document = archive.json("config.json")
    try:
        with weight_budget(archive.stored_bytes([WEIGHTS]) // 4):
            model = model_from_keras(document)
    except (KeyError, TypeError, ValueError, NotImplementedError) as error:
        archive.fail(f"Expected a Keras model that fastcnn can build: {error}")
    with weights_of(archive) as weights:
        values = weights.read_weights(model)
    model.set_weights(values)
    compile_config = document.get("compile_config")
    if compile and compile_config:
        try:
            model.compile(**compile_from_keras(compile_config))
        except (KeyError, TypeError, ValueError) as error:
            warnings.warn(f"{archive.filepath!r} is loaded uncompiled: its compile config does "
                          f"not map onto fastcnn ({error})", stacklevel=3)
    return model
