"""fastcnn.datasets: the real MNIST files, the download path against a local server, and
Fashion-MNIST and CIFAR-10 through tiny files written in their published formats."""
import gzip
import hashlib
import http.server
import io
import os
import pickle
import shlex
import socket
import struct
import tarfile
import threading
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest

from fastcnn.datasets import (ChecksumError, DatasetUnavailableError, _files, cifar10,
                              fashion_mnist, mnist)
from conftest import REPO, CodeOnUnpickle

# Read before the autouse fixture below clears it for every test.
SHARED_DATA = os.environ.get("FASTCNN_DATA")
MNIST_FILES = list(mnist.FILES)
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test reads the user's cache or reaches the network unless it says so."""
    monkeypatch.setenv("FASTCNN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FASTCNN_DATASETS_MIRROR", closed_port_url())
    monkeypatch.delenv("FASTCNN_DATA", raising=False)


@pytest.fixture
def shared_root():
    """The folder that holds the real mnist/; CI gives FASTCNN_DATA relative to the repo root."""
    problem = None
    if not SHARED_DATA:
        problem = "FASTCNN_DATA is not set"
    else:
        root = Path(SHARED_DATA).expanduser()
        root = root if root.is_absolute() else REPO / root
        if not all((root / "mnist" / name).is_file() for name in MNIST_FILES):
            problem = f"the MNIST files are not in {root / 'mnist'}"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}; CI must provide the real datasets")
        pytest.skip(problem)
    return root.resolve()


@pytest.fixture
def server(shared_root):
    """Serves shared_root on 127.0.0.1, logs each path requested, and sends one byte flipped in
    the paths added to `tamper`."""
    requests, tamper = [], set()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(shared_root), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            if self.path not in tamper:
                return super().do_GET()
            body = bytearray((shared_root / self.path.lstrip("/")).read_bytes())
            body[len(body) // 2] ^= 0xFF
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.timeout = 0.05
    stop = threading.Event()
    deadline = time.monotonic() + 60

    def serve():  # ends with the test, or after a minute if the test never says so
        while not stop.is_set() and time.monotonic() < deadline:
            httpd.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}/",
                              requests=requests, tamper=tamper)
    finally:
        stop.set()
        thread.join(5)
        httpd.server_close()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_real_mnist(splits):
    (x_train, y_train), (x_test, y_test) = splits
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert np.bincount(y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == MNIST_TEST_COUNTS
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert int(x_train.sum(dtype=np.int64)) == 1567298545
    assert int(x_test.sum(dtype=np.int64)) == 264923200
    assert x_train.flags.writeable and x_train.flags.c_contiguous


# ---- MNIST: the real files ------------------------------------------------------------------

def test_mnist_from_fastcnn_data(shared_root, monkeypatch, tmp_path):
    monkeypatch.setenv("FASTCNN_DATA", str(shared_root))
    check_real_mnist(mnist.load_data())
    assert not (tmp_path / "home").exists()  # read in place: nothing cached or downloaded


def test_download_is_verified_cached_and_not_repeated(server, monkeypatch, tmp_path):
    monkeypatch.setenv("FASTCNN_DATASETS_MIRROR", server.url)
    check_real_mnist(mnist.load_data())
    assert sorted(server.requests) == sorted(f"/mnist/{name}" for name in MNIST_FILES)
    cache = tmp_path / "home" / "datasets" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(MNIST_FILES)  # no temporary files
    assert all(sha256(cache / name) == spec.sha256 for name, spec in mnist.FILES.items())

    check_real_mnist(mnist.load_data())
    assert len(server.requests) == len(MNIST_FILES)


def test_corrupt_cached_files_are_fetched_again(server, tmp_path):
    cache, mirror = tmp_path / "cache", server.url + "mnist"  # no trailing slash, on purpose
    mnist.load_data(cache_dir=cache, mirror=mirror)
    truncated = cache / "mnist" / "train-labels-idx1-ubyte.gz"
    truncated.write_bytes(truncated.read_bytes()[:1000])
    flipped = cache / "mnist" / "t10k-images-idx3-ubyte.gz"
    body = bytearray(flipped.read_bytes())
    body[-1] ^= 1
    flipped.write_bytes(body)

    check_real_mnist(mnist.load_data(cache_dir=cache, mirror=mirror))
    assert server.requests[len(MNIST_FILES):] == [
        "/mnist/train-labels-idx1-ubyte.gz", "/mnist/t10k-images-idx3-ubyte.gz"]
    assert sha256(truncated) == mnist.FILES[truncated.name].sha256
    assert sha256(flipped) == mnist.FILES[flipped.name].sha256
    assert not (tmp_path / "home").exists()  # cache_dir= wins over FASTCNN_HOME


def test_wrong_bytes_from_the_server_are_neither_saved_nor_parsed(server, monkeypatch,
                                                                  tmp_path):
    monkeypatch.setenv("FASTCNN_DATASETS_MIRROR", server.url)
    parsed = []
    monkeypatch.setattr(_files, "read_idx", lambda *args: parsed.append(args))
    name = "t10k-labels-idx1-ubyte.gz"
    server.tamper.add(f"/mnist/{name}")
    cache = tmp_path / "home" / "datasets" / "mnist"
    cache.mkdir(parents=True)
    (cache / name).write_bytes(b"a truncated download")

    with pytest.raises(ChecksumError, match=name):
        mnist.load_data()
    assert server.requests.count(f"/mnist/{name}") == 1  # the bad cached copy: fetched once
    assert not (cache / name).exists()
    assert not [p.name for p in cache.iterdir() if p.name.startswith(".")]
    assert parsed == []


@pytest.mark.parametrize("with_fastcnn_data", [False, True])
def test_offline_without_files_says_which_files_go_where(tmp_path, monkeypatch,
                                                         with_fastcnn_data):
    if with_fastcnn_data:
        monkeypatch.setenv("FASTCNN_DATA", str(tmp_path / "data"))
    with pytest.raises(DatasetUnavailableError) as info:
        mnist.load_data()
    assert isinstance(info.value, OSError)
    message = str(info.value)
    cache = tmp_path / "home" / "datasets" / "mnist"
    assert str(cache) in message and "FASTCNN_DATA" in message
    assert all(name in message for name in MNIST_FILES)
    if with_fastcnn_data:
        assert str(tmp_path / "data" / "mnist") in message
    assert not cache.exists()


# ---- IDX files written here: Fashion-MNIST and the IDX reader -------------------------------

def idx_gz(array):
    """A gzipped IDX file of unsigned bytes: magic 0x0800 + ndim, then the dims, big-endian."""
    header = struct.pack(f">I{array.ndim}I", 0x800 | array.ndim, *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def publish(module, folder, blobs, monkeypatch):
    """Write `blobs` into `folder` and make them the module's published files."""
    folder.mkdir(parents=True)
    table = {}
    for name, data in blobs.items():
        (folder / name).write_bytes(data)
        table[name] = _files.FileSpec(len(data), hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(module, "FILES", table)


def fashion_arrays(n_train=7, n_test=3):
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def test_fashion_mnist_reads_the_published_layout(tmp_path, monkeypatch):
    arrays = fashion_arrays()
    publish(fashion_mnist, tmp_path / "data" / "fashion_mnist",
            {name: idx_gz(a) for name, a in arrays.items()}, monkeypatch)
    monkeypatch.setenv("FASTCNN_DATA", str(tmp_path / "data"))
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    got = [x_train, y_train, x_test, y_test]
    for array, name in zip(got, arrays):  # arrays lists the files in this order
        assert array.dtype == np.uint8
        np.testing.assert_array_equal(array, arrays[name])


def test_a_user_file_that_fails_its_checksum_is_refused_and_kept(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "fashion_mnist"
    publish(fashion_mnist, folder,
            {name: idx_gz(a) for name, a in fashion_arrays().items()}, monkeypatch)
    monkeypatch.setenv("FASTCNN_DATA", str(tmp_path / "data"))
    changed = folder / "t10k-images-idx3-ubyte.gz"
    body = bytearray(changed.read_bytes())
    body[20] ^= 1
    changed.write_bytes(body)
    with pytest.raises(ChecksumError, match=str(changed)):
        fashion_mnist.load_data()
    assert changed.read_bytes() == body


def test_images_and_labels_must_agree(tmp_path, monkeypatch):
    arrays = fashion_arrays()
    arrays["train-labels-idx1-ubyte.gz"] = arrays["train-labels-idx1-ubyte.gz"][:-1]
    publish(fashion_mnist, tmp_path / "data" / "fashion_mnist",
            {name: idx_gz(a) for name, a in arrays.items()}, monkeypatch)
    monkeypatch.setenv("FASTCNN_DATA", str(tmp_path / "data"))
    with pytest.raises(ValueError, match="labels"):
        fashion_mnist.load_data()


@pytest.mark.parametrize("blob, magic", [
    (idx_gz(np.zeros(5, np.uint8)), _files.IDX_IMAGES),                      # labels, not images
    (gzip.compress(struct.pack(">II", 2049, 5) + bytes(4)), _files.IDX_LABELS),  # payload short
    (gzip.compress(struct.pack(">II", 2049, 5) + bytes(6)), _files.IDX_LABELS),  # payload long
    (gzip.compress(struct.pack(">IH", 2051, 2)), _files.IDX_IMAGES),          # header cut short
    (struct.pack(">II", 2049, 0), _files.IDX_LABELS),                         # not gzipped
    (idx_gz(np.zeros(5, np.uint8))[:-6], _files.IDX_LABELS),                  # gzip truncated
], ids=["magic", "short", "long", "header", "not-gzip", "truncated-gzip"])
def test_read_idx_refuses_malformed_files(blob, magic):
    with pytest.raises(ValueError):
        _files.read_idx(blob, magic, "test.gz")


# ---- CIFAR-10 archives written here ---------------------------------------------------------

class Global(NamedTuple):
    module: str
    name: str


class Reduce(NamedTuple):
    func: object
    args: tuple
    state: object = None


def py2_pickle(obj):
    """Protocol-2 bytes as Python 2's cPickle and numpy 1.x wrote the CIFAR-10 batches: str as
    BINSTRING (Python 3 reads it back as bytes), arrays through numpy.core.multiarray."""
    out = bytearray(pickle.PROTO + b"\x02")

    def save(o):
        nonlocal out
        if isinstance(o, np.ndarray):  # numpy 1.x's ndarray.__reduce__, uint8 only
            dtype = Reduce(Global("numpy", "dtype"), (b"u1", 0, 1),
                           (3, b"|", None, None, None, -1, -1, 0))
            o = Reduce(Global("numpy.core.multiarray", "_reconstruct"),
                       (Global("numpy", "ndarray"), (0,), b"b"),
                       (1, o.shape, dtype, False, o.tobytes()))
        if isinstance(o, Global):  # before tuple: Global and Reduce are tuples
            out += pickle.GLOBAL + f"{o.module}\n{o.name}\n".encode()
        elif isinstance(o, Reduce):
            save(o.func)
            save(o.args)
            out += pickle.REDUCE
            if o.state is not None:
                save(o.state)
                out += pickle.BUILD
        elif o is None:
            out += pickle.NONE
        elif isinstance(o, bool):
            out += pickle.NEWTRUE if o else pickle.NEWFALSE
        elif isinstance(o, int):
            out += pickle.BININT + struct.pack("<i", o)
        elif isinstance(o, bytes):
            out += pickle.BINSTRING + struct.pack("<i", len(o)) + o
        elif isinstance(o, tuple):
            out += pickle.MARK
            for item in o:
                save(item)
            out += pickle.TUPLE
        elif isinstance(o, list):
            out += pickle.EMPTY_LIST + pickle.MARK
            for item in o:
                save(item)
            out += pickle.APPENDS
        elif isinstance(o, dict):
            out += pickle.EMPTY_DICT + pickle.MARK
            for key, value in o.items():
                save(key)
                save(value)
            out += pickle.SETITEMS
        else:
            raise TypeError(type(o))

    save(obj)
    return bytes(out + pickle.STOP)


PY3_PROTOCOL_2 = partial(pickle.dumps, protocol=2)
BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def cifar_batches(n=3):
    """{batch name: batch dict} with n random images each, laid out as the real batches."""
    rng = np.random.default_rng(1)
    return {name: {b"batch_label": name.encode(),
                   b"labels": rng.integers(0, 10, n).tolist(),
                   b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                   b"filenames": [b"image_%d.png" % i for i in range(n)]}
            for name in BATCHES}


def tar_info(name, kind=tarfile.REGTYPE, size=0, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    return info


def cifar_archive(payloads, extra=()):
    """A cifar-10-python.tar.gz: the folder, its batches and batches.meta, then `extra` infos."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(tar_info("cifar-10-batches-py", tarfile.DIRTYPE))
        payloads = {**payloads, "batches.meta": py2_pickle({b"label_names": [b"airplane"]})}
        for name, payload in payloads.items():
            tar.addfile(tar_info(f"cifar-10-batches-py/{name}", size=len(payload)),
                        io.BytesIO(payload))
        for info in extra:
            tar.addfile(info, io.BytesIO(bytes(info.size)))
    return buf.getvalue()


def publish_cifar(tmp_path, monkeypatch, archive):
    folder = tmp_path / "data" / "cifar10"
    publish(cifar10, folder, {cifar10.ARCHIVE: archive}, monkeypatch)
    monkeypatch.setenv("FASTCNN_DATA", str(tmp_path / "data"))
    return folder


@pytest.mark.parametrize("dumps", [py2_pickle, PY3_PROTOCOL_2], ids=["python2", "python3"])
def test_cifar10_reads_the_batches_inside_the_archive(tmp_path, monkeypatch, dumps):
    batches = cifar_batches()
    folder = publish_cifar(tmp_path, monkeypatch,
                           cifar_archive({name: dumps(b) for name, b in batches.items()}))
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()

    def expected(names):
        planes = np.concatenate([batches[n][b"data"] for n in names])
        labels = sum((batches[n][b"labels"] for n in names), [])
        return (planes.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1),
                np.array(labels, np.uint8).reshape(-1, 1))

    for (x, y), names in [((x_train, y_train), BATCHES[:5]), ((x_test, y_test), BATCHES[5:])]:
        want_x, want_y = expected(names)
        assert x.shape == (3 * len(names), 32, 32, 3) and x.dtype == np.uint8
        assert y.shape == (3 * len(names), 1) and y.dtype == np.uint8
        assert x.flags.c_contiguous
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(y, want_y)
    # Channel planes become the last axis: blue of pixel (row 0, column 1) is byte 2*1024 + 1.
    assert x_train[0, 0, 1, 2] == batches["data_batch_1"][b"data"][0, 2 * 1024 + 1]
    assert os.listdir(folder) == [cifar10.ARCHIVE]  # nothing extracted
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("member", [
    tar_info("../evil", size=4),
    tar_info("cifar-10-batches-py/../../evil", size=4),
    tar_info("/tmp/fastcnn-evil", size=4),
    tar_info("cifar-10-batches-py/evil", tarfile.SYMTYPE, linkname="/etc/passwd"),
    tar_info("cifar-10-batches-py/evil", tarfile.LNKTYPE, linkname="cifar-10-batches-py/x"),
    tar_info("cifar-10-batches-py/evil", tarfile.CHRTYPE),
    tar_info("cifar-10-batches-py/evil", tarfile.FIFOTYPE),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "device", "fifo"])
def test_cifar10_refuses_unsafe_members(tmp_path, monkeypatch, member):
    payloads = {name: py2_pickle(b) for name, b in cifar_batches().items()}
    # Last, after every batch: the whole archive is checked, not only up to the batches.
    publish_cifar(tmp_path, monkeypatch, cifar_archive(payloads, extra=[member]))
    with pytest.raises(ValueError, match="outside the archive|link or device"):
        cifar10.load_data()
    assert not (tmp_path / "evil").exists()


def test_cifar10_refuses_a_link_that_shadows_a_batch(tmp_path, monkeypatch):
    payloads = {name: py2_pickle(b) for name, b in cifar_batches().items()}
    del payloads["test_batch"]
    link = tar_info("cifar-10-batches-py/test_batch", tarfile.SYMTYPE, linkname="/etc/passwd")
    publish_cifar(tmp_path, monkeypatch, cifar_archive(payloads, extra=[link]))
    with pytest.raises(ValueError, match="link or device"):
        cifar10.load_data()


@pytest.mark.parametrize("writer", ["python2", "python3"])
@pytest.mark.parametrize("func", ["mkdir", "system"])
def test_cifar10_refuses_pickled_code_without_running_it(tmp_path, monkeypatch, writer, func):
    target = tmp_path / "pwned"
    arg = str(target) if func == "mkdir" else f"mkdir {shlex.quote(str(target))}"
    if writer == "python2":
        evil = py2_pickle({b"data": Reduce(Global("os", func), (arg.encode(),)), b"labels": []})
    else:
        evil = PY3_PROTOCOL_2({b"data": CodeOnUnpickle(getattr(os, func), arg), b"labels": []})
    payloads = {name: py2_pickle(b) for name, b in cifar_batches().items()}
    payloads["data_batch_2"] = evil
    publish_cifar(tmp_path, monkeypatch, cifar_archive(payloads))
    with pytest.raises(ValueError, match=f"data_batch_2.*{func}.*refused"):
        cifar10.load_data()
    assert not target.exists()


def _drop(key):
    def edit(batch):
        del batch[key]
    return edit


def _set(key, value):
    def edit(batch):
        batch[key] = value
    return edit


@pytest.mark.parametrize("edit", [
    _drop(b"labels"),
    _drop(b"data"),
    _set(b"labels", [0, 1]),
    _set(b"labels", [0, 1, 10]),
    _set(b"labels", [0, 1, -1]),
    _set(b"labels", [0, 1, "2"]),
    _set(b"labels", (0, 1, 2)),
    _set(b"data", np.zeros((3, 3072), np.float32)),
    _set(b"data", np.zeros((3, 100), np.uint8)),
    _set(b"data", np.asfortranarray(np.arange(3 * 3072).reshape(3, 3072).astype(np.uint8))),
    _set(b"data", bytes(3 * 3072)),
    _set(b"data", [[0] * 3072] * 3),
], ids=["no-labels", "no-data", "few-labels", "label-10", "label-negative", "label-str",
        "labels-tuple", "float-data", "short-rows", "fortran-order", "raw-bytes", "list-data"])
def test_cifar10_refuses_malformed_batches(tmp_path, monkeypatch, edit):
    batches = cifar_batches()
    edit(batches["test_batch"])
    payloads = {name: PY3_PROTOCOL_2(b) for name, b in batches.items()}
    publish_cifar(tmp_path, monkeypatch, cifar_archive(payloads))
    with pytest.raises(ValueError, match="test_batch"):
        cifar10.load_data()


@pytest.mark.parametrize("payload", [
    PY3_PROTOCOL_2([1, 2, 3]),
    py2_pickle({b"data": 1})[:-5],
    b"not a pickle",
], ids=["list", "truncated", "garbage"])
def test_cifar10_refuses_batches_that_are_not_dicts(tmp_path, monkeypatch, payload):
    payloads = {name: py2_pickle(b) for name, b in cifar_batches().items()}
    payloads["test_batch"] = payload
    publish_cifar(tmp_path, monkeypatch, cifar_archive(payloads))
    with pytest.raises(ValueError, match="test_batch"):
        cifar10.load_data()


def test_cifar10_refuses_an_archive_without_all_batches(tmp_path, monkeypatch):
    payloads = {name: py2_pickle(b) for name, b in cifar_batches().items()}
    del payloads["data_batch_3"]
    publish_cifar(tmp_path, monkeypatch, cifar_archive(payloads))
    with pytest.raises(ValueError, match="data_batch_3"):
        cifar10.load_data()
