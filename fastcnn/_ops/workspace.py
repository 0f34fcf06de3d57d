"""The buffers a layer or a model reuses from batch to batch."""
import numpy as np


class Workspace:
    """Buffers reused across batches, allocated once for the largest batch seen.

    ``get`` hands out a leading-axis view, which stays C-contiguous, so a smaller final batch
    costs no allocation.
    """

    def __init__(self):
        self._buffers = {}

    def get(self, name, shape, dtype=np.float32):
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.shape[1:] != tuple(shape[1:]) or buf.shape[0] < shape[0]:
            buf = np.empty(shape, dtype)
            self._buffers[name] = buf
        return buf[: shape[0]]
