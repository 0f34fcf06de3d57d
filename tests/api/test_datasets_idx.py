"""fastcnn.datasets: Fashion-MNIST and the IDX reader, through tiny files written here in the
published format."""
import gzip
import http.server
import inspect
import struct
import threading
import time

import numpy as np
import pytest

from fastcnn.datasets import ChecksumError, DatasetUnavailableError, _files, cifar10, \
    fashion_mnist, mnist
from conftest import publish

pytestmark = pytest.mark.usefixtures("isolated_datasets")


def idx_gz(array):
    """A gzipped IDX file of unsigned bytes: magic 0x0800 + ndim, then the dims, big-endian."""
    header = struct.pack(f">I{array.ndim}I", 0x800 | array.ndim, *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


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


# ---- the download deadline -------------------------------------------------------------------

@pytest.fixture
def slow_mirror(tmp_path, monkeypatch):
    """A mirror on 127.0.0.1 of tiny Fashion-MNIST files that waits ``latency`` seconds before
    each response, then sends the body one byte per ``pause`` seconds (None: the headers, then
    nothing), until the test ends."""
    blobs = {name: idx_gz(a) for name, a in fashion_arrays().items()}
    publish(fashion_mnist, tmp_path / "published", blobs, monkeypatch)
    stop, settings = threading.Event(), {"latency": 0, "pause": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = blobs[self.path.rsplit("/", 1)[-1]]
            if stop.wait(settings["latency"]):
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if settings["pause"] == 0:
                self.wfile.write(body)
                return
            for byte in body:
                if stop.wait(settings["pause"] or 60):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", settings
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.parametrize("pause", [0.2, None], ids=["trickle", "stall"])
def test_a_slow_mirror_is_given_up_at_the_deadline(slow_mirror, tmp_path, pause):
    # Every read brings a byte well within the socket timeout, so only an overall deadline
    # ends the download; a mirror that stalls outright ends at the same deadline.
    url, settings = slow_mirror
    settings["pause"] = pause
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError, match=r"within timeout=1\.5 seconds"):
        fashion_mnist.load_data(cache_dir=tmp_path / "cache", mirror=url, timeout=1.5)
    assert 1.5 <= time.monotonic() - start < 6
    cache = tmp_path / "cache" / "fashion_mnist"
    assert not cache.exists() or list(cache.iterdir()) == []  # no partial file


def test_the_deadline_covers_every_file_of_the_call(slow_mirror, tmp_path):
    url, settings = slow_mirror
    (x, _), _ = fashion_mnist.load_data(cache_dir=tmp_path / "fast", mirror=url, timeout=5)
    assert x.shape == (7, 28, 28)
    # Each file alone arrives in time; the four together do not. The files that arrived stay.
    settings["latency"] = 0.4
    with pytest.raises(DatasetUnavailableError, match="timeout=1.0 seconds") as info:
        fashion_mnist.load_data(cache_dir=tmp_path / "slow", mirror=url, timeout=1.0)
    first, *others = fashion_mnist.FILES
    assert first not in str(info.value).splitlines()[0]
    cached = sorted(p.name for p in (tmp_path / "slow" / "fashion_mnist").iterdir())
    assert first in cached and len(cached) < 4 and set(cached) <= set(fashion_mnist.FILES)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "60", True])
def test_load_data_refuses_a_bad_timeout(timeout, tmp_path):
    with pytest.raises(ValueError, match="timeout"):
        fashion_mnist.load_data(cache_dir=tmp_path, timeout=timeout)


@pytest.mark.parametrize("module", [mnist, fashion_mnist, cifar10])
def test_every_loader_has_a_download_deadline_of_a_few_minutes(module):
    assert inspect.signature(module.load_data).parameters["timeout"].default == 300
