"""Python generators and other iterables of batches.

A generator (its own iterator) goes on where the last epoch stopped, as in Keras: with
``steps_per_epoch``, each epoch takes that many batches from it; without, the first epoch reads
it to its end and a later epoch finds it empty, which is an error.

An iterable that gives a fresh iterator each time (an object whose ``__iter__`` starts over)
is read as Keras 3 reads a torch DataLoader, the one such iterable it takes: without
``steps_per_epoch`` every epoch is a whole pass from its start; with it, one iterator goes on
from epoch to epoch, and the pass ends when the iterator runs out or, for an iterable with a
``len()``, after that many batches; the epoch that reaches the end stops there (Keras warns that
the input ran out) and the next epoch starts a new pass. Keras would give an epoch that finds a
running iterator already empty no batches at all; here that epoch starts the new pass at once.
Evaluation (evaluate, predict, validation) starts every call from the start of the iterable.

With ``steps`` larger than evaluation's data, Keras warns that the input ran out and uses the
batches there were; so does this adapter. A generator's position cannot be saved, so a fit
resumed by BackupAndRestore starts the interrupted epoch again from the generator's next batch
(an iterable from a new pass).
"""
import itertools
import numbers
import warnings

from .batches import at_step, unpack_batch


class GeneratorAdapter:
    resumable = False

    def __init__(self, data, name="x"):
        self.data = data
        self.name = name
        self._iterator = iter(data)
        self._restarts = self._iterator is not data
        self.num_batches = _length(data, name) if self._restarts else None
        self._peeked = []
        self._started = False
        self._read = 0  # batches the running iterator has given
        self._ended = False  # the running iterator ran out

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

    def _pass_over(self):
        return self._ended or (self.num_batches is not None and self._read >= self.num_batches)

    def _start_over(self):
        self._iterator, self._peeked = iter(self.data), []
        self._read, self._ended = 0, False

    def batches(self, seed, epoch, steps, start=0, go_on=False):
        """The raw (x, y, sample_weight) batches of one epoch: ``steps`` of them, or (None)
        until the iterable ends. ``go_on``: fit's epochs of steps_per_epoch batches, which an
        iterable that starts over serves from one running pass (see the module's notes)."""
        del seed, start  # a generator's order is its own; it restarts an interrupted epoch
        if self._started and self._restarts and (not go_on or self._pass_over()):
            self._start_over()
        self._started = True
        count = itertools.count() if steps is None else range(steps)
        for step in count:
            if step and self._restarts and self._pass_over():
                return  # the pass ended within this epoch: the next one starts a new pass
            try:
                # at step 0, the running pass may have ended with the last epoch
                batch = self._next(restart=step == 0 and go_on and self._restarts)
            except StopIteration:
                self._ended = True
                if step > 0 and (steps is None or self._restarts or not go_on):
                    if steps is not None:
                        warnings.warn(
                            f"{self.name} ran out of data after {step} of the {steps} batches "
                            f"asked for: as in Keras, the {step} batches it gave are used",
                            stacklevel=2)
                    return
                else:
                    raise self._ran_out(step, epoch, steps) from None
            except Exception as error:
                raise at_step(error, step, epoch, self.name) from error
            yield unpack_batch(batch, step, self.name)

    def _next(self, restart=False):
        """The next batch; with ``restart``, from a new pass when the running one (which gave
        batches) has ended."""
        try:
            batch = self._peeked.pop() if self._peeked else next(self._iterator)
        except StopIteration:
            if not (restart and self._read):
                raise
            self._start_over()
            batch = next(self._iterator)
        self._read += 1
        return batch

    def _ran_out(self, step, epoch, steps):
        expected = "at least one batch" if steps is None else f"steps_per_epoch={steps} batches"
        return ValueError(
            f"{self.name} ran out of data at step {step} of epoch {epoch + 1}: expected "
            f"{expected}. A generator is read once; pass steps_per_epoch (and "
            f"validation_steps) with a generator that loops, or an iterable that "
            f"starts over, such as a PyDataset")


def _length(data, name):
    """The number of batches of an iterable that starts over, where it has a len(); else
    None (its passes end when its iterators do)."""
    if not hasattr(type(data), "__len__"):
        return None
    n = len(data)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"Expected {name} to hold at least one batch, received len()={n!r}")
    return int(n)
