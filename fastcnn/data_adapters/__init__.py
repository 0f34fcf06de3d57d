"""The data fit, evaluate and predict take, one batch at a time: arrays (``ArrayAdapter``),
Python generators and iterables (``GeneratorAdapter``) and PyDatasets (``PyDatasetAdapter``),
with the loss weights of ``sample_weight`` and ``class_weight``, the batches each epoch takes
(``Passes``), and the thread that prepares the next batch while the current one trains
(``Prefetcher``)."""
import numpy as np

from ..utils.py_dataset import PyDataset
from .array_adapter import ArrayAdapter, epoch_order
from .batches import StepError, unpack_batch
from .generator_adapter import GeneratorAdapter
from .passes import Passes
from .prefetch import RING, Prefetcher
from .py_dataset_adapter import PyDatasetAdapter
from .weights import check_class_weight, class_weights, sample_weights

__all__ = ["RING", "ArrayAdapter", "GeneratorAdapter", "Passes", "Prefetcher", "PyDatasetAdapter",
           "StepError", "check_class_weight", "class_weights", "epoch_order", "is_batched",
           "sample_weights", "unpack_batch"]


def is_batched(data):
    """Whether ``data`` serves its own batches (a PyDataset, a generator or another iterable
    that is not an array, list, tuple or dict of arrays)."""
    if isinstance(data, PyDataset):
        return True
    if data is None or isinstance(data, (np.ndarray, list, tuple, dict, str, bytes)):
        return False
    return hasattr(data, "__iter__") or hasattr(data, "__next__")
