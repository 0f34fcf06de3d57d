"""Arrays in memory (or memory-mapped), served one batch at a time: each batch is gathered and
converted to float32 on its own, so a uint8 array or an np.memmap is never copied whole."""
import numpy as np

from .._ops.workspace import Workspace
from .prefetch import RING


def epoch_order(seed, epoch, n, shuffle, batch_size):
    """The sample order of epoch ``epoch`` of a fit seeded with ``seed``, drawn from RNG (seed,
    epoch): a permutation for ``shuffle=True``; for ``shuffle="batch"`` (Keras's), each batch of
    ``batch_size`` keeps its samples, in a random order within it; None (in order) without
    shuffling."""
    if not shuffle:
        return None
    rng = np.random.default_rng([seed, epoch])
    if shuffle == "batch":  # sorted by batch, then by a random key within each batch
        return np.lexsort((rng.random(n), np.arange(n) // batch_size))
    return rng.permutation(n)


class ArrayAdapter:
    """Batches of the arrays ``xs`` (float32 model inputs are made of them), ``ys`` (targets as
    the losses take them, None for an output without a loss) and ``weights`` (None, or per
    output None or its loss weights), all with the same number of samples. Each batch's arrays
    live in one of ``RING`` sets of buffers, reused ``RING`` batches later.

    ``share`` (fastcnn.distributed sets it), a function of a batch's size that gives the
    (start, stop) of the samples this process trains on, makes each batch hold only those."""

    resumable = True
    share = None

    def __init__(self, xs, ys, weights, batch_size, shuffle=False):
        self.xs, self.ys, self.weights = xs, ys, weights
        self.n = len(xs[0])
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.num_batches = -(-self.n // batch_size)
        self._ring = [Workspace() for _ in range(RING)]

    def memory_bytes(self):
        """The bytes this adapter allocates: the ring's buffers once full, and with shuffling
        each epoch's order. A float32 C-contiguous array read in order needs no buffer: its
        batches are views of it."""
        rows = min(self.batch_size, self.n)
        per_sample = 0
        for a in self.xs:
            plain = a.dtype == np.float32 and a.flags.c_contiguous
            gathered = a[0].nbytes if self.shuffle else 0
            per_sample += gathered + (0 if plain else a[0].size * 4)
        if self.shuffle:
            per_sample += sum(a[0].nbytes for a in self.ys if a is not None)
            per_sample += sum(w[0].nbytes for w in self.weights or () if w is not None)
        # the order, and for shuffle="batch" the keys and batch indices that sort into it
        order = {True: 8, "batch": 24}.get(self.shuffle, 0)
        return RING * rows * per_sample + self.n * order

    def batches(self, seed, epoch, steps, start=0):
        """(xs, ys, weights) of the batches ``start`` to ``steps - 1`` of the pass ordered as
        epoch ``epoch`` orders it."""
        order = epoch_order(seed, epoch, self.n, self.shuffle, self.batch_size)
        for step in range(start, steps):
            lo, hi = step * self.batch_size, step * self.batch_size + self.batch_samples(step)
            if self.share is not None:
                first, stop = self.share(hi - lo)
                lo, hi = lo + first, lo + stop
            index = slice(lo, hi) if order is None else order[lo:hi]
            work = self._ring[step % RING]
            xs = [_float32(work, k, _rows(work, ("x", k), a, index)) for k, a in enumerate(self.xs)]
            ys = [None if a is None else _rows(work, ("y", k), a, index)
                  for k, a in enumerate(self.ys)]
            weights = None if self.weights is None else [
                None if w is None else _rows(work, ("w", k), w, index)
                for k, w in enumerate(self.weights)]
            yield xs, ys, weights

    def batch_samples(self, step):
        """The number of samples in batch ``step``: the batch size, or fewer in the last."""
        return min(self.batch_size, self.n - step * self.batch_size)


def _rows(work, key, source, index):
    """source's rows ``index`` (a slice or indices): a view for a slice, a gather into a ring
    buffer for indices."""
    if isinstance(index, slice):
        return source[index]
    buf = work.get(key, (len(index), *source.shape[1:]), source.dtype)
    # The indices are a permutation's, all in range; mode "raise" would buffer the output.
    return np.take(source, index, axis=0, out=buf, mode="wrap")


def _float32(work, k, rows):
    """``rows`` as a C-contiguous float32 array: itself where it is one."""
    if rows.dtype == np.float32 and rows.flags.c_contiguous:
        return rows
    buf = work.get(("x32", k), rows.shape, np.float32)
    np.copyto(buf, rows, casting="unsafe")
    return buf
