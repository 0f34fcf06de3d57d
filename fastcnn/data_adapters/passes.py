"""Which batches each epoch of a fit takes, as Keras 3 decides it.

Without ``steps_per_epoch`` every epoch is one whole pass over the data, in an order of its own.
With it, Keras keeps one pass going from epoch to epoch: each epoch takes the next
``steps_per_epoch`` batches of the running pass, the epoch that reaches the pass's end stops
there (so it may hold fewer batches), and the epoch after it starts a new pass, in a new order.
Data of unknown length (an endless PyDataset) is one pass that never ends.

A pass's order is drawn from (seed, the epoch the pass starts in): without steps_per_epoch epoch e
is ordered from (seed, e) as it always was. A generator keeps its own position, so it needs none
of this (``Passes`` is for data read by batch index: arrays and PyDatasets).
"""
import numbers


class Passes:
    """The running pass over data of ``num_batches`` batches (None: endless) that epochs of
    ``steps`` batches (None: a whole pass each) take turns reading: ``order_epoch``, the epoch
    whose order the pass follows (None before the next pass starts), and ``offset``, the pass
    batch at which the current epoch starts."""

    def __init__(self, num_batches, steps):
        self.num_batches, self.steps = num_batches, steps
        self.order_epoch, self.offset = None, 0

    def span(self, epoch):
        """(the order's epoch, first, stop): epoch ``epoch`` takes the batches [first, stop) of
        the running pass, which starts here if none runs."""
        if self.order_epoch is None or self.steps is None:
            self.order_epoch, self.offset = epoch, 0
        if self.steps is None:
            stop = self.num_batches
        elif self.num_batches is None:
            stop = self.offset + self.steps
        else:
            stop = min(self.offset + self.steps, self.num_batches)
        return self.order_epoch, self.offset, stop

    def advance(self, done):
        """Move on by the ``done`` batches the epoch took; a pass read to its end ends."""
        self.offset += done
        if self.steps is None or (self.num_batches is not None
                                  and self.offset >= self.num_batches):
            self.order_epoch, self.offset = None, 0

    def state(self):
        """The position as JSON values, for a backup."""
        return [self.order_epoch, self.offset]

    def set_state(self, state):
        """Go back to a position ``state`` returned (a backup's)."""
        order_epoch, offset = state
        if not (order_epoch is None or _count(order_epoch)) or not _count(offset):
            raise ValueError(f"Expected a data position [epoch or None, offset], received "
                             f"{state!r:.200}")
        self.order_epoch, self.offset = order_epoch, offset


def _count(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0
