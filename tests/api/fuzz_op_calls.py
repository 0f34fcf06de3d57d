"""The fuzzer's op calls (tests/api/fuzz.py): a public function of fastcnn._ops with arguments
made by parameter name from one coherent geometry, some of them then made wrong."""
import inspect

import numpy as np

from fuzz_values import call_text

# What op_call fuzzes: every public function of the wrapper modules of fastcnn._ops, and the
# checks that the API layers call themselves (the other checks are the wrappers' helpers).
OPS_MODULES = ("conv", "dense", "pool", "activation", "dropout", "loss", "normalization", "optim",
               "regularization", "remap", "distance", "merge")
MERGES = ("add_forward", "concatenate_forward", "concatenate_backward")
API_CHECKS = ("as_kernel_array", "check_array", "check_index_range", "window_output_shape")


def geometry(g):
    """Shapes for one op call that agree with each other (when valid)."""
    from fastcnn._ops import checks
    geo = dict(n=g.int(1, 4), h=g.int(1, 9), w=g.int(1, 9), c=g.int(1, 5), co=g.int(1, 20),
               kh=g.int(1, 4), kw=g.int(1, 4), sh=g.int(1, 3), sw=g.int(1, 3),
               padding=g.choice(["valid", "same"]), k=g.int(1, 6), f=g.int(1, 12),
               dtype=np.float32 if g.chance(0.8) else np.float64)
    try:
        (oh, ow), _ = checks.window_output_shape((geo["h"], geo["w"]), (geo["kh"], geo["kw"]),
                                                 (geo["sh"], geo["sw"]), geo["padding"])
    except ValueError:  # a window larger than the input: the call should refuse it
        oh, ow = 1, 1
    geo.update(oh=oh, ow=ow)
    return geo


def merge_argument(g, fn_name, param, geo):
    """A valid value for ``param`` of a merge op: k inputs of the image's shape, but for their
    sizes along one axis (drawn once per call) when they are concatenated."""
    if "axis" not in geo:
        geo["axis"] = g.int(-4, 3)
        geo["sizes"] = [g.int(0, 3) for _ in range(g.int(1, 3))]
    image = (geo["n"], geo["h"], geo["w"], geo["c"])
    axis, sizes, dt = geo["axis"], geo["sizes"], geo["dtype"]

    def along(size):
        return image if fn_name == "add_forward" else tuple(
            size if i == axis % 4 else d for i, d in enumerate(image))
    if param == "axis":
        return axis
    if param == "sizes":
        return list(sizes)
    if param == "inputs":
        return [g.array(along(size), dt) for size in sizes]
    if param == "dy":
        return g.array(along(sum(sizes)), dt)
    if param == "out":
        return None if g.chance(0.6) else np.zeros(along(sum(sizes)), dt)
    return None if g.chance(0.6) else [np.zeros(along(size), dt) for size in sizes]  # outs


def op_argument(g, fn_name, param, geo):
    """A valid value for ``param`` of the ops function ``fn_name`` (or a plausible guess for new
    ones)."""
    from fastcnn._ops import activation, normalization, pool
    if fn_name in MERGES and param != "n_threads":
        return merge_argument(g, fn_name, param, geo)
    n, h, w, c, co, k, f, dt = (geo[key] for key in "n h w c co k f dtype".split())
    image, conv_out, pool_out = (n, h, w, c), (n, geo["oh"], geo["ow"], co), (n, geo["oh"], geo["ow"], c)
    dense = fn_name.startswith("dense")
    pooled = "pool" in fn_name and not fn_name.startswith("global")
    is_global = fn_name.startswith("global")
    batchnorm = fn_name.startswith("batchnorm")
    remap = fn_name.startswith("remap")
    loss = any(word in fn_name for word in ("entropy", "squared", "hinge"))
    optim = fn_name.endswith("_update") or fn_name in ("axpy", "sum_of_squares")
    out_shape = (conv_out if fn_name.startswith("conv") else pool_out if pooled else
                 (n, co) if dense else (n, c) if is_global else (n, k) if loss else image)
    if param in ("x", "inputs"):
        if dense:
            return g.array((n, f), dt)
        if optim or fn_name.startswith("pairwise"):
            return g.array((n, f), dt)
        return g.array(image, dt)
    if param == "kernel":
        return g.array((f, co) if dense else (geo["kh"], geo["kw"], c, co), dt)
    if param in ("bias",):
        return g.array((co,), dt) if g.chance(0.8) else None
    if param == "dy":
        if fn_name.startswith("conv"):
            return g.array(conv_out, dt)
        if pooled:
            return g.array(pool_out, dt)
        if dense:
            return g.array((n, co), dt)
        if is_global:
            return g.array((n, c), dt)
        if remap:
            return g.array((n, geo["oh"], geo["ow"], c), dt)
        return g.array(image, dt)
    if param in ("y", "uniform"):
        return g.rng.random(image).astype(dt)
    if param == "argmax":
        if is_global:
            return g.rng.integers(0, h * w * c, (n, c)).astype(np.int32)
        try:
            return pool.maxpool2d_forward(g.array(image, dt), (geo["kh"], geo["kw"]),
                                          (geo["sh"], geo["sw"]), geo["padding"])[1]
        except ValueError:
            return g.rng.integers(0, h * w * c, pool_out).astype(np.int32)
    if param in ("input_shape",):
        return image
    if param == "kernel_shape":
        return (geo["kh"], geo["kw"], c, co)
    if param in ("strides", "stride"):
        return (geo["sh"], geo["sw"]) if param == "strides" else geo["sh"]
    if param in ("pool_size", "window"):
        return (geo["kh"], geo["kw"])
    if param == "padding":
        return geo["padding"]
    if param in ("out", "dw", "db", "grad", "loss", "index", "mean", "inv_std", "dgamma", "dbeta",
                 "partial"):
        if g.chance(0.6):
            return None
        shapes = {"dw": (f, co) if dense else (geo["kh"], geo["kw"], c, co), "db": (co,),
                  "grad": (n, k), "loss": (n,), "index": (n, min(k, 2)), "mean": (c,),
                  "inv_std": (c,), "dgamma": (c,), "dbeta": (c,),
                  "partial": normalization.batchnorm_partial_shape(image) if batchnorm else (1,)}
        dtype = {"index": np.intp, "partial": np.float64}.get(param, dt)
        return np.zeros(shapes.get(param, out_shape), dtype)
    if param in ("logits", "y_pred", "scores", "dist"):
        return g.array((n, k), dt, scale=g.choice([1.0, 30.0]))
    if param == "target":
        return np.eye(k, dtype=dt)[g.labels(n, k)]
    if param == "labels":
        return g.labels(n, k)
    if param == "yt":
        return g.array((f, k), dt)
    if param in ("param", "grad", "velocity", "m", "v", "mean_square", "momentum_buffer",
                 "mean_grad"):
        return g.array((f, co), dt) if param in ("param", "grad") else np.zeros((f, co), dt)
    if param in ("gamma", "beta", "moving_mean"):
        return g.array((c,), dt)
    if param == "moving_var":
        return g.rng.random(c).astype(dt) + 0.5
    if param in ("rows", "cols"):
        size, count = (h, geo["oh"]) if param == "rows" else (w, geo["ow"])
        return g.rng.integers(-1, size, (n, count)).astype(np.int32)
    if param == "coords":
        return g.rng.integers(-10, 10, g.int(0, 8))
    if param in ("size", "k"):
        return g.int(1, k)
    if param == "step":
        return g.int(1, 100)
    if param == "n_threads":
        return g.int(1, 3)
    if param == "name":
        return g.choice(activation.ACTIVATIONS) if fn_name.startswith("activation") else "kernel_size"
    if param == "metric":
        return g.choice(["l1", "l2"])
    if param == "fill_mode":
        return g.choice(["constant", "nearest", "reflect", "wrap"])
    if param in ("rate", "momentum", "beta_1", "rho"):
        return float(g.rng.random() * 0.9)
    if param in ("beta_2",):
        return 0.999
    if param in ("epsilon",):
        return 1e-7
    if param in ("learning_rate", "grad_scale", "alpha", "fill_value"):
        return float(g.rng.random())
    if param in ("relu", "nesterov", "centered", "need_dx", "need_dres", "batch_stats",
                 "from_logits", "batch_axis", "zero"):
        return g.chance(0.5)
    if param == "input_hw":
        return (h, w)
    if param == "x_shape":
        return image
    if param == "shape":
        return image
    if param == "ndim":
        return 4
    if param == "dtype":
        return dt
    return g.array(image, dt)


def op_call(g):
    import importlib
    from fastcnn._ops import checks
    modules = [importlib.import_module(f"fastcnn._ops.{m}") for m in OPS_MODULES]
    functions = sorted([(name, fn) for module in modules for name, fn in vars(module).items()
                        if inspect.isfunction(fn) and not name.startswith("_")
                        and fn.__module__ == module.__name__]
                       + [(name, getattr(checks, name)) for name in API_CHECKS])
    name, fn = g.choice(functions)
    geo = geometry(g)
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    args = {p.name: op_argument(g, name, p.name, geo) for p in params
            if p.default is p.empty or g.chance(0.5)}
    # n_threads stays valid: a count above threads.max_threads() is clamped with a warning
    # (tests/api/test_thread_limits.py), which would only repeat here.
    keys = sorted(k for k in args if k != "n_threads")
    for _ in range(min(len(keys), g.choice([0, 0, 1, 1, 2]))):
        key = keys.pop(g.int(0, len(keys) - 1))
        args[key] = g.mutate(args[key])
    return call_text(f"{fn.__module__}.{name}", kwargs=args), lambda: fn(**args)
