"""A model's weights as a PyTorch state dict, and a state dict's tensors as a model's weights.

The state dict holds NumPy arrays in torch's layouts (torch_layouts), named as torch names the
tensors of a module whose submodules carry the fastcnn layers' names: ``"<layer>.weight"``,
``"<layer>.bias"``, ``"<layer>.running_mean"``...; a layer inside a nested model is
``"<model>.<layer>.weight"``; SeparableConv2D's two modules are ``"<layer>.depthwise"`` and
``"<layer>.pointwise"``. The layers come in the order of ``model.weights``: Sequential's order,
and for a functional model its graph's, which visits a merge's inputs in order (ResNet's
shortcut, the Add's first input, comes before the block's convolutions).

torch itself is never imported: a tensor is read through its own methods.
"""
import collections
import collections.abc

import numpy as np

from ..file_limits import few
from .flatten_order import flattened_maps
from .torch_layouts import BATCH_COUNT, torch_modules


IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
IncompatibleKeys.__doc__ = """What load_torch_state_dict(strict=False) left out, as torch's
load_state_dict reports it: the model's keys that got no tensor, and the state dict's keys that
went to no weight."""


def is_batch_count(key):
    """Whether ``key`` names a BatchNorm's count of batches, which loading ignores."""
    return isinstance(key, str) and key.rpartition(".")[2] == BATCH_COUNT


def _check_model(model):
    if not (hasattr(model, "_built_graph") and hasattr(model, "_weight_owners")):
        raise TypeError(f"Expected a model (fastcnn.Model or Sequential), received "
                        f"{type(model).__name__}")
    if not model.built:
        raise ValueError(f"Expected a built model, received model {model.name!r} unbuilt: "
                         "declare an Input or call model.build(input_shape) first")


def _weighted_layers(layer, path, seen):
    """(path, layer) of ``layer`` and of each layer inside it that owns weights, each once, in
    the order of ``layer.weights``: ``path`` joins with dots the names of the layers and models
    from the outermost model (path "") down."""
    if layer._weights:
        yield path, layer
    for sub in layer._sublayers():
        if id(sub) not in seen:
            seen.add(id(sub))
            yield from _weighted_layers(sub, f"{path}.{sub.name}" if path else sub.name, seen)


def torch_modules_of(model):
    """[(key prefix, TorchModule)] of every torch module the model's weights stand for, in the
    order of ``model.weights``."""
    _check_model(model)
    maps = flattened_maps(model)
    modules, prefixes = [], set()
    for path, layer in _weighted_layers(model, "", set()):
        for module in torch_modules(layer, maps.get(id(layer))):
            prefix = f"{path}.{module.suffix}" if module.suffix else path
            if prefix in prefixes:
                raise ValueError(f"Two layers of model {model.name!r} would both be the torch "
                                 f"module {prefix!r}: give them different names")
            prefixes.add(prefix)
            modules.append((prefix, module))
    return modules


def to_torch_state_dict(model):
    """The model's weights as an OrderedDict of NumPy arrays (new ones) with the names and
    layouts that a torch module of the same architecture has in its state_dict(), whose
    submodules are named like the fastcnn layers (see the module docstring).

    BatchNormalization gives torch's ``num_batches_tracked`` too (a 0-d int64 of 0: fastcnn does
    not count batches), so that the keys are all those of torch's state_dict. Load it into torch
    with ``module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})``; for a
    module whose submodules are named otherwise, ``zip(module.state_dict(), state.values())``
    pairs the tensors by order.
    """
    state = collections.OrderedDict()
    for prefix, module in torch_modules_of(model):
        for param in module.params:
            state[f"{prefix}.{param.name}"] = np.array(param.to_torch(param.weight), np.float32,
                                                       order="C")
        for name, value in module.buffers.items():
            state[f"{prefix}.{name}"] = value.copy()
    return state


def _describe_key(key, shapes):
    return f"torch key {key!r} of shape {shapes[key]}"


def _match_by_name(modules, shapes, strict):
    """The pairs ((module, param), key) of the keys named as to_torch_state_dict names them,
    the missing keys and the unexpected ones."""
    params = {f"{prefix}.{param.name}": (module, param)
              for prefix, module in modules for param in module.params}
    missing = [key for key in params if key not in shapes]
    unexpected = [key for key in shapes if key not in params]
    if strict and (missing or unexpected):
        layers = {params[key][0].layer.name for key in missing}
        problems = ([f"missing {few(missing)} (of fastcnn layers {few(layers)})"] if missing
                    else []) + ([f"unexpected {few(unexpected)}"] if unexpected else [])
        raise ValueError(f"The state dict's keys name this model's weights (as "
                         f"to_torch_state_dict does), so they are matched by name, and with "
                         f"strict=True every key must match: {'; '.join(problems)}")
    return [(params[key], key) for key in shapes if key in params], missing, unexpected


def _match_by_order(modules, shapes, strict):
    """The pairs ((module, param), key) of the state dict's modules (its keys grouped by what
    precedes their last dot) with the model's torch modules, in order, each pair holding the
    same tensors; the missing keys and the unexpected ones."""
    groups = {}
    for key in shapes:
        prefix, _, name = key.rpartition(".")
        groups.setdefault(prefix, {})[name] = key
    pairs = []
    for (_, module), (torch_prefix, keys) in zip(modules, groups.items()):
        names = [param.name for param in module.params]
        if sorted(keys) != sorted(names):
            raise ValueError(
                f"Matched by order, {module.describe()}, pairs with the torch module "
                f"{torch_prefix!r} of keys {[_describe_key(k, shapes) for k in keys.values()]}: "
                "they are not the same kind of module")
        pairs += [((module, param), keys[param.name]) for param in module.params]
    missing = [f"{prefix}.{param.name}" for prefix, module in modules[len(groups):]
               for param in module.params]
    unexpected = [key for keys in list(groups.values())[len(modules):] for key in keys.values()]
    if strict and missing:
        last = f"its last key {pairs[-1][1]!r}" if pairs else "nothing"
        raise ValueError(f"Matched by order, the state dict holds {len(groups)} torch modules "
                         f"and the model {len(modules)}: {modules[len(groups)][1].describe()}, "
                         f"and the layers after it, have no counterpart after {last}")
    if strict and unexpected:
        raise ValueError(f"Matched by order, the state dict holds {len(groups)} torch modules "
                         f"and the model {len(modules)}: torch key {unexpected[0]!r}, and the "
                         f"keys after it, have no counterpart after the model's last, "
                         f"{modules[-1][1].describe() if modules else 'none'}")
    return pairs, missing, unexpected


def match(modules, shapes, strict, order_kept=True):
    """Pair the model's torch ``modules`` (torch_modules_of) with the state dict's keys, given
    as {key: shape} in the state dict's order without the num_batches_tracked entries: the
    pairs ((module, param), key) and the IncompatibleKeys, or a ValueError naming the fastcnn
    layer and the torch key of the first mismatch.

    The keys are matched by name when any of them is one of the model's (to_torch_state_dict's
    names), as torch's load_state_dict matches them; otherwise by order, where the state dict's
    order is its torch module's (``order_kept``; a .safetensors file sorts its tensors). Shapes
    must match in either case."""
    names = {f"{prefix}.{param.name}" for prefix, module in modules for param in module.params}
    if any(key in names for key in shapes):
        pairs, missing, unexpected = _match_by_name(modules, shapes, strict)
    elif order_kept:
        pairs, missing, unexpected = _match_by_order(modules, shapes, strict)
    else:
        raise ValueError(f"Expected keys named as to_torch_state_dict names this model's "
                         f"weights, such as {few(names, 3)}, received {few(shapes, 3)}: the "
                         "tensors' order is lost, so it cannot pair them. Read the tensors, put "
                         "them in the order of the torch module's state_dict() and call "
                         "load_torch_state_dict")
    for (module, param), key in pairs:
        if shapes[key] != param.torch_shape:
            raise ValueError(f"{_describe_key(key, shapes)} goes to {module.describe()}: "
                             f"expected {param.name} of shape {param.torch_shape}")
    return pairs, IncompatibleKeys(missing, unexpected)


def assign(pairs, arrays):
    """Set each pair's fastcnn weight from ``arrays[key]`` (float arrays of the shapes match
    checked), every one converted before any weight changes."""
    new = [(param, np.array(param.from_torch(arrays[key]), np.float32))
           for (_, param), key in pairs]
    for param, value in new:
        param.weight[...] = value


def _as_array(key, value):
    """A state dict's value as a NumPy array: a torch tensor through its own methods (torch is
    then imported already), anything else through np.asarray."""
    if not isinstance(key, str):
        raise TypeError(f"Expected the state dict's keys to be strings, received {key!r}")
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu()
        if value.is_floating_point():  # float32 first: NumPy has no bfloat16
            value = value.float()
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"Expected real numbers for torch key {key!r}, received dtype "
                        f"{array.dtype}")
    return array


def load_torch_state_dict(model, state_dict, strict=True):
    """Set the model's weights from a PyTorch state dict (a mapping of names to torch tensors or
    NumPy arrays), converting each tensor from torch's layout.

    The keys are matched by name when they are this model's (to_torch_state_dict's); a state
    dict of a torch module whose submodules are named otherwise (``module.state_dict()``) is
    matched by order: its keys grouped per module (the part before the last dot), in order,
    against the model's layers in the order of ``model.weights``, each pair checked to hold the
    same tensors of the same shapes. ``num_batches_tracked`` entries are ignored.

    ``strict=True``: every weight must get a tensor and every tensor a weight. ``strict=False``,
    as in torch: the weights without a tensor keep their values and extra tensors are ignored
    (matched by order: those after the last pair). A shape or kind mismatch always raises a
    ValueError naming the fastcnn layer and the torch key, and nothing in the model changes
    unless every tensor matches. Returns the missing and unexpected keys (IncompatibleKeys).
    """
    if not isinstance(state_dict, collections.abc.Mapping):
        raise TypeError(f"Expected state_dict to be a mapping of names to tensors, received "
                        f"{type(state_dict).__name__}")
    modules = torch_modules_of(model)
    arrays = {key: _as_array(key, value) for key, value in state_dict.items()
              if not is_batch_count(key)}
    pairs, incompatible = match(modules, {key: a.shape for key, a in arrays.items()}, strict)
    assign(pairs, arrays)
    return incompatible
