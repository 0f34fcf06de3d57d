"""MNIST handwritten digits (LeCun, Cortes, Burges), read from the four published IDX files.

See ``fastcnn.datasets._files`` for where the files are looked for and how they are checked.
"""
from ._files import DOWNLOAD_TIMEOUT, FileSpec, idx_files, load_idx_dataset

# Mirror used by torchvision; it serves the original IDX .gz files byte for byte.
DEFAULT_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"

# Sizes and sha256 digests of the published files (torchvision checks the same files by md5).
FILES = idx_files(
    train_images=FileSpec(9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    train_labels=FileSpec(28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    test_images=FileSpec(1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    test_labels=FileSpec(4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
)


def load_data(*, cache_dir=None, mirror=None, timeout=DOWNLOAD_TIMEOUT):
    """Load MNIST as Keras does: ``((x_train, y_train), (x_test, y_test))``.

    x_train is uint8 of shape (60000, 28, 28), y_train uint8 of shape (60000,) with values 0-9;
    the test split has 10000 images.

    Args:
        cache_dir: folder that holds the ``mnist/`` cache; default ``$FASTCNN_HOME/datasets`` or
            ``~/.fastcnn/datasets``.
        mirror: base URL the four files are downloaded from; default
            ``$FASTCNN_DATASETS_MIRROR/mnist/`` or the published mirror.
        timeout: seconds the download of the missing files may take in all (default 300, five
            minutes; None for no limit); each connect or read may also stall at most 60 s.

    Raises:
        DatasetUnavailableError (an OSError): a file is missing and cannot be downloaded, or
            its download runs past ``timeout``.
        ChecksumError (a ValueError): a file is not the published one.
        ValueError: a file is not well-formed IDX.
    """
    return load_idx_dataset("mnist", FILES, DEFAULT_MIRROR, cache_dir=cache_dir, mirror=mirror,
                            timeout=timeout)
