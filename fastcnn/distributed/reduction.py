"""The sum of every process's weight gradients, in one exchange per step, and of the
per-channel statistics of synchronized batch normalisation, in the same ways.

The gradients are packed into one buffer (one message per step, whatever the number of
weights), with one more entry saying whether this process had samples of the batch.

deterministic: recursive doubling. In round s = 1, 2, 4 ... each process swaps its partial sum
with process rank ^ s and adds the two, so both hold the bits of the same addition; the
processes of each round pair up as the top of the kernels' summation tree does (see
_ops/partials.py), and the total is the one process's. For a number of processes other than a
power of two, every process gathers all the sums and adds them along that tree.

plain: MPI's Allreduce, whose order of additions the MPI library chooses.
"""
import numpy as np
from mpi4py import MPI

from .._ops import partials


class GradientSum:
    """``gradient_sum(gradients, present)`` replaces ``gradients`` (a fixed list of arrays of
    one dtype) by their sums over the processes; ``present`` is False for a process whose share
    of the batch is empty, which contributes nothing."""

    def __init__(self, gradients, deterministic, comm=None):
        dtypes = {g.dtype for g in gradients}
        if len(dtypes) > 1:
            raise TypeError(f"Expected gradients of one dtype, received {sorted(map(str, dtypes))}")
        self.comm = comm or MPI.COMM_WORLD
        self.deterministic = deterministic
        dtype = dtypes.pop() if dtypes else np.float32
        self._ends = np.cumsum([0] + [g.size for g in gradients])
        self.buffer = np.empty(self._ends[-1] + 1, dtype)
        self._incoming = np.empty_like(self.buffer) if deterministic else None

    def __call__(self, gradients, present):
        buf, ends = self.buffer, self._ends
        for g, a, b in zip(gradients, ends[:-1], ends[1:]):
            buf[a:b] = g.reshape(-1)
        buf[-1] = 1 if present else 0
        if not self.deterministic:
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        elif self.comm.Get_size() & (self.comm.Get_size() - 1) == 0:
            self._recursive_doubling()
        else:
            self._gathered()
        for g, a, b in zip(gradients, ends[:-1], ends[1:]):
            g.reshape(-1)[...] = buf[a:b]

    def _recursive_doubling(self):
        buf, incoming, comm = self.buffer, self._incoming, self.comm
        rank, step = comm.Get_rank(), 1
        while step < comm.Get_size():
            comm.Sendrecv(buf, dest=rank ^ step, recvbuf=incoming, source=rank ^ step)
            if buf[-1] and incoming[-1]:
                np.add(buf, incoming, out=buf)  # a + b == b + a: both processes get these bits
            elif incoming[-1]:
                buf[...] = incoming
            step *= 2

    def _gathered(self):
        every = np.empty((self.comm.Get_size(), self.buffer.size), self.buffer.dtype)
        self.comm.Allgather(self.buffer, every)
        total = partials.combine([row if row[-1] else None for row in every], np.add)
        self.buffer[...] = 0 if total is None else total


class StatisticSum:
    """``statistic_sum(sums)`` replaces the 1-D float64 array ``sums`` by its total over the
    processes, in place, as GradientSum sums gradients (deterministic or not): the hook of
    synchronized batch normalisation (``CallContext.sum_across``). The last entry of ``sums``
    counts what this process summed; 0 says it has no sample of the batch, and the
    deterministic sum then leaves it out, as it does a process's gradients."""

    def __init__(self, deterministic, comm=None):
        self.comm = comm or MPI.COMM_WORLD
        self.deterministic = deterministic
        self._sums = {}  # array size -> its GradientSum, with its message buffers

    def __call__(self, sums):
        sums = np.asarray(sums)
        total = self._sums.get(sums.size)
        if total is None:
            total = self._sums[sums.size] = GradientSum([sums], self.deterministic, self.comm)
        total([sums], bool(sums[-1] > 0))
