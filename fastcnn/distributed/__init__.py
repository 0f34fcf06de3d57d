"""Data-parallel training over MPI (mpi4py), with Horovod's Keras API.

Start N processes with ``mpiexec -n N python train.py``; in the script::

    from fastcnn import distributed as dist
    dist.init()
    model.compile(optimizer=dist.DistributedOptimizer(fastcnn.optimizers.Adam()), ...)
    model.fit(x, y, batch_size=128, verbose=1 if dist.rank() == 0 else 0,
              callbacks=[dist.BroadcastGlobalVariablesCallback(0),
                         dist.MetricAverageCallback()])

Every process holds the whole training set; ``batch_size`` is the global batch. Each epoch's
shuffle is drawn once (the same on every process) and each process trains on its share of every
batch (``share``); the gradients are summed across processes in one reduction per step. With
``deterministic=True`` (the default), N processes give bitwise the weights that one process gives
with the same batch size (see docs/distributed.md). BatchNormalization keeps per-process batch
statistics unless built with ``synchronized=True``, which totals them over the processes.

Needs ``pip install fastcnn[mpi]``; ``import fastcnn`` alone never imports mpi4py.
"""
try:
    from mpi4py import MPI  # noqa: F401  (initialises MPI)
except ImportError as error:
    raise ImportError("fastcnn.distributed needs mpi4py and an MPI library: "
                      "pip install fastcnn[mpi]") from error

from .callbacks import BroadcastGlobalVariablesCallback, MetricAverageCallback
from .optimizer import DistributedOptimizer, share
from .runtime import init, local_rank, local_size, rank, size

__all__ = ["BroadcastGlobalVariablesCallback", "DistributedOptimizer", "MetricAverageCallback",
           "init", "local_rank", "local_size", "rank", "share", "size"]
