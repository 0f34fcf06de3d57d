"""Horovod's Keras callbacks: the same starting weights everywhere, and logs averaged over the
processes."""
import numpy as np
from mpi4py import MPI

from ..callbacks import Callback


class BroadcastGlobalVariablesCallback(Callback):
    """At the start of training, every process takes ``root_rank``'s weights (all of them,
    trainable or not), the model's seed (from which each epoch's shuffle and dropout masks are
    drawn, which must agree for the processes to share the batches out), and the optimizer state
    (slots and step count) once that exists: processes whose weights were initialised
    differently, or loaded from different files, train the same model."""

    def __init__(self, root_rank=0):
        super().__init__()
        if isinstance(root_rank, bool) or not isinstance(root_rank, int) or not (
                0 <= root_rank < MPI.COMM_WORLD.Get_size()):
            raise ValueError(f"Expected root_rank in [0, {MPI.COMM_WORLD.Get_size()}), received "
                             f"root_rank={root_rank!r}")
        self.root_rank = root_rank
        self._state_sent = False

    def _broadcast_state(self):
        comm, optimizer = MPI.COMM_WORLD, self.model.optimizer
        weights = self.model.trainable_weights
        has_slots = comm.bcast(optimizer.has_slots(weights), root=self.root_rank)
        if has_slots:
            for slot in optimizer.slots_for(weights):
                for values in slot:
                    comm.Bcast(values, root=self.root_rank)
            # the raw count of apply calls (as saved files hold it): with gradient
            # accumulation it also says where in the accumulation the processes are
            optimizer._iterations = comm.bcast(optimizer._iterations, root=self.root_rank)
            self._state_sent = True

    def on_train_begin(self, logs=None):
        for w in self.model.weights:
            MPI.COMM_WORLD.Bcast(w, root=self.root_rank)
        self.model.seed = MPI.COMM_WORLD.bcast(self.model.seed, root=self.root_rank)
        self._broadcast_state()

    def on_train_batch_end(self, batch, logs=None):
        if not self._state_sent:  # the state the first update created
            self._broadcast_state()


class MetricAverageCallback(Callback):
    """At the end of each epoch, every number in the logs becomes its mean over the processes,
    weighted by the samples each trained on in the epoch (with a DistributedOptimizer; else an
    equal weight each): each process's logs cover its own shares of the batches, so the means
    are what one process training on every sample logs. Put it before the callbacks that read
    the logs (fit's progress bar comes after the given callbacks)."""

    def __init__(self):
        super().__init__()
        self._start = 0

    def _samples(self):
        return getattr(self.model.optimizer, "shared_samples", None)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._samples() or 0

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        samples = self._samples()
        weight = 1 if samples is None else samples - self._start
        numbers = {k: float(v) for k, v in logs.items()
                   if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
        every = MPI.COMM_WORLD.allgather((weight, numbers))
        for name in sorted({k for _, values in every for k in values}):
            weighted = [(w, values[name]) for w, values in every if w and name in values]
            if weighted:
                logs[name] = sum(w * v for w, v in weighted) / sum(w for w, _ in weighted)
