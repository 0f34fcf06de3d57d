"""How the kernels sum a weight gradient over a batch, for the processes that split one batch.

Every kernel that sums over the batch (conv and dense dW and db) sums fixed chunks separately
(8 images for conv, 32 rows for dense), then adds the chunk sums along one binary tree: the tree
that splits n chunks at the largest power of two below n, and each side the same way. Each of its
subtrees holds an aligned run of chunks, so a batch cut at the subtrees of one level gives each
process a share whose sum is that subtree's; adding the shares' sums pairwise along the top of
the tree then gives the bits that one process summing the whole batch gets. ``shares`` makes that
cut in units of ``GRAIN`` samples, the larger chunk: both are powers of two, so a cut that is a
subtree cut of the tree over units is one of either kernel's tree too (a Dense layer on inputs
of rank > 2 sums positions x samples rows: a power of two of positions keeps that true).
``combine`` adds per-process sums along the tree's top.
"""
import functools

from .._ext import conv as _conv
from .._ext import dense as _dense

GRAIN = max(_conv.SAMPLES_PER_PARTIAL, _dense.SAMPLES_PER_PARTIAL)


def _split(chunks):
    """Where the tree splits a run of ``chunks`` (> 1) chunks: the largest power of two below."""
    return 1 << ((chunks - 1).bit_length() - 1)


def _rank_split(parts):
    """How many of ``parts`` processes take the left side of a node: half, rounded up."""
    return (parts + 1) // 2


@functools.lru_cache(maxsize=64)
def shares(n, parts):
    """The (start, stop) samples of each of ``parts`` processes in a batch of ``n``: the left
    half of the processes takes the tree's left side, the right half its right side, down to one
    process per node. A node of one chunk goes whole to its first process, so with fewer chunks
    than processes some shares are empty."""
    bounds = []

    def cut(lo, hi, first, count):
        if count == 1:
            bounds.append((lo, hi))
            return
        mid = lo + _split(hi - lo) if hi - lo > 1 else hi
        left = _rank_split(count)
        cut(lo, mid, first, left)
        cut(mid, hi, first + left, count - left)

    cut(0, -(-n // GRAIN), 0, parts)
    return tuple((min(a * GRAIN, n), min(b * GRAIN, n))
                 for a, b in bounds)


def combine(sums, add):
    """The total of the per-process ``sums`` (one per process, None for an empty share) along the
    top of the tree: ``add(a, b)`` adds two partial totals. None if every share is empty."""
    def total(first, count):
        if count == 1:
            return sums[first]
        left = _rank_split(count)
        a, b = total(first, left), total(first + left, count - left)
        return b if a is None else a if b is None else add(a, b)

    return total(0, len(sums))
