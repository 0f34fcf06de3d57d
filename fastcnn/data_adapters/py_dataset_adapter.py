"""PyDatasets: batch ``i`` is ``dataset[i]``, fetched ahead by ``dataset.workers`` threads.

With ``shuffle``, each pass visits the batches in a permutation drawn from RNG (seed, the epoch
the pass starts in; see passes.py), so a fit resumed mid-epoch by BackupAndRestore visits the
same batches in the same order.
"""
import collections
import concurrent.futures
import itertools

import numpy as np

from .._ops.checks import check_memory
from ..utils.dataset import Dataset
from ..utils.py_dataset import PyDataset
from .batches import at_step, unpack_batch


class PyDatasetAdapter:
    resumable = True

    def __init__(self, dataset, shuffle=False, name="x"):
        if not isinstance(dataset, PyDataset):
            raise TypeError(f"Expected a fastcnn.utils.PyDataset, received {type(dataset).__name__}")
        self.dataset = dataset
        # A utils.Dataset (image_dataset_from_directory's) orders itself from (its seed, the
        # epoch), as Keras leaves a tf.data dataset's order to the dataset.
        self.shuffle = shuffle and not isinstance(dataset, Dataset)
        self.name = name
        try:
            num = dataset.num_batches
        except NotImplementedError as error:
            raise TypeError(str(error)) from None
        if num is not None and (isinstance(num, bool) or not isinstance(num, (int, np.integer))
                                or num < 1):
            raise ValueError(f"Expected {name}'s number of batches to be a positive int or "
                             f"None (endless), received {num!r:.200}")
        self.num_batches = None if num is None else int(num)

    def peek(self):
        try:
            batch = self.dataset[0]
        except Exception as error:
            raise at_step(error, 0, 0, self.name) from error
        return unpack_batch(batch, 0, self.name)

    def _order(self, seed, epoch, steps):
        if self.num_batches is None:  # endless: indices go on counting
            return itertools.count()
        if not self.shuffle:  # a range: a count of batches may be vast, and need not be held
            return iter(range(self.num_batches)[:steps])
        check_memory([("the shuffled order of its batches", 8 * self.num_batches)], self.name)
        order = np.random.default_rng([seed, epoch]).permutation(self.num_batches)
        return iter(order[:steps].tolist())

    def batches(self, seed, epoch, steps, start=0):
        dataset = self.dataset
        if steps is None:
            steps = self.num_batches
        elif self.num_batches is not None and steps > self.num_batches:
            raise ValueError(f"Expected steps of at most the {self.num_batches} batches of "
                             f"{self.name}, received {steps}")
        if isinstance(dataset, Dataset):
            dataset.set_epoch(epoch)  # so that a resumed fit gets back the epoch's order
        dataset.on_epoch_begin()
        indices = itertools.islice(self._order(seed, epoch, steps), start, steps)
        ahead = max(1, min(dataset.max_queue_size, steps - start))
        with concurrent.futures.ThreadPoolExecutor(dataset.workers,
                                                   thread_name_prefix="fastcnn-pydataset") as pool:
            pending = collections.deque()
            try:
                for index in itertools.islice(indices, ahead):
                    pending.append(pool.submit(dataset.__getitem__, index))
                for step in range(start, steps):
                    future = pending.popleft()
                    try:
                        batch = future.result()
                    except Exception as error:
                        raise at_step(error, step, epoch, self.name) from error
                    for index in itertools.islice(indices, 1):
                        pending.append(pool.submit(dataset.__getitem__, index))
                    yield unpack_batch(batch, step, self.name)
            finally:
                for future in pending:
                    future.cancel()
        dataset.on_epoch_end()
