"""NumPy twins of ``fastcnn._ext.dropout``."""
import numpy as np


def _mix32(x):
    """lowbias32 on uint32 arrays (wrap-around multiplies)."""
    x = (x ^ (x >> np.uint32(16))) * np.uint32(0x7FEB352D)
    x = (x ^ (x >> np.uint32(15))) * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))

def splitmix64(seed, i):
    """dropout.h's fcnn_splitmix64 of a uint64 array of indices i."""
    with np.errstate(over="ignore"):  # the hash relies on wrap-around
        z = np.uint64(seed) + (i + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

def dropout_keep(seed, n, rate, first=0):
    """The kernels' mask: element j is kept when its 16-bit draw reaches ceil(rate * 2**16). The
    draw is the low half of h(m) for j % 32 < 16, else its high half, with m = (j // 32) * 16 +
    j % 16 and h(m) = mix32(mix32(lo ^ k1) + k2); lo is the low half of m, and (k1, k2) the
    halves of splitmix64(seed, high half of m). Elements first .. first + n - 1 of the mask."""
    j = np.arange(first, first + n, dtype=np.uint64)
    m = ((j >> np.uint64(5)) << np.uint64(4)) | (j & np.uint64(15))
    key = splitmix64(seed, m >> np.uint64(32))
    with np.errstate(over="ignore"):  # the hashes rely on wrap-around
        k1 = (key & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        k2 = (key >> np.uint64(32)).astype(np.uint32)
        h = _mix32(_mix32(m.astype(np.uint32) ^ k1) + k2)
    draw = np.where(j & np.uint64(16), h >> np.uint32(16), h & np.uint32(0xFFFF))
    return draw >= np.uint32(np.ceil(rate * 2**16))

def dropout_forward(x, seed, rate, out, n_threads, first=0):
    """Keeps x[i] where dropout_keep(seed, ..., first)[i], scaled by 1 / (1 - rate); the rest
    are 0."""
    out[...] = np.where(dropout_keep(seed, x.size, rate, first).reshape(x.shape), x / (1 - rate),
                        0)

def dropout_backward(dy, seed, rate, dx, n_threads, first=0):
    """The gradient through dropout_forward with the same seed and rate: the same mask."""
    dropout_forward(dy, seed, rate, dx, n_threads, first)
