"""fastcnn.datasets.mnist: the real MNIST files, read in place or downloaded from a local server,
checked, cached and fetched again when corrupt; the message when they cannot be had."""
import hashlib
import http.server
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fastcnn.datasets import ChecksumError, DatasetUnavailableError, _files, mnist
from conftest import REPO

pytestmark = pytest.mark.usefixtures("isolated_datasets")

# Read before the isolated_datasets fixture clears it for every test.
SHARED_DATA = os.environ.get("FASTCNN_DATA")
MNIST_FILES = list(mnist.FILES)
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


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
