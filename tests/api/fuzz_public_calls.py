"""The fuzzer's sweep of the whole public API (tests/api/fuzz.py): every public function, class
and method of fastcnn and its public modules, found by enumeration (so that a new public name is
called without a change here), called with arguments guessed from their names, some of them made
hostile; and random graphs of the functional and subclassed Model API (Input, Add, Concatenate,
several inputs and outputs, lists and dicts everywhere), compiled, fitted, summarised, saved and
loaded."""
import functools
import importlib
import inspect
import math
import os
import types

import numpy as np

from fuzz_api_calls import layer_kwargs
from fuzz_values import call_text, describe

# Modules whose public names are swept. datasets downloads (its errors are listed in it);
# _-prefixed modules are private.
SKIPPED_MODULES = ("fastcnn.datasets",)
# Public modules not named in fastcnn.__all__: the extras, and fastcnn.optimizers.schedules.
EXTRA_MODULES = ("fastcnn.extras.neighbors", "fastcnn.extras.plot", "fastcnn.schedules")
# Callables the sweep leaves out, and why.
SKIPPED = {
    # misc_call calls it within |n| <= 64: libgomp segfaults starting a vast team
    "set_num_threads",
    # Framework hooks: the trainer calls them with its own objects (a CallContext, logs it made)
    "forward", "backward", "forward_backward", "set_model", "set_params", "check_targets",
}
SKIPPED_PREFIXES = ("on_",)  # callback hooks, likewise
# The qualified-name prefixes public_call is restricted to (fuzz.py --under): empty for all.
UNDER = []


@functools.lru_cache(maxsize=None)
def public_modules():
    import fastcnn
    modules = [fastcnn]
    for name in fastcnn.__all__:
        value = getattr(fastcnn, name)
        if isinstance(value, types.ModuleType) and value.__name__ not in SKIPPED_MODULES:
            modules.append(value)
    for name in EXTRA_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:  # an optional extra's dependency is missing
            pass
    return modules


def public_names(module):
    names = getattr(module, "__all__", None)
    if names is None:  # the public names defined in the module, not those it imports
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
    return sorted(n for n in names if not isinstance(getattr(module, n), types.ModuleType))


@functools.lru_cache(maxsize=None)
def public_callables():
    """(qualified name, function or class) for every public callable, sorted."""
    found = {}  # by identity: an alias (AvgPool2D) is the same callable
    for module in public_modules():
        for name in public_names(module):
            value = getattr(module, name)
            if callable(value) and name not in SKIPPED:
                found.setdefault(id(value), (f"{module.__name__}.{name}", value))
    return sorted(found.values(), key=lambda item: item[0])


def public_methods(cls):
    """Names of the public methods and properties of ``cls``."""
    names = []
    for name in dir(cls):
        if name.startswith("_") or name in SKIPPED or name.startswith(SKIPPED_PREFIXES):
            continue
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, property):
            names.append(name)
        elif isinstance(attr, (types.FunctionType, classmethod, staticmethod)):
            # A method taking a CallContext is the layer protocol, called by the engine
            if "ctx" not in inspect.signature(getattr(cls, name)).parameters:
                names.append(name)
    return names


# ---- argument values -------------------------------------------------------------------------

def hostile(g):
    """A value no public argument should take: each must be refused cleanly, or accepted."""
    import fastcnn
    return g.choice([
        lambda: None, lambda: -1, lambda: 0, lambda: 2**63, lambda: -2**63, lambda: 2**70,
        lambda: 1.5, lambda: math.nan, lambda: math.inf, lambda: "", lambda: "bogus",
        lambda: "x" * 5000, lambda: [], lambda: {}, lambda: (), lambda: [[[]]], lambda: object(),
        lambda: True, lambda: b"\x00", lambda: {"a": 1}, lambda: [None, None], lambda: {1: 2},
        lambda: np.array([]), lambda: np.zeros((2, 3), np.int64), lambda: np.array("a"),
        lambda: np.array([1, 2], object), lambda: np.float64(np.nan), lambda: np.zeros((0, 0, 0)),
        lambda: np.broadcast_to(np.float32(0), (2**31, 3)), lambda: g.array((2, 6, 6, 2)),
        lambda: fastcnn.Input(shape=(3,)), lambda: fastcnn.layers.Dense(2),
        lambda: fastcnn.Sequential(), lambda: (lambda *a, **k: None), lambda: 10**5000,
        lambda: nested(g.int(50, 500)), lambda: {"class_name": "Dense", "config": {}},
        lambda: os.path.join(g.tmpdir, "missing", "f.keras"), lambda: g.tmpdir,
    ])()


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def guess(g, name):
    """A plausible value for a parameter called ``name``."""
    import fastcnn
    from fastcnn import losses, optimizers
    path = os.path.join(g.tmpdir, f"f{g.int(0, 10**6)}.{g.choice(['keras', 'weights.h5', 'csv'])}")
    guesses = {
        "x": lambda: g.array((g.int(1, 4), 6, 6, 2)), "inputs": lambda: fastcnn.Input((6, 6, 2)),
        "y": lambda: g.array((g.int(1, 4), 3)), "y_true": lambda: g.array((4, 3)),
        "y_pred": lambda: g.array((4, 3)), "outputs": lambda: fastcnn.layers.Dense(2)(
            fastcnn.layers.Flatten()(fastcnn.Input((6, 6, 2)))),
        "filepath": lambda: path, "path": lambda: path, "filename": lambda: path,
        "shape": lambda: (6, 6, 2), "input_shape": lambda: (None, 6, 6, 2),
        "batch_shape": lambda: (None, 6, 6, 2), "name": lambda: f"n{g.int(0, 9)}",
        "num_classes": lambda: 3, "index": lambda: 0, "print_fn": lambda: (lambda *a, **k: None),
        "identifier": lambda: g.choice(sorted(losses.LOSSES) + sorted(optimizers.OPTIMIZERS)),
        "loss": lambda: g.choice(sorted(losses.LOSSES)), "optimizer": lambda: g.choice(
            sorted(optimizers.OPTIMIZERS)), "metrics": lambda: ["accuracy"],
        "epochs": lambda: 1, "batch_size": lambda: g.int(1, 4), "verbose": lambda: 0,
        "config": lambda: {}, "custom_objects": lambda: {}, "weights": lambda: [],
        "layer": lambda: fastcnn.layers.Dense(2), "layers": lambda: [fastcnn.layers.Dense(2)],
        "model": lambda: fastcnn.Sequential([fastcnn.Input((3,)), fastcnn.layers.Dense(2)]),
        "seed": lambda: g.int(0, 100), "threshold": lambda: 0.5, "value": lambda: 0.5,
        "learning_rate": lambda: 0.01, "monitor": lambda: "loss", "patience": lambda: 0,
        "package": lambda: "pkg", "k": lambda: 3, "n": lambda: 2, "dtype": lambda: "float32",
        "trainable": lambda: g.chance(0.5), "output_shape": lambda: (4, 3),
        "target_shape": lambda: (4, 3), "schedule": lambda: (lambda epoch, lr: lr),
    }
    if name in guesses:
        return guesses[name]()
    return g.choice([1, 2, 0.5, None, "x"])


def arguments(g, function, hostile_p):
    """(args, kwargs) for ``function``: required parameters guessed, optional ones sometimes
    set, and each made hostile with probability ``hostile_p``. A long run must not come from a
    valid argument: epochs stay small."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        return [hostile(g) for _ in range(g.int(0, 2))], {}
    args, kwargs = [], {}
    for p in parameters:
        if p.name in ("self", "cls") or p.kind is p.VAR_KEYWORD:
            continue
        if p.kind is p.VAR_POSITIONAL:
            args += [hostile(g) for _ in range(g.int(0, 1))]
            continue
        if p.default is not p.empty and not g.chance(0.4):
            continue
        value = hostile(g) if g.chance(hostile_p) else guess(g, p.name)
        if p.name == "epochs" and not (isinstance(value, int) and value < 3):
            value = g.choice([0, -1, 1.5, "2", None, True])
        if p.kind is p.POSITIONAL_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and not kwargs
                                           and g.chance(0.5)):
            args.append(value)
        else:
            kwargs[p.name] = value
    return args, kwargs


# ---- instances ---------------------------------------------------------------------------------

def instance(g, cls):
    """An instance of ``cls`` for its methods to be called on, made with valid arguments
    where the sweep knows them."""
    import fastcnn
    from fastcnn.layers.base import Layer
    if issubclass(cls, fastcnn.Model):
        if issubclass(cls, fastcnn.Sequential):
            model, xs, ys = random_sequential(g), [g.array((3, 6, 6, 2))], [g.array((3, 3))]
            losses = ["mse"]
        else:
            model, xs, ys, losses = random_graph(g)
        stage = g.choice(["new", "compiled", "fitted"])  # methods meet a model in any state
        if stage != "new":
            model.compile(g.choice(["sgd", "adam"]), loss=losses, metrics=["accuracy"])
        if stage == "fitted":
            model.fit(xs if len(xs) > 1 else xs[0], ys if len(ys) > 1 else ys[0], verbose=0)
        return model
    if issubclass(cls, Layer) and cls is not Layer:
        return cls(**layer_kwargs(g, cls))
    args, kwargs = arguments(g, cls, hostile_p=0.0)
    return cls(*args, **kwargs)


def random_sequential(g):
    import fastcnn
    from fastcnn import layers
    model = fastcnn.Sequential([fastcnn.Input((6, 6, 2))] if g.chance(0.7) else [])
    for _ in range(g.int(0, 3)):
        model.add(g.choice([lambda: layers.Conv2D(2, 3, padding="same"),
                            lambda: layers.Dropout(0.2),
                            lambda: layers.MaxPooling2D(2, padding="same"),
                            lambda: layers.BatchNormalization()])())
    if g.chance(0.8):
        model.add(layers.Flatten())
        model.add(layers.Dense(3, activation=g.choice(["softmax", None])))
    return model


def random_graph(g):
    """A small functional model: one or two inputs, Add or Concatenate, one or two outputs.
    Returns (model, input arrays in the model's structure, targets in its structure, loss
    names in a list)."""
    import fastcnn
    from fastcnn import layers
    n = g.int(1, 5)
    two_inputs, two_outputs = g.chance(0.5), g.chance(0.5)
    a = fastcnn.Input((6, 6, 2), name="a")
    inputs = [a, fastcnn.Input((6, 6, 2), name="b")] if two_inputs else [a]
    h = [layers.Conv2D(2, 3, padding="same")(t) for t in inputs]
    merged = (g.choice([layers.Add(), layers.Concatenate(axis=g.choice([-1, 1, 3]))])(h)
              if two_inputs else h[0])
    flat = layers.Flatten()(merged)
    outputs = [layers.Dense(3, activation="softmax", name="p")(flat)]
    if two_outputs:
        outputs.append(layers.Dense(2, name="q")(flat))
    structure = g.choice(["list", "dict", "single"])
    if structure == "dict":
        model = fastcnn.Model({t.name: t for t in inputs}, {"p": outputs[0], "q": outputs[-1]}
                              if two_outputs else outputs[0])
    elif structure == "single" and not two_inputs and not two_outputs:
        model = fastcnn.Model(inputs[0], outputs[0])
    else:
        model = fastcnn.Model(inputs, outputs)
    xs = [g.array((n, 6, 6, 2)) for _ in inputs]
    ys = [np.eye(3, dtype=np.float32)[g.labels(n, 3)]] + ([g.array((n, 2))] if two_outputs else [])
    return model, xs, ys, ["categorical_crossentropy"] + (["mse"] if two_outputs else [])


# ---- the builders ------------------------------------------------------------------------------

def public_call(g):
    """One public function or class called, or one public method (or property) of an
    instance, with some arguments made hostile."""
    callables = [(name, c) for name, c in public_callables()
                 if not UNDER or name.startswith(tuple(UNDER))]
    if not callables:
        raise ValueError(f"No public callable is named under {UNDER}")
    if not UNDER and g.chance(0.3):  # the models have the most methods, and the deepest ones
        callables = [(name, c) for name, c in callables if name in ("fastcnn.Model",
                                                                    "fastcnn.Sequential")]
    qualname, target = g.choice(callables)
    hostile_p = g.choice([0.0, 0.3, 1.0])
    if isinstance(target, type) and g.chance(0.6):
        methods = public_methods(target)
        if methods:
            method = g.choice(methods)
            attr = inspect.getattr_static(target, method)
            if isinstance(attr, property):
                text = f"{qualname}(...).{method}"

                def run():  # AttributeError from a property is Python's "no such attribute"
                    getattr(instance(g, target), method, None)
                return text, run
            args, kwargs = arguments(g, getattr(target, method), hostile_p)
            text = call_text(f"{qualname}(...).{method}", args, kwargs)
            return text, lambda: getattr(instance(g, target), method)(*args, **kwargs)
    args, kwargs = arguments(g, target, hostile_p)
    return call_text(qualname, args, kwargs), lambda: target(*args, **kwargs)


class Subclassed:
    """A subclassed model (made lazily: fastcnn is imported in the child)."""

    @staticmethod
    def make(with_config):
        import fastcnn
        from fastcnn import layers

        class Net(fastcnn.Model):
            def __init__(self, units=3, **kwargs):
                super().__init__(**kwargs)
                self.units = units
                self.conv = layers.Conv2D(2, 3)
                self.flat = layers.Flatten()
                self.head = layers.Dense(units, activation="softmax")

            def call(self, x, training=False):
                return self.head(self.flat(self.conv(x)))

        if with_config:
            Net.get_config = lambda self: {**fastcnn.Model.get_config(self), "units": self.units}
        return Net()


def graph_call(g):
    """One method of a random functional or subclassed model, with lists and dicts of inputs,
    targets, losses and metrics, one of them sometimes made wrong."""
    import fastcnn
    kind = g.choice(["functional", "functional", "subclassed", "sequential"])
    method = g.choice(["fit", "fit", "evaluate", "predict", "call", "summary", "get_layer",
                       "pop", "set_weights", "trainable", "save", "save_weights", "config",
                       "build"])
    as_dict = g.chance(0.4)
    mutate = g.choice([None, None, "x", "y", "loss", "metrics", "loss_weights", "argument"])
    with_config = g.chance(0.5)
    batch_size = g.int(1, 4)
    index = g.choice([0, -1, 1, 100, -100, None, "0", 1.5])
    name = g.choice(["p", "q", "a", "bogus", None, 3])
    build_shape = g.choice([(None, 6, 6, 2), [(None, 6, 6, 2)], {"a": (None, 6, 6, 2)},
                            (None, 2, 2, 2), (None, 6), None, 5, [], {}])
    trainable = g.choice([False, True, None, "no", 0])
    custom = g.choice([None, {}, {"Net": None}, "x", {"Net": 1}])
    overwrite = g.choice([True, False])

    def make():
        if kind == "functional":
            return random_graph(g)
        if kind == "sequential":
            model = random_sequential(g)
            n = g.int(1, 4)
            return model, [g.array((n, 6, 6, 2))], [np.eye(3, dtype=np.float32)[g.labels(n, 3)]], \
                ["categorical_crossentropy"]
        n = g.int(1, 4)
        return Subclassed.make(with_config), [g.array((n, 6, 6, 2))], \
            [np.eye(3, dtype=np.float32)[g.labels(n, 3)]], ["categorical_crossentropy"]

    model, xs, ys, loss_names = make()
    names = model.output_names if kind == "functional" else None
    in_names = [t.name for t in model.inputs] if kind == "functional" else None
    x = dict(zip(in_names, xs)) if as_dict and in_names else xs if len(xs) > 1 else xs[0]
    y = dict(zip(names, ys)) if as_dict and names else ys if len(ys) > 1 else ys[0]
    loss = dict(zip(names, loss_names)) if as_dict and names else loss_names
    metrics = (dict(zip(names, [["accuracy"]] * len(names))) if as_dict and names
               else ["accuracy"])
    loss_weights = ([1.0] * len(loss_names)) if g.chance(0.3) else None
    if mutate == "x":
        x = g.mutate(x) if not isinstance(x, dict) else {**x, g.choice(sorted(x)): hostile(g)}
    elif mutate == "y":
        y = (g.mutate(y) if not isinstance(y, dict)
             else {**y, g.choice(sorted(y) + ["zz"]): hostile(g)})
    elif mutate == "loss":
        loss = g.mutate(loss) if g.chance(0.5) else hostile(g)
    elif mutate == "metrics":
        metrics = hostile(g)
    elif mutate == "loss_weights":
        loss_weights = hostile(g) if g.chance(0.5) else g.mutate([1.0] * len(loss_names))
    elif mutate == "argument":
        batch_size = hostile(g)
    path = os.path.join(g.tmpdir, f"m{g.int(0, 10**9)}.{g.choice(['keras', 'weights.h5'])}")
    text = (f"{kind} model (inputs {[np.shape(a) for a in xs]}, outputs {len(ys)}, "
            f"dicts={as_dict}, get_config={with_config}).compile(loss={describe(loss)}, "
            f"metrics={describe(metrics)}, "
            f"loss_weights={describe(loss_weights)}).{method}(x={describe(x)}, y={describe(y)}, "
            f"batch_size={describe(batch_size)}, index={index!r}, name={name!r}, "
            f"shape={describe(build_shape)}, trainable={trainable!r}, custom_objects={custom!r}, "
            f"overwrite={overwrite})")

    def run():
        model.compile("adam", loss=loss, metrics=metrics, loss_weights=loss_weights)
        if method == "fit":
            model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        elif method == "evaluate":
            model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=g.chance(0.5))
        elif method == "predict":
            model.predict(x, batch_size=batch_size, verbose=0)
        elif method == "call":
            model(x, training=g.chance(0.5))
        elif method == "summary":
            model.summary(print_fn=lambda *a, **k: None)
        elif method == "get_layer":
            model.get_layer(name=name, index=index)
        elif method == "pop":
            for _ in range(g.int(1, 6)):
                model.pop()  # Sequential only: others have no pop (AttributeError is Python's)
        elif method == "set_weights":
            model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
            weights = model.get_weights()
            model.set_weights(g.mutate(weights) if weights else hostile(g))
        elif method == "trainable":
            model.trainable = trainable
            model.fit(x, y, batch_size=batch_size, verbose=0)
        elif method in ("save", "save_weights"):
            model.fit(x, y, batch_size=batch_size, verbose=0)
            getattr(model, method)(path, overwrite=overwrite)
            getattr(model, method)(path, overwrite=overwrite)
            if method == "save":
                loaded = fastcnn.saving.load_model(path, custom_objects=custom)
                loaded.predict(x, verbose=0)
            else:
                model.load_weights(path)
        elif method == "config":
            type(model).from_config(model.get_config()).predict(x, verbose=0)
        elif method == "build":
            model.build(build_shape)
            model.summary(print_fn=lambda *a, **k: None)

    if method == "pop" and kind != "sequential":
        return text, lambda: None
    return text, run


def junk_batch(g, n):
    """One batch a data source might serve: valid (x, y), or one part of it made wrong."""
    x, y = g.array((n, 6, 6, 2)), np.eye(3, dtype=np.float32)[g.labels(n, 3)]
    return g.choice([
        lambda: (x, y), lambda: (x, y), lambda: (x, y, g.array((n,))), lambda: x,
        lambda: (x,), lambda: [x, y], lambda: (x, y, None), lambda: (x, y, g.array((n,)), x),
        lambda: (), lambda: None, lambda: "batch", lambda: {"a": x}, lambda: (g.mutate(x), y),
        lambda: (x, g.mutate(y)), lambda: (x, y, g.mutate(g.array((n,)))),
        lambda: (x[:0], y[:0]), lambda: (x, y[:max(0, n - 1)]), lambda: (hostile(g), y),
        lambda: (x, hostile(g)), lambda: (x, y, hostile(g)), lambda: hostile(g),
        lambda: (g.array((n, 3, 3, 2)), y), lambda: (np.asarray(x, np.float64), y.astype(np.int64)),
    ])()


class HostileSource:
    """A data source made lazily (fastcnn is imported in the child): a PyDataset whose
    __len__ may lie (more batches than it holds, none, a negative or absurd count, not an int)
    and whose batches may be junk, or a generator yielding junk."""

    @staticmethod
    def make(g, kind, n_batches, n):
        from fastcnn.utils import PyDataset
        batches = [junk_batch(g, n) if g.chance(0.3) else
                   (g.array((n, 6, 6, 2)), np.eye(3, dtype=np.float32)[g.labels(n, 3)])
                   for _ in range(n_batches)]
        length = g.choice([n_batches, n_batches, n_batches + 2, 0, -1, 2**63, 1.5, "3", None,
                           np.int64(n_batches), True])

        if kind == "generator":
            def generate():
                yield from batches
            return generate()
        if kind == "iterable":
            return iter(batches)

        class Lying(PyDataset):
            def __len__(self):
                return length

            def __getitem__(self, index):
                # Slicing past the end, as a real dataset's arrays would: empty batches
                return batches[index] if index < len(batches) else tuple(
                    b[:0] for b in batches[0]) if isinstance(batches[0], tuple) else batches[0]

        return Lying(**g.choice([{}, {}, {"workers": 2}, {"max_queue_size": 1}]))


def source_call(g):
    """fit, evaluate or predict of a small model on a hostile data source (see HostileSource),
    with steps_per_epoch, steps, validation data and class weights sometimes set."""
    import fastcnn
    kind = g.choice(["pydataset", "pydataset", "generator", "iterable"])
    method = g.choice(["fit", "fit", "evaluate", "predict"])
    n_batches, n = g.choice([0, 1, 2, 3, 4]), g.choice([0, 1, 2, 3, 3])
    steps = g.choice([None] * 6 + [1, 2, n_batches + 3, 0, -1, 1.5, 2**63])
    validation = g.choice([None, None, "source", "arrays"])
    class_weight = g.choice([None] * 4 + [{0: 1.0, 1: 2.0, 2: 0.5}, {5: 1.0}, {0: math.nan}])
    text = (f"{method} on a {kind} of {n_batches} batches of {n} (seed-drawn junk), steps={steps!r}, "
            f"validation={validation}, class_weight={class_weight!r}")

    def run():
        # one input and one output, so that the batches' structure is not what is refused
        model = random_sequential(g)
        model.compile(g.choice(["sgd", "adam"]), loss="categorical_crossentropy",
                      metrics=["accuracy"])
        source = HostileSource.make(g, kind, n_batches, n)
        if method == "fit":
            kwargs = {"steps_per_epoch": steps, "class_weight": class_weight}
            if validation == "source":
                kwargs["validation_data"] = HostileSource.make(g, kind, n_batches, n)
            elif validation == "arrays":
                kwargs["validation_data"] = (g.array((2, 6, 6, 2)), np.eye(3, dtype=np.float32)[:2])
            model.fit(source, epochs=g.int(1, 2), verbose=0, **kwargs)
        elif method == "evaluate":
            model.evaluate(source, steps=steps, verbose=0)
        else:
            model.predict(source, steps=steps, verbose=0)
    return text, run
