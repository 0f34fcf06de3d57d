"""DistributedOptimizer: an optimizer whose fits train on this process's share of each batch
and sum the gradients across the processes before each update."""
import copy

from .. import optimizers
from .._ops import partials
from .reduction import GradientSum, StatisticSum
from .runtime import rank, size


def share(n):
    """(start, stop): this process's share of a batch of ``n`` samples. The shares follow the
    kernels' summation tree in units of 32 samples (see docs/distributed.md), so they are as
    even as whole units allow; with fewer units than processes some are empty."""
    return partials.shares(n, size())[rank()]


class _Distributed:
    """Mixed into the class of the optimizer that DistributedOptimizer wraps, so that the result
    is still an instance of that class (saved and loaded as it)."""

    deterministic = True
    shared_samples = 0  # samples this process has trained on (MetricAverageCallback weighs by it)

    share = staticmethod(share)  # what an array fit's batches gather (ArrayAdapter.share)

    def share_batch(self, execution, batch, whole=None):
        """The fit's hook, on the training thread before each step: this process's part of
        ``batch`` (xs, ys, weights), with ``execution`` set up to train on it: the loss
        averaged over the whole batch, dropout masks keyed by the whole batch's sample
        indices, the gradients summed across the processes after each backward pass, and the
        statistics of synchronized batch normalisation totalled across them.
        ``whole`` is the size of the batch whose share ``batch`` already is (arrays gather the
        share alone); None says that ``batch`` is the whole batch (a generator's or a
        PyDataset's, the same on every process), which is cut here."""
        if not isinstance(execution.reduce, GradientSum):
            execution.reduce = GradientSum(execution.gradients, self.deterministic)
            if size() > 1:
                execution.sum_across = StatisticSum(self.deterministic)
        cut = whole is None
        if cut:
            whole = len(batch[0][0])
        start, stop = share(whole)
        execution.share(start, whole)
        self.shared_samples += stop - start
        if not cut:
            return batch
        xs, ys, weights = batch
        return ([x[start:stop] for x in xs],
                [None if y is None else y[start:stop] for y in ys],
                None if weights is None else [None if w is None else w[start:stop]
                                              for w in weights])


_classes = {}


def DistributedOptimizer(optimizer, deterministic=True):
    """``optimizer`` (an Optimizer or its name) made data-parallel: a fit compiled with it
    trains each process on its share of every batch (``batch_size`` is the global batch) and
    sums the gradients of all the processes in one reduction per step, before the update.

    ``deterministic=True`` sums them along the kernels' own summation tree (recursive doubling):
    N processes then give bitwise the weights that one gives with the same batch size.
    ``deterministic=False`` uses MPI's Allreduce, whose rounding depends on N and the MPI
    library. Returns a copy of ``optimizer`` of a subclass of its class."""
    optimizer = optimizers.get(optimizer)
    if not isinstance(deterministic, bool):
        raise TypeError(f"Expected deterministic to be True or False, received "
                        f"deterministic={deterministic!r}")
    if isinstance(optimizer, _Distributed):
        raise ValueError(f"Expected an optimizer that is not distributed yet, received "
                         f"{optimizer!r}")
    cls = type(optimizer)
    if cls not in _classes:
        _classes[cls] = type(cls.__name__, (_Distributed, cls),
                             {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
    wrapped = copy.copy(optimizer)
    wrapped.__class__ = _classes[cls]
    wrapped.deterministic = deterministic
    return wrapped
