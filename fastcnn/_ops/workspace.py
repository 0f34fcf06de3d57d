"""The buffers a layer or a model reuses from batch to batch."""
import math
from collections import defaultdict

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

    def buffers(self):
        """The buffers it holds (each owns its memory)."""
        return list(self._buffers.values())


class BufferPool:
    """Buffers lent for a while and given back once nothing reads them, to be lent again in any
    shape that fits: the passes of one backward sweep share them, so the sweep holds about the
    bytes alive at once rather than one set of buffers per pass."""

    def __init__(self, hand_back_small=False):
        self._hand_back_small = hand_back_small  # see take
        self._free = defaultdict(list)  # dtype -> contiguous buffers
        self._lent = []
        self._borrowed = set()  # ids of the free buffers that ``borrow`` lends

    def borrow(self, buffers):
        """Lend ``buffers`` too (contiguous arrays that own their memory, which their owner does
        not read until ``reclaim``): a backward sweep lends those of the steps it is done
        with."""
        for buf in buffers:
            self._borrowed.add(id(buf))
            self._free[buf.dtype].append(buf)

    def reclaim(self):
        """Take the borrowed buffers out of the pool, lent (whose borrower is done with them)
        or not."""
        self._lent = [b for b in self._lent if id(b) not in self._borrowed]
        for dtype, free in self._free.items():
            self._free[dtype] = [b for b in free if id(b) not in self._borrowed]
        self._borrowed.clear()

    def take(self, shape, dtype=np.float32):
        """A buffer of ``shape``: the smallest free one that holds it, else a new one. With
        ``hand_back_small``, free buffers too small for it (but borrowed ones) go back to the
        allocator when together they hold as much: the pool then stays near the most bytes
        lent at once, rather than keeping one buffer per size that a sweep ever asked for while
        smaller ones were lent (a sweep asks for the same sizes in the same order from batch to
        batch, so this settles after one batch). The caller then keeps no reference to a
        buffer it has given back, which would keep its memory from the allocator."""
        dtype, size = np.dtype(dtype), math.prod(shape)
        free = self._free[dtype]
        fits = [i for i, b in enumerate(free) if b.size >= size]
        if fits:
            buf = free.pop(min(fits, key=lambda i: free[i].size))
        else:
            if self._hand_back_small and sum(
                    b.size for b in free if id(b) not in self._borrowed) >= size:
                free[:] = [b for b in free if id(b) in self._borrowed]
            buf = np.empty(size, dtype)
        self._lent.append(buf)
        return buf.reshape(-1)[:size].reshape(shape)

    def give_back(self, still_read):
        """Take back every lent buffer for which ``still_read(buffer)`` is false."""
        kept = []
        for buf in self._lent:
            if still_read(buf):
                kept.append(buf)
            else:
                self._free[buf.dtype].append(buf)
        self._lent = kept


def root(a):
    """The array that owns ``a``'s memory (``a`` itself unless it is a view)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a
