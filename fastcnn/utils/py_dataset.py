"""PyDataset: Keras 3's base class for a dataset written in Python, one batch per index.

A subclass returns batch ``i`` from ``__getitem__(i)`` (an ``x``, ``(x, y)`` or
``(x, y, sample_weight)`` tuple of arrays) and the number of batches from ``__len__`` (or from
a ``num_batches`` property; None there means endless, and fit then needs ``steps_per_epoch``).
``fit``, ``evaluate`` and ``predict`` call ``on_epoch_begin`` before each pass and
``on_epoch_end`` after it.
"""
import numbers


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"Expected {name} to be an integer >= 1, received {name}={value!r:.200}")
    return int(value)


def _flag(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"Expected {name} to be True or False, received {name}={value!r:.200}")
    return value


def _option(name, default, check):
    """A checked attribute with Keras's default, which a subclass that forgets to call
    super().__init__() still gets."""
    def get(self):
        return getattr(self, "_" + name, default)

    def set(self, value):
        setattr(self, "_" + name, check(value, name))
    return property(get, set)


class PyDataset:
    """Batches by index, with Keras 3's arguments:

    - ``workers``: how many threads fetch batches ahead of the one training (1: one thread).
      ``__getitem__`` must then be safe to call from several threads at once, as in Keras.
    - ``use_multiprocessing``: accepted for Keras scripts, but the workers stay threads (fastcnn's
      kernels release the GIL, and NumPy or Pillow work in ``__getitem__`` mostly does too), so
      a dataset need not be picklable. A ``__getitem__`` that holds the GIL in pure Python for
      long shares one core with the training thread.
    - ``max_queue_size``: at most this many batches are fetched ahead of the one training.

    The batches reach fit in index order whatever the number of workers, so a run is the same
    for any ``workers``.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    workers = _option("workers", 1, _count)
    use_multiprocessing = _option("use_multiprocessing", False, _flag)
    max_queue_size = _option("max_queue_size", 10, _count)

    def __getitem__(self, index):
        """Batch ``index``: x, (x, y) or (x, y, sample_weight)."""
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index), "
                                  "returning batch number index")

    def __len__(self):
        """The number of batches in one epoch."""
        raise NotImplementedError(f"{type(self).__name__} must define __len__() or the "
                                  "num_batches property")

    @property
    def num_batches(self):
        """The number of batches in one epoch, or None for an endless dataset. ``__len__`` is
        called directly: ``len()`` would raise its own errors on a count that is not an int
        or that it cannot hold, before the adapter can name the dataset."""
        return self.__len__()

    def on_epoch_begin(self):
        """Called before each pass over the dataset."""

    def on_epoch_end(self):
        """Called after each pass over the dataset: shuffle here, for one."""
