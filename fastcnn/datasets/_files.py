"""Find, download and verify the published dataset files; decode the IDX format.

Where a dataset's files are looked for, file by file:

1. ``$FASTCNN_DATA/<dataset>/`` when the environment variable ``FASTCNN_DATA`` is set. These files
   belong to the user: a file there that fails its checksum raises ``ChecksumError`` and is left
   alone.
2. The cache, ``<cache_dir>/<dataset>/``. ``cache_dir`` is the loader's argument, else
   ``$FASTCNN_HOME/datasets``, else ``~/.fastcnn/datasets``. A cached file that fails its checksum
   is deleted and downloaded once more.
3. Otherwise the file is downloaded into the cache from the loader's ``mirror=`` argument (the
   dataset's own base URL), else from ``$FASTCNN_DATASETS_MIRROR/<dataset>/`` (a root laid out
   like ``FASTCNN_DATA``, so a static server of such a folder is a mirror), else from the
   dataset's published location.

A download has two limits: each connect or read may stall at most ``TIMEOUT`` seconds, and the
files one ``load_data`` call downloads must all arrive within its ``timeout`` argument (default
``DOWNLOAD_TIMEOUT``, five minutes; ``None`` for none), so a mirror that trickles bytes cannot
keep it busy forever. The deadline is checked between socket reads, so a read that stalls right
before it may end up to ``TIMEOUT`` seconds later. A download past the deadline raises
``DatasetUnavailableError`` and leaves nothing in the cache.

Every file's size and sha256 are checked against the published values before a single byte of
it is parsed, and the bytes that were checked are the bytes handed to the parser: nothing is
read twice from disk.
"""
import gzip
import hashlib
import math
import numbers
import os
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

# Seconds a single connect or read may stall; urllib applies it per socket operation.
TIMEOUT = 60
# Seconds all the files of one load_data call may take to download: the default of its timeout=.
DOWNLOAD_TIMEOUT = 300
# Bytes asked of the socket at a time; the deadline is checked between reads.
CHUNK = 1 << 16

IDX_IMAGES = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS = 2049  # 0x00000801: unsigned bytes, 1 dimension


class FileSpec(NamedTuple):
    """A published file: its size in bytes and its sha256 hex digest."""

    size: int
    sha256: str


class DatasetUnavailableError(OSError):
    """A dataset file is neither on disk nor downloadable (offline, mirror down, cache unwritable).

    The message names the missing files and the folders they can be put in.
    """


class ChecksumError(ValueError):
    """A dataset file's bytes differ from the published ones; they are never parsed."""


def fetch(dataset, files, default_mirror, *, cache_dir=None, mirror=None,
          timeout=DOWNLOAD_TIMEOUT):
    """Return ``{file name: verified bytes}`` for every file in ``files`` (name -> FileSpec);
    the downloads among them must end within ``timeout`` seconds (None: no overall limit)."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
                                or not 0 < timeout < math.inf):
        raise ValueError(f"Expected timeout to be a positive number of seconds or None, "
                         f"received timeout={timeout!r}")
    deadline = None if timeout is None else time.monotonic() + timeout
    user_dir = _user_data_dir(dataset)
    cache = _cache_root(cache_dir) / dataset
    base_url = _base_url(dataset, default_mirror, mirror)
    blobs = {}
    for name, spec in files.items():
        if user_dir is not None and (user_dir / name).is_file():
            data = _read_verified(user_dir / name, spec)
            if data is None:
                raise ChecksumError(
                    f"{user_dir / name} is not the published file ({spec.size} bytes, "
                    f"sha256 {spec.sha256}); replace it or remove it to download a fresh copy")
            blobs[name] = data
            continue
        path = cache / name
        if path.is_file():
            data = _read_verified(path, spec)
            if data is not None:
                blobs[name] = data
                continue
            path.unlink()  # truncated or corrupt: download it once more, below
        url = base_url + name
        try:
            data = _download(url, spec, deadline, timeout)
            _atomic_write(path, data)
        except OSError as err:
            raise DatasetUnavailableError(
                _unavailable_message(dataset, files, default_mirror, url, err, user_dir, cache)
            ) from err
        blobs[name] = data
    return blobs


IDX_SPLITS = ("train", "t10k")


def idx_file_names(split):
    """The images and the labels file of a split ("train" or "t10k") in the MNIST layout."""
    return f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz"


def idx_files(train_images, train_labels, test_images, test_labels):
    """The ``files`` table (name -> FileSpec) of a dataset in the MNIST layout."""
    names = [name for split in IDX_SPLITS for name in idx_file_names(split)]
    return dict(zip(names, (train_images, train_labels, test_images, test_labels)))


def load_idx_dataset(dataset, files, default_mirror, *, cache_dir=None, mirror=None,
                     timeout=DOWNLOAD_TIMEOUT):
    """Fetch the four MNIST-layout IDX files; return ``((x_train, y_train), (x_test, y_test))``."""
    blobs = fetch(dataset, files, default_mirror, cache_dir=cache_dir, mirror=mirror,
                  timeout=timeout)
    splits = []
    for split in IDX_SPLITS:
        images, labels = idx_file_names(split)
        x = read_idx(blobs[images], IDX_IMAGES, images)
        y = read_idx(blobs[labels], IDX_LABELS, labels)
        if x.shape[1:] != (28, 28) or len(x) != len(y):
            raise ValueError(f"{dataset}: {images} holds images of shape {x.shape} but {labels} "
                             f"holds {len(y)} labels; expected (N, 28, 28) images and N labels")
        if y.size and y.max() > 9:
            raise ValueError(f"{dataset}: {labels} holds label {y.max()}; expected 0 to 9")
        splits.append((x, y))
    return tuple(splits)


def read_idx(data, magic, source):
    """Decode a gzipped IDX file of unsigned bytes into a writable uint8 array.

    ``magic`` is IDX_IMAGES or IDX_LABELS; its low byte is the number of dimensions. Raises
    ValueError when the magic, the header or the payload length is not what the header promises.
    """
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{source}: not a valid gzip stream ({err})") from err
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{source}: {len(raw)} bytes is shorter than an IDX header")
    (found,) = struct.unpack_from(">I", raw)
    if found != magic:
        raise ValueError(f"{source}: IDX magic {found}, expected {magic}")
    shape = struct.unpack_from(f">{ndim}I", raw, 4)
    expected = header + math.prod(shape)
    if len(raw) != expected:
        raise ValueError(f"{source}: {len(raw)} bytes, but an IDX header of shape {shape} "
                         f"needs {expected}")
    # Copy: frombuffer over bytes is read-only, and Keras hands out writable arrays.
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape).copy()


def _user_data_dir(dataset):
    root = os.environ.get("FASTCNN_DATA")
    return Path(root).expanduser() / dataset if root else None


def _cache_root(cache_dir):
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    home = os.environ.get("FASTCNN_HOME") or "~/.fastcnn"
    return Path(home).expanduser() / "datasets"


def _base_url(dataset, default_mirror, mirror):
    if mirror is None:
        root = os.environ.get("FASTCNN_DATASETS_MIRROR")
        mirror = f"{root.rstrip('/')}/{dataset}/" if root else default_mirror
    return mirror if mirror.endswith("/") else mirror + "/"


def _read_verified(path, spec):
    """The file's bytes if they are the published ones, else None."""
    # The size test first, so a wrong multi-gigabyte file is never read into memory.
    if path.stat().st_size != spec.size:
        return None
    data = path.read_bytes()
    return data if _matches(data, spec) else None


def _matches(data, spec):
    return len(data) == spec.size and hashlib.sha256(data).hexdigest() == spec.sha256


def _download(url, spec, deadline, timeout):
    """The verified bytes at ``url``, complete before the time.monotonic() ``deadline`` (None:
    none; ``timeout`` names it in the error); raises ChecksumError, or OSError when the fetch
    fails or runs past the deadline."""
    # Imported here: urllib.request pulls in ssl and email, too slow for `import fastcnn`.
    import http.client
    import urllib.request

    print(f"Downloading data from {url}", file=sys.stderr)
    request = urllib.request.Request(url, headers={"User-Agent": "fastcnn"})

    def remaining():
        left = math.inf if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the download did not end within timeout={timeout} seconds")
        return left

    # One byte more than published reveals an oversized body without reading all of it.
    data, received = bytearray(spec.size + 1), 0
    try:
        # The deadline is checked between reads; a read that stalls gives up after this
        # socket timeout, so a download ends at most min(TIMEOUT, timeout) past its deadline.
        with urllib.request.urlopen(request, timeout=min(TIMEOUT, remaining())) as response, \
                memoryview(data) as view:
            while received < len(data):
                remaining()
                # readinto1: what one socket read brings; read(n) would wait for all n bytes.
                count = response.readinto1(view[received:received + CHUNK])
                if not count:
                    break
                received += count
    except TimeoutError:  # a stalled read: name the deadline when that is what it reached
        remaining()
        raise
    except http.client.HTTPException as err:  # a dropped or garbled response, not an OSError
        raise OSError(f"bad HTTP response ({err!r})") from err
    del data[received:]  # in place: the published size is the buffer's size less one
    if not _matches(data, spec):
        raise ChecksumError(f"{url} did not send the published file ({spec.size} bytes, "
                            f"sha256 {spec.sha256}); nothing was saved")
    return data


def _atomic_write(path, data):
    """Write through a temporary file in the same folder, so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _unavailable_message(dataset, files, default_mirror, url, err, user_dir, cache):
    places = [d for d in (user_dir, cache) if d is not None]
    missing = [n for n in files if not any((d / n).is_file() for d in places)]
    listing = "\n".join(f"    {n}" for n in missing)
    if user_dir is None:
        user_hint = (f"or into <folder>/{dataset}/ and set the environment variable FASTCNN_DATA "
                     f"to <folder>")
    else:
        user_hint = f"or into {user_dir} (from the environment variable FASTCNN_DATA)"
    return (f"Could not download {url}: {err}\n"
            f"To load {dataset} without network access, put these files (published at "
            f"{default_mirror}):\n{listing}\n"
            f"into {cache}\n{user_hint}.")
