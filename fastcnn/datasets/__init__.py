"""Keras-style dataset loaders: ``mnist``, ``fashion_mnist`` and ``cifar10``, each with
``load_data()``.

Files come from ``$FASTCNN_DATA/<dataset>/``, the cache ``~/.fastcnn/datasets/<dataset>/`` or a
download, and are checked against their published sha256 before they are parsed.
"""
from . import cifar10, fashion_mnist, mnist
from ._files import ChecksumError, DatasetUnavailableError

__all__ = ["mnist", "fashion_mnist", "cifar10", "ChecksumError", "DatasetUnavailableError"]
