"""Dataset: the object image_dataset_from_directory returns, a PyDataset that fit, evaluate and
predict take, with the methods Keras users chain onto a tf.data dataset: ``map``, ``batch``,
``unbatch``, ``shuffle``, ``take``, ``cache`` and ``prefetch``.

Each method returns a new dataset reading from the one it was called on. Every element is
computed from its index and the epoch alone (a shuffle's order comes from its seed and the
epoch), so element i of epoch e can be rebuilt at any time: a resumed fit calls
``set_epoch(e)`` and asks for the batches it has not trained on. The datasets chained from one
source share one epoch count: ``on_epoch_end`` (which fit calls, and which a complete ``for``
loop over a dataset calls) moves them all to the next epoch, so that each pass over a shuffled
dataset has its own order, as with tf.data.

An element is an array or a tuple of arrays (``(x, y)``); ``map(f)`` calls ``f(x, y)`` on a
tuple, as tf.data does. After ``batch`` an element is a batch: its arrays stacked on a new first
axis.
"""
import operator
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._ops.checks import positive_int
from ..layers.arguments import normalize_seed
from ..random import draw_seed
from .py_dataset import PyDataset


def stack_elements(items):
    """Elements (arrays or equal tuples of arrays) stacked into one batch."""
    first = items[0]
    if isinstance(first, tuple):
        return tuple(stack_elements([item[k] for item in items]) for k in range(len(first)))
    try:
        return np.stack([np.asarray(item) for item in items])
    except ValueError as error:
        shapes = sorted({np.shape(item) for item in items})
        raise ValueError(f"Expected the elements of a batch to have one shape, received shapes "
                         f"{shapes}") from error


def _row(batch, r):
    if isinstance(batch, tuple):
        return tuple(_row(part, r) for part in batch)
    return batch[r]


def _rows(batch):
    return len(batch[0]) if isinstance(batch, tuple) else len(batch)


def _apply(fn, element):
    return fn(*element) if isinstance(element, tuple) else fn(element)


def _count_arg(value, name):
    """A tf.data count: an int >= 0, or -1 for all."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < -1:
        raise ValueError(f"Expected {name} to be an int >= 0 (or -1: all), received "
                         f"{name}={value!r}")
    return int(value)


class _Clock:
    """The epoch count that the datasets chained from one source share."""
    __slots__ = ("epoch",)

    def __init__(self):
        self.epoch = 0


class Dataset(PyDataset):
    """Elements by index (batches once batched). Subclasses define ``__len__`` and
    ``_element(index)``; ``_elements(indices)`` (the batch of those elements) may be
    overridden where fetching many at once is cheaper than one by one (decoding on threads)."""

    def __init__(self, source=None):
        super().__init__()
        self._source = source
        self._clock = _Clock() if source is None else source._clock

    # -- what the chain shares -------------------------------------------------------------
    @property
    def class_names(self):
        """The class names of the image folder this dataset reads from."""
        return self._source.class_names

    @property
    def file_paths(self):
        """The image files this dataset reads from, in their (seeded) index order."""
        return self._source.file_paths

    @property
    def batch_size(self):
        """The batch size, or None when the elements are single samples."""
        return self._source.batch_size

    def _batch_sizes(self):
        """The number of samples in each element (batch), in this epoch's order."""
        if self.batch_size is None:
            raise ValueError("Expected a batched dataset (call .batch(batch_size) first)")
        return self._source._batch_sizes()

    @property
    def epoch(self):
        """The epoch whose order the dataset serves (0 first)."""
        return self._clock.epoch

    def set_epoch(self, epoch):
        """Serve epoch ``epoch``'s order (this dataset and those chained with it)."""
        epoch = operator.index(epoch)
        if epoch < 0:
            raise ValueError(f"Expected epoch >= 0, received epoch={epoch}")
        self._clock.epoch = epoch

    def on_epoch_end(self):
        self._clock.epoch += 1

    # -- access ----------------------------------------------------------------------------
    def __len__(self):
        return len(self._source)

    def _element(self, index):
        return self._source._element(index)

    def _elements(self, indices):
        return stack_elements([self._element(int(i)) for i in indices])

    def __getitem__(self, index):
        n = len(self)
        index = operator.index(index)
        if not -n <= index < n:
            raise IndexError(f"Expected an index in [-{n}, {n}) of a dataset of {n} elements, "
                             f"received {str(index)[:40]}")
        return self._element(index % n)

    def __iter__(self):
        """This epoch's elements in order; a complete pass moves to the next epoch."""
        for i in range(len(self)):
            yield self._element(i)
        self.on_epoch_end()

    # -- the chained methods ---------------------------------------------------------------
    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """Apply ``map_func`` to each element (each batch, once batched); a tuple element is
        passed as separate arguments. ``num_parallel_calls`` and ``deterministic`` are accepted
        for tf.data scripts: fit's workers already fetch batches on threads, in order."""
        if not callable(map_func):
            raise TypeError(f"Expected map_func to be callable, received {map_func!r}")
        return _Mapped(self, map_func)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
              deterministic=None, name=None):
        """Consecutive elements stacked into batches of ``batch_size`` (the last one smaller
        unless ``drop_remainder``)."""
        return _Batched(self, positive_int(batch_size, "batch_size"), bool(drop_remainder))

    def unbatch(self, name=None):
        """The samples of each batch, one element each."""
        if self.batch_size is None:
            raise ValueError("Expected a batched dataset to unbatch, received one whose elements "
                             "are single samples")
        return _Unbatched(self)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        """The elements in a random order drawn from ``seed`` and the epoch (a fresh order each
        epoch unless ``reshuffle_each_iteration=False``). The whole dataset is permuted, as a
        tf.data shuffle with a buffer as large as the dataset: random access makes that free.
        ``buffer_size`` is checked and otherwise unused."""
        positive_int(buffer_size, "buffer_size")
        seed = normalize_seed(seed)
        return _Shuffled(self, draw_seed() if seed is None else seed,
                         bool(reshuffle_each_iteration))

    def take(self, count, name=None):
        """The first ``count`` elements (all of them for -1)."""
        return _Taken(self, _count_arg(count, "count"))

    def cache(self, filename="", name=None):
        """Each element kept in memory once computed. As with tf.data, a cache after a shuffle
        keeps the first epoch's order. Only the in-memory cache (``filename=""``) is offered."""
        if filename != "":
            raise ValueError(f"Expected filename=\"\" (fastcnn caches in memory only), received "
                             f"filename={filename!r}")
        return _Cached(self)

    def prefetch(self, buffer_size, name=None):
        """Compute up to ``buffer_size`` elements ahead on a background thread when iterated, and
        fetch as many batches ahead in fit (``max_queue_size``). -1 (tf.data's AUTOTUNE) keeps
        the default."""
        buffer_size = _count_arg(buffer_size, "buffer_size")
        return _Prefetched(self, buffer_size)


class _Mapped(Dataset):
    def __init__(self, source, fn):
        super().__init__(source)
        self._fn = fn

    def _element(self, index):
        return _apply(self._fn, self._source._element(index))

    def _elements(self, indices):
        if self.batch_size is not None:
            return super()._elements(indices)
        # The source fetches its elements together (an image folder decodes them on threads).
        fetched = self._source._elements(indices)
        return stack_elements([_apply(self._fn, _row(fetched, k)) for k in range(len(indices))])


class _Batched(Dataset):
    def __init__(self, source, batch_size, drop_remainder):
        super().__init__(source)
        self._size = batch_size
        self._drop = drop_remainder

    @property
    def batch_size(self):
        return self._size

    def _batch_sizes(self):
        full, rest = divmod(len(self._source), self._size)
        return [self._size] * full + ([rest] if rest and not self._drop else [])

    def __len__(self):
        full, rest = divmod(len(self._source), self._size)
        return full + (1 if rest and not self._drop else 0)

    def _element(self, index):
        start = index * self._size
        stop = min(start + self._size, len(self._source))
        return self._source._elements(np.arange(start, stop))


class _Unbatched(Dataset):
    def __init__(self, source):
        super().__init__(source)
        self._layout = None  # (epoch, offsets of each batch's first sample)
        self._last = None    # (epoch, batch index, batch): the batch rows are read from

    @property
    def batch_size(self):
        return None

    def _offsets(self):
        layout = self._layout
        if layout is None or layout[0] != self.epoch:
            sizes = self._source._batch_sizes()
            layout = self._layout = (self.epoch, np.concatenate([[0], np.cumsum(sizes)]))
        return layout[1]

    def __len__(self):
        return int(self._offsets()[-1])

    def _element(self, index):
        offsets = self._offsets()
        b = int(np.searchsorted(offsets, index, side="right")) - 1
        last = self._last
        if last is None or last[:2] != (self.epoch, b):
            batch = self._source._element(b)
            if _rows(batch) != offsets[b + 1] - offsets[b]:
                raise ValueError(f"Expected batch {b} to hold {offsets[b + 1] - offsets[b]} "
                                 f"samples, received {_rows(batch)} (a map that changes the "
                                 f"batch size cannot be unbatched)")
            last = self._last = (self.epoch, b, batch)
        return _row(last[2], index - offsets[b])


class _Shuffled(Dataset):
    def __init__(self, source, seed, reshuffle):
        super().__init__(source)
        self._seed = seed
        self._reshuffle = reshuffle
        self._order = None  # (epoch, permutation)

    def _permutation(self):
        epoch = self.epoch if self._reshuffle else 0
        order = self._order
        if order is None or order[0] != epoch:
            perm = np.random.default_rng((self._seed, epoch)).permutation(len(self._source))
            order = self._order = (epoch, perm)
        return order[1]

    def _batch_sizes(self):
        sizes = np.asarray(super()._batch_sizes())
        return list(sizes[self._permutation()])

    def _element(self, index):
        return self._source._element(int(self._permutation()[index]))

    def _elements(self, indices):
        return self._source._elements(self._permutation()[np.asarray(indices)])


class _Taken(Dataset):
    def __init__(self, source, count):
        super().__init__(source)
        self._count = count

    def __len__(self):
        n = len(self._source)
        return n if self._count == -1 else min(self._count, n)

    def _batch_sizes(self):
        return super()._batch_sizes()[:len(self)]

    def _elements(self, indices):
        return self._source._elements(indices)


class _Cached(Dataset):
    def __init__(self, source):
        super().__init__(source)
        self._store = {}

    def _element(self, index):
        try:
            return self._store[index]
        except KeyError:
            value = self._store[index] = self._source._element(index)
            return value

    def _elements(self, indices):
        missing = [int(i) for i in indices if int(i) not in self._store]
        if missing:
            fetched = self._source._elements(np.asarray(missing))
            for k, i in enumerate(missing):
                self._store[i] = _row(fetched, k)
        return stack_elements([self._store[int(i)] for i in indices])


class _Prefetched(Dataset):
    def __init__(self, source, buffer_size):
        super().__init__(source)
        if buffer_size >= 1:
            self.max_queue_size = buffer_size
        self._depth = self.max_queue_size

    def _elements(self, indices):
        return self._source._elements(indices)

    def __iter__(self):
        pending = deque()
        with ThreadPoolExecutor(1, thread_name_prefix="fastcnn-prefetch") as pool:
            try:
                for i in range(len(self)):
                    pending.append(pool.submit(self._element, i))
                    if len(pending) > self._depth:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()
        self.on_epoch_end()
