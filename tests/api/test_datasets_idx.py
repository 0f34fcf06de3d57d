"""fastcnn.datasets: Fashion-MNIST and the IDX reader, through tiny files written here in the
published format."""
import gzip
import struct

import numpy as np
import pytest

from fastcnn.datasets import ChecksumError, _files, fashion_mnist
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
