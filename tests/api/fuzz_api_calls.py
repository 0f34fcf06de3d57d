"""The fuzzer's calls of the public API (tests/api/fuzz.py): layers built, called, configured and
given weights; small random Sequential models compiled, fitted, evaluated, saved (and the file
damaged) and loaded; and the utilities."""
import contextlib
import inspect
import os

import numpy as np

from fuzz_values import call_text, describe


# ---- layers --------------------------------------------------------------------------------

def layer_classes():
    from fastcnn import layers
    from fastcnn.layers.base import Layer
    return sorted({cls for cls in vars(layers).values()
                   if isinstance(cls, type) and issubclass(cls, Layer) and cls is not Layer},
                  key=lambda cls: cls.__name__)


def layer_kwargs(g, cls, valid=True):
    """Constructor arguments: required ones guessed by name, optional ones sometimes set."""
    from fastcnn._ops import activation
    guesses = {"filters": lambda: g.int(1, 6), "units": lambda: g.int(1, 6),
               "kernel_size": lambda: g.choice([g.int(1, 3), (g.int(1, 3), g.int(1, 3))]),
               "pool_size": lambda: g.choice([2, (g.int(1, 3), g.int(1, 3))]),
               "strides": lambda: g.choice([None, 1, 2, (g.int(1, 2), g.int(1, 2))]),
               "rate": lambda: float(g.rng.random() * 0.9), "activation": lambda: g.choice(
                   [None, *activation.ACTIVATIONS]), "padding": lambda: g.choice(["valid", "same"]),
               "height_factor": lambda: float(g.rng.random() * 0.5),
               "width_factor": lambda: float(g.rng.random() * 0.5), "shape": lambda: (6, 6, 2),
               "mode": lambda: g.choice(["horizontal", "vertical", "horizontal_and_vertical"]),
               "fill_mode": lambda: g.choice(["constant", "nearest", "reflect", "wrap"]),
               "seed": lambda: g.int(0, 100), "use_bias": lambda: g.chance(0.5),
               "keepdims": lambda: g.chance(0.5), "momentum": lambda: 0.9,
               "epsilon": lambda: 1e-3}
    kwargs = {}
    for p in inspect.signature(cls).parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.default is p.empty or (p.name in guesses and g.chance(0.3)):
            kwargs[p.name] = guesses.get(p.name, lambda: g.int(1, 3))()
        if p.name == "padding" and cls.__name__.startswith("ZeroPadding") and p.name in kwargs:
            kwargs[p.name] = g.int(0, 2)
    if not valid and kwargs:
        key = g.choice(sorted(kwargs))
        kwargs[key] = g.mutate(kwargs[key])
    return kwargs


def layer_call(g):
    cls = g.choice(layer_classes())
    kwargs = layer_kwargs(g, cls, valid=g.chance(0.7))
    what = g.choice(["call", "call", "call", "config", "weights", "build"])
    text = call_text(f"layers.{cls.__name__}", kwargs=kwargs)
    shape = g.choice([(g.int(1, 3), g.int(1, 8), g.int(1, 8), g.int(1, 3)), (g.int(1, 3), g.int(1, 8))])
    x = g.array(shape) if g.chance(0.8) else g.bad_array(g.array(shape))
    training = g.chance(0.5)
    build_shape = shape[1:] if g.chance(0.8) else g.mutate(shape[1:])
    mutate_weight = g.chance(0.7)

    def run():
        layer = cls(**kwargs)
        if what == "config":
            type(layer).from_config(layer.get_config())
        elif what == "build":
            layer.build(build_shape)
        else:
            layer(x, training=training)
        if what == "weights":
            weights = layer.get_weights()
            if weights and mutate_weight:
                i = g.int(0, len(weights) - 1)
                weights[i] = g.mutate(weights[i])
            layer.set_weights(weights)
            layer(x)

    if what == "build":
        return f"{text}.build({describe(build_shape)})", run
    detail = ", then set_weights with one mutated" if what == "weights" and mutate_weight else ""
    return f"{text}.{what}(x={describe(x)}, training={training}){detail}", run


# ---- models --------------------------------------------------------------------------------

def random_stack(g):
    """0 to 3 mostly valid layers for NHWC inputs (the model adds Flatten and a Dense head)."""
    from fastcnn import layers
    stack = []
    for _ in range(g.int(0, 3)):
        kind = g.choice(["conv", "pool", "dropout", "activation", "batchnorm", "other"])
        if kind == "conv":
            stack.append(layers.Conv2D(g.int(1, 4), g.int(1, 3), padding=g.choice(["valid", "same"]),
                                       activation=g.choice([None, "relu", "tanh"])))
        elif kind == "pool":
            stack.append(g.choice([layers.MaxPooling2D, layers.AveragePooling2D])(
                g.int(1, 2), padding=g.choice(["valid", "same"])))
        elif kind == "dropout":
            stack.append(layers.Dropout(float(g.rng.random() * 0.5)))
        elif kind == "activation":
            stack.append(layers.Activation(g.choice(["relu", "sigmoid", "tanh", "linear"])))
        elif kind == "batchnorm":
            stack.append(layers.BatchNormalization())
        else:
            cls = g.choice([cls for cls in layer_classes() if cls.__name__ != "InputLayer"])
            with contextlib.suppress(ValueError, TypeError):
                stack.append(cls(**layer_kwargs(g, cls)))
    return stack


SPARSE_LOSSES = ("sparse_categorical_crossentropy", "multiclass_hinge")


def targets(g, loss, n, k):
    if loss in SPARSE_LOSSES:
        return g.labels(n, k) if g.chance(0.9) else g.labels(n, k)[:, None]
    if loss == "binary_crossentropy":
        return (g.rng.random((n, k)) > 0.5).astype(np.float32)
    if loss in ("mean_squared_error", "mse"):
        return g.array((n, k))
    return np.eye(k, dtype=np.float32)[g.labels(n, k)]


def fit_kwargs(g, x, y):
    from fastcnn import callbacks
    kwargs = {"verbose": 0, "batch_size": g.int(1, 8), "epochs": g.int(1, 2),
              "shuffle": g.chance(0.5)}
    if g.chance(0.3):
        kwargs["validation_split"] = float(g.choice([0.0, 0.25, 0.5]))
    if g.chance(0.2):
        half = max(1, len(x) // 2)
        kwargs["validation_data"] = (x[:half], y[:half])
    if g.chance(0.3):
        kwargs["callbacks"] = [g.choice([
            lambda: callbacks.EarlyStopping(monitor="loss", patience=0),
            lambda: callbacks.TerminateOnNaN(), lambda: callbacks.History(),
            lambda: callbacks.ReduceLROnPlateau(monitor="loss", patience=0),
            lambda: callbacks.CSVLogger(os.path.join(g.tmpdir, "log.csv"))])()]
    return kwargs


def model_call(g):
    """One method of a small random Sequential model. Every random choice is drawn here, before
    the description, so the description says everything the call does."""
    import fastcnn
    from fastcnn import layers, losses, optimizers
    n, k = g.int(1, 12), g.int(1, 4)
    input_shape = (g.int(4, 9), g.int(4, 9), g.int(1, 3))
    loss = g.choice(sorted(losses.LOSSES)) if g.chance(0.95) else g.choice(["bogus", None, 3])
    if k == 1 and loss in ("categorical_crossentropy", "categorical_hinge", *SPARSE_LOSSES) \
            and g.chance(0.8):
        k = 2
    optimizer = g.choice(sorted(optimizers.OPTIMIZERS)) if g.chance(0.95) else "bogus"
    metrics = ["accuracy"] if g.chance(0.6) else None if g.chance(0.7) else g.choice(["accuracy", ["bogus"]])
    head_activation = g.choice(["softmax", "sigmoid", None])
    declared = g.chance(0.8)
    method = g.choice(["fit", "fit", "fit", "evaluate", "predict", "call", "summary",
                       "weights", "config", "save", "build", "add"])
    x = g.array((n, *input_shape))
    y = targets(g, loss, n, k)
    kwargs = {"verbose": 0}
    if method == "fit":
        kwargs = fit_kwargs(g, x, y)
    elif method in ("evaluate", "predict"):
        kwargs["batch_size"] = g.int(1, 8)
    if g.chance(0.5):
        mutated = g.choice(["x", "y"] + [key for key in kwargs if key != "verbose"])
        if mutated == "x":
            x = g.bad_array(x)
        elif mutated == "y":
            y = g.bad_array(y)
        elif mutated == "epochs":  # a valid but vast epoch count is a long run, not a bug
            kwargs[mutated] = g.choice([0, -1, 1.5, "2", None, True, -2**63])
        else:
            kwargs[mutated] = g.mutate(kwargs[mutated])
    clean_x = g.array((n, *input_shape))
    variant = {"weights": lambda: g.choice(["mutate one", "drop the last", "as they are"]),
               "config": lambda: g.choice(["as it is", "layers reversed"]),
               "save": lambda: g.choice(["intact", "truncate", "garbage", "flip", "empty"]),
               "build": lambda: g.choice([(None, *input_shape), (None, 0, 3, 1), (None, -1, 4), 5,
                                          (None,), (None, 4, 4, 2**31)]),
               "add": lambda: g.choice([layers.Dense(2), layers.Conv2D(2, 3), layers.Flatten(),
                                        fastcnn.Input(shape=(3, 3, 1)), "not a layer", None]),
               }.get(method, lambda: None)()
    stack = random_stack(g)
    head = [layers.Flatten(), layers.Dense(k, activation=head_activation)]
    text = (f"Sequential(input={input_shape if declared else None}, "
            f"{[type(layer).__name__ for layer in stack]} + Flatten, Dense({k}, "
            f"{head_activation!r})).compile({optimizer!r}, {loss!r}, metrics={metrics!r}).{method}"
            f"(x={describe(x)}, y={describe(y)}, {describe(kwargs)}, variant={describe(variant)})")

    def run():
        model = fastcnn.Sequential(([fastcnn.Input(shape=input_shape)] if declared else [])
                                   + stack + head)
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        if method == "fit":
            model.fit(x, y, **kwargs)
            model.predict(clean_x, verbose=0)
        elif method == "evaluate":
            model.evaluate(x, y, **kwargs)
        elif method == "predict":
            model.predict(x, **kwargs)
        elif method == "call":
            model(x)
        elif method == "summary":
            model.summary(print_fn=lambda *args, **kw: None)
        elif method == "weights":
            model.build((None, *input_shape))
            weights = model.get_weights()
            if variant == "mutate one" and weights:
                i = g.int(0, len(weights) - 1)
                weights[i] = g.mutate(weights[i])
            elif variant == "drop the last":
                weights = weights[:-1]
            model.set_weights(weights)
            model.predict(clean_x, verbose=0)
        elif method == "config":
            config = model.get_config()
            if variant == "layers reversed":
                config = {**config, "layers": config["layers"][::-1]}
            type(model).from_config(config).predict(x, verbose=0)
        elif method == "save":
            save_and_load(g, model, x, y, variant)
        elif method == "build":
            model.build(variant)
        elif method == "add":
            model.add(variant)
            model.predict(x, verbose=0)

    return text, run


def save_and_load(g, model, x, y, damage):
    """Fit, save, damage the file as ``damage`` says, load it back and use it."""
    import fastcnn
    path = os.path.join(g.tmpdir, f"model{g.int(0, 10**9)}.keras")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(path)
    if damage != "intact":
        data = bytearray(open(path, "rb").read())
        if damage == "truncate":
            data = data[: g.int(0, len(data) - 1)]
        elif damage == "garbage":
            data = bytearray(g.rng.integers(0, 256, g.int(0, 2000), dtype=np.uint8).tobytes())
        elif damage == "flip" and data:
            for _ in range(g.int(1, 20)):
                data[g.int(0, len(data) - 1)] ^= 1 << g.int(0, 7)
        else:
            data = bytearray()
        open(path, "wb").write(bytes(data))
    loaded = fastcnn.models.load_model(path)
    loaded.predict(x, verbose=0)
    loaded.fit(x, y, epochs=1, verbose=0)


def misc_call(g):
    import fastcnn
    from fastcnn import utils
    what = g.choice(["threads", "to_categorical", "seed"])
    if what == "threads":
        # |n| <= 64: libgomp itself segfaults starting a team of tens of thousands of threads
        n = g.choice([1, 2, -1, 0, 3.5, "2", True, None, g.int(-64, 64)])
        return f"set_num_threads({n!r})", lambda: fastcnn.set_num_threads(n)
    if what == "to_categorical":
        y = g.choice([g.labels(5, 3), g.array((4,)), g.labels(3, 3) - 5, np.array(["a"]),
                      np.array([]), g.labels(4, 3)[:, None]])
        k = g.choice([None, 3, 0, -1, 2])
        return f"to_categorical({describe(y)}, {k!r})", lambda: utils.to_categorical(y, k)
    seed = g.choice([0, -1, 2**70, 1.5, "1", None, 12345])
    return f"set_random_seed({seed!r})", lambda: utils.set_random_seed(seed)
