"""Python generators and other iterables of batches.

An iterable that gives a fresh iterator each time (a list of batches, an object whose
``__iter__`` starts over) is read from its start every epoch. A generator (its own iterator)
goes on where the last epoch stopped, as in Keras: with ``steps_per_epoch``, each epoch takes
that many batches from it; without, the first epoch reads it to its end and a later epoch
finds it empty, which is an error. A generator's position cannot be saved, so a fit resumed
by BackupAndRestore starts the interrupted epoch again from the generator's next batch.
"""
import itertools

from .batches import at_step, unpack_batch


class GeneratorAdapter:
    resumable = False

    def __init__(self, data, name="x"):
        self.data = data
        self.name = name
        self.num_batches = None
        self._iterator = iter(data)
        self._restarts = self._iterator is not data
        self._peeked = []
        self._started = False

    def peek(self):
        """The first batch, unpacked (it is served again as the first batch of the first
        epoch)."""
        if not self._peeked:
            try:
                self._peeked.append(next(self._iterator))
            except StopIteration:
                raise ValueError(f"Expected {self.name} to yield at least one batch, received "
                                 "an empty generator") from None
            except Exception as error:
                raise at_step(error, 0, 0, self.name) from error
        return unpack_batch(self._peeked[0], 0, self.name)

    def batches(self, seed, epoch, steps, start=0):
        """The raw (x, y, sample_weight) batches of one epoch: ``steps`` of them, or (None)
        until the iterable ends."""
        del seed, start  # a generator's order is its own; it restarts an interrupted epoch
        if self._started and self._restarts:
            self._iterator, self._peeked = iter(self.data), []
        self._started = True
        source = itertools.chain(self._peeked, self._iterator)
        self._peeked = []
        count = itertools.count() if steps is None else range(steps)
        for step in count:
            try:
                batch = next(source)
            except StopIteration:
                if steps is None and step > 0:
                    return
                expected = ("at least one batch" if steps is None
                            else f"steps_per_epoch={steps} batches")
                raise ValueError(
                    f"{self.name} ran out of data at step {step} of epoch {epoch + 1}: expected "
                    f"{expected}. A generator is read once; pass steps_per_epoch (and "
                    f"validation_steps) with a generator that loops, or an iterable that "
                    f"starts over, such as a list or a PyDataset") from None
            except Exception as error:
                raise at_step(error, step, epoch, self.name) from error
            yield unpack_batch(batch, step, self.name)
