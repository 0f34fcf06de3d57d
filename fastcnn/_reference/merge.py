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
