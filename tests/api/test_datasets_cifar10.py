"""fastcnn.datasets.cifar10: archives written here in the published format (batches pickled as
Python 2 and Python 3 wrote them), and the refusal of unsafe or malformed ones."""
import io
import os
import pickle
import shlex
import struct
import tarfile
from functools import partial
from typing import NamedTuple

import numpy as np
import pytest

from fastcnn.datasets import cifar10
from conftest import CodeOnUnpickle, publish

pytestmark = pytest.mark.usefixtures("isolated_datasets")


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
