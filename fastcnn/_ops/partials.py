"""How the kernels sum a weight gradient over a batch, for the processes that split one batch.

Every kernel that sums over the batch (conv and dense dW and db) sums fixed chunks of
``SAMPLES_PER_PARTIAL`` samples separately, then adds the chunk sums along one binary tree: the
tree that splits n chunks at the largest power of two below n, and each side the same way. Each
of its subtrees holds an aligned run of chunks, so a batch cut at the subtrees of one level gives
each process a share whose sum is that subtree's; adding the shares' sums pairwise along the top
of the tree then gives the bits that one process summing the whole batch gets. ``shares`` makes
that cut, ``combine`` adds per-process sums along the tree's top.
"""
import functools

from .._ext import conv as _conv

# pack.h's FCNN_SAMPLES_PER_PARTIAL, which conv.pyx and dense.pyx both chunk by.
SAMPLES_PER_PARTIAL = _conv.SAMPLES_PER_PARTIAL


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

    cut(0, -(-n // SAMPLES_PER_PARTIAL), 0, parts)
    return tuple((min(a * SAMPLES_PER_PARTIAL, n), min(b * SAMPLES_PER_PARTIAL, n))
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
