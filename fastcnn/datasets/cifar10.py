"""CIFAR-10 (Krizhevsky, 2009), read from the published python version, cifar-10-python.tar.gz.

The archive is checked against its published sha256 (see ``fastcnn.datasets._files`` for where
it is looked for), then the six batches are read straight out of it in memory: nothing is
extracted to disk, and an archive holding a member that is a link or device or that could
escape its folder is refused whole. Each batch is a Python 2 pickle, read by an unpickler that
calls nothing the pickle names (``_PlainDataUnpickler``).
"""
import io
import pickle
import tarfile
import zlib
from pathlib import PurePosixPath

import numpy as np

from ._files import DOWNLOAD_TIMEOUT, FileSpec, fetch

DEFAULT_MIRROR = "https://www.cs.toronto.edu/~kriz/"
ARCHIVE = "cifar-10-python.tar.gz"

# The sha256 is the one Keras' own cifar10 loader pins; the CIFAR page publishes the same file's
# md5, c58f30108f718f92721af3b95e74349a.
FILES = {
    ARCHIVE: FileSpec(
        170498071, "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
}

_FOLDER = "cifar-10-batches-py"
_TRAIN_BATCHES = [f"{_FOLDER}/data_batch_{i}" for i in range(1, 6)]
_TEST_BATCH = f"{_FOLDER}/test_batch"
_IMAGE_BYTES = 3 * 32 * 32


def load_data(*, cache_dir=None, mirror=None, timeout=DOWNLOAD_TIMEOUT):
    """Load CIFAR-10 as Keras does: ``((x_train, y_train), (x_test, y_test))``.

    x_train is uint8 of shape (50000, 32, 32, 3) (channels last), y_train uint8 of shape
    (50000, 1) with values 0-9; the test split has 10000 images.

    Args:
        cache_dir: folder that holds the ``cifar10/`` cache; default ``$FASTCNN_HOME/datasets``
            or ``~/.fastcnn/datasets``.
        mirror: base URL the archive is downloaded from; default
            ``$FASTCNN_DATASETS_MIRROR/cifar10/`` or the CIFAR page.
        timeout: seconds the archive's download may take (default 300, five minutes; None for
            no limit); each connect or read may also stall at most 60 s.

    Raises:
        DatasetUnavailableError (an OSError): the archive is missing and cannot be downloaded,
            or its download runs past ``timeout``.
        ChecksumError (a ValueError): the archive is not the published one.
        ValueError: the archive or a batch in it is malformed or unsafe.
    """
    archive = fetch("cifar10", FILES, DEFAULT_MIRROR, cache_dir=cache_dir, mirror=mirror,
                    timeout=timeout)
    members = _read_members(archive[ARCHIVE], _TRAIN_BATCHES + [_TEST_BATCH])
    train = _stack([_parse_batch(name, members[name]) for name in _TRAIN_BATCHES])
    test = _stack([_parse_batch(_TEST_BATCH, members[_TEST_BATCH])])
    return train, test


def _read_members(archive, wanted):
    """``{name: bytes}`` of the ``wanted`` members, read in one streaming pass."""
    found = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r|gz") as tar:
            for member in tar:
                name = _checked_name(member)
                if name in wanted:
                    if name in found:
                        raise ValueError(f"{ARCHIVE}: member {name} appears twice")
                    found[name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise ValueError(f"{ARCHIVE}: not a readable tar.gz archive ({err})") from err
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ValueError(f"{ARCHIVE}: missing members {missing}")
    return found


def _checked_name(member):
    # Nothing is extracted, so no member could do harm here; but the published archive holds
    # only plain files and folders, and an archive that holds anything else is not it.
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{ARCHIVE}: member {member.name!r} points outside the archive")
    if not (member.isfile() or member.isdir()):
        raise ValueError(f"{ARCHIVE}: member {member.name!r} is a link or device file")
    return str(path)


def _parse_batch(name, payload):
    """Decode one batch into (uint8 images (n, 3072) as channel planes, uint8 labels (n,))."""
    try:
        # encoding="bytes": the batches were written by Python 2, whose str is our bytes.
        batch = _PlainDataUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except Exception as err:  # whatever undecodable bytes raise, the batch is malformed
        raise ValueError(f"{name}: not a plain-data pickle ({err})") from err
    if type(batch) is not dict or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{name}: expected a dict with keys b'data' and b'labels'")
    images = _uint8_matrix(batch[b"data"], name)
    labels = batch[b"labels"]
    y = np.asarray(labels) if type(labels) is list else None
    if y is None or y.dtype.kind not in "iu" or y.shape != (len(images),):
        raise ValueError(f"{name}: b'labels' must be a list of {len(images)} ints")
    if y.min() < 0 or y.max() > 9:
        raise ValueError(f"{name}: labels range from {y.min()} to {y.max()}; expected 0 to 9")
    return images, y.astype(np.uint8)


def _uint8_matrix(value, name):
    """The (n, 3072) uint8 array that a recorded numpy reconstruction describes."""
    state = value.state if isinstance(value, _Recorded) and value.kind == "array" else None
    if not (type(state) is tuple and len(state) == 5 and value.args[:1] == (_NDARRAY,)):
        raise ValueError(f"{name}: b'data' is not a pickled numpy array")
    _version, shape, dtype, fortran_order, raw = state
    if not (isinstance(dtype, _Recorded) and dtype.kind == "dtype"
            and dtype.args[:1] in (("u1",), (b"u1",))):
        raise ValueError(f"{name}: b'data' is not a uint8 array")
    if not (type(shape) is tuple and len(shape) == 2 and all(type(d) is int for d in shape)
            and shape[0] > 0 and shape[1] == _IMAGE_BYTES and not fortran_order
            and type(raw) is bytes and len(raw) == shape[0] * shape[1]):
        raise ValueError(f"{name}: b'data' must be a C-ordered (n, {_IMAGE_BYTES}) array")
    return np.frombuffer(raw, np.uint8).reshape(shape)


def _stack(batches):
    """Keras' (x, y): channels-last images (N, 32, 32, 3) and labels (N, 1), both uint8."""
    x = np.empty((sum(len(y) for _, y in batches), 32, 32, 3), np.uint8)
    start = 0
    for images, y in batches:
        # The batches store each image as three 32x32 channel planes.
        x[start:start + len(y)] = images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        start += len(y)
    return x, np.concatenate([y for _, y in batches]).reshape(-1, 1)


class _Recorded:
    """What a numpy constructor named by a pickle was asked to build, recorded and never built."""

    __slots__ = ("kind", "args", "state")

    def __init__(self, kind, args):
        self.kind, self.args, self.state = kind, args, None

    def __setstate__(self, state):
        self.state = state


# What `numpy.ndarray` unpickles to; only ever compared by identity.
_NDARRAY = object()


# The stand-ins take *args only: the attributes a pickle can set on a function (__defaults__,
# __dict__ entries) then cannot change what it does.
def _record_array(*args):
    return _Recorded("array", args)


def _record_dtype(*args):
    return _Recorded("dtype", args)


def _latin1(*args):
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1").
    if len(args) != 2 or type(args[0]) is not str or args[1] != "latin1":
        raise pickle.UnpicklingError("_codecs.encode is allowed only as (str, 'latin1')")
    return args[0].encode("latin1")


_STAND_INS = {
    ("numpy.core.multiarray", "_reconstruct"): _record_array,  # numpy 1, as in the archive
    ("numpy._core.multiarray", "_reconstruct"): _record_array,  # numpy 2
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _record_dtype,
    ("_codecs", "encode"): _latin1,
}


class _PlainDataUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, tuples, bytes, str and numbers, plus inert numpy records.

    A pickle can run code only through the globals it names, and find_class resolves every
    global. The batches hold one numpy array, which a pickle can describe only by naming numpy
    functions; those few names resolve to stand-ins that record their arguments, so no numpy
    code runs on a pickle's say-so. Every other global (os.system, builtins.eval, ...) is
    refused before anything is called.
    """

    def find_class(self, module, name):
        try:
            return _STAND_INS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} refused: CIFAR-10 batches hold plain data only") from None
