"""NumPy twins of ``fastcnn._ext.merge``."""
import numpy as np


def add_forward(inputs, out, n_threads):
    """out = inputs[0] + inputs[1] + ... , summed left to right; out may be any input."""
    total = np.array(inputs[0])
    for x in inputs[1:]:
        total += x
    out[...] = total

def concatenate_forward(inputs, out, n_threads):
    """Row r of out is the rows r of the (outer, width_t) inputs, one after the other."""
    out[...] = np.concatenate(inputs, axis=1)

def concatenate_backward(dy, outs, n_threads):
    """outs[t] gets its columns of dy, the inverse of concatenate_forward."""
    ends = np.cumsum([o.shape[1] for o in outs])
    for o, part in zip(outs, np.split(dy, ends[:-1], axis=1)):
        o[...] = part


def _views(inputs, shape, strides):
    """Each flat input seen through its strides as an array of the output's shape."""
    return [np.lib.stride_tricks.as_strided(x, tuple(shape), tuple(s * x.itemsize for s in st))
            for x, st in zip(inputs, strides)]


def _fold(op, views):
    """The inputs combined left to right; NaN wins Maximum and Minimum, as in NumPy."""
    if op == "copy":
        return views[0].copy()
    combine = {"add": np.add, "average": np.add, "subtract": np.subtract,
               "multiply": np.multiply, "maximum": np.maximum, "minimum": np.minimum,
               "divide": np.divide}[op]
    total = views[0].copy()
    for v in views[1:]:
        total = combine(total, v)
    return total / len(views) if op == "average" else total


def _winner(op, views):
    """The index of the first input holding each extreme (a NaN counts as beating any number)."""
    best, win = views[0].copy(), np.zeros(views[0].shape, np.intp)
    for t, v in enumerate(views[1:], 1):
        take = ((v > best) if op == "maximum" else (v < best)) | np.isnan(v)
        best, win = np.where(take, v, best), np.where(take, t, win)
    return win


def elementwise_forward(op, inputs, shape, strides, out, n_threads):
    """out = inputs[0] op inputs[1] op ..., each input read through its strides over shape."""
    out[...] = _fold(op, _views(inputs, shape, strides)).reshape(-1)


def elementwise_backward(op, dy, inputs, shape, strides, index, dx, n_threads):
    """dx: each element of input ``index`` gets the sum of its gradients over the output
    elements that read it."""
    views = _views(inputs, shape, strides)
    dy = dy.reshape(tuple(shape))
    if op in ("copy", "add"):
        g = dy
    elif op == "subtract":
        g = dy if index == 0 else -dy
    elif op == "average":
        g = dy / len(inputs)
    elif op == "multiply":
        g = dy * np.prod([v for t, v in enumerate(views) if t != index], axis=0)
    elif op == "divide":
        g = dy / views[1] if index == 0 else -dy * (views[0] / views[1]) / views[1]
    else:
        g = np.where(_winner(op, views) == index, dy, 0)
    summed = tuple(d for d, s in enumerate(strides[index]) if s == 0)
    kept = g.astype(np.float64).sum(axis=summed, keepdims=True)
    dx[...] = 0
    np.lib.stride_tricks.as_strided(dx, kept.shape, tuple(
        s * dx.itemsize for s in strides[index]))[...] = kept
