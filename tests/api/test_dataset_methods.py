"""The dataset image_dataset_from_directory returns, and the tf.data methods Keras users chain
onto it (map, batch, unbatch, shuffle, take, cache, prefetch), with tf.data's semantics restated:
map calls f(x, y) on each element (each batch once batched); unbatch splits batches into
samples; shuffle draws a new order each epoch (a complete pass ends one) unless
reshuffle_each_iteration=False; take(n) keeps the first n; cache keeps what the first pass
computed (after a shuffle, its order too); prefetch changes nothing but when work is done.
Each image here is a constant grey level, 10 * its index in the sorted file list, so an element
says which file it came from."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import write_images

from fastcnn import utils

pytest.importorskip("PIL")
N = 7


@pytest.fixture
def folder(tmp_path):
    files = {f"{'a' if i < 4 else 'b'}/{i}.png": np.full((2, 3), 10 * i) for i in range(N)}
    return write_images(tmp_path / "data", files)


def _samples(folder, **kwargs):
    kwargs = {"image_size": (2, 3), "color_mode": "grayscale", "shuffle": False,
              "batch_size": None, "verbose": False, **kwargs}
    return utils.image_dataset_from_directory(folder, **kwargs)


def _ids(elements):
    """The file index of each sample of a list of (x, y) elements or batches."""
    ids = []
    for element in elements:
        x = element[0] if isinstance(element, tuple) else element
        ids.extend(np.round(x.reshape(-1, 6).mean(axis=1) / 10).astype(int).tolist()
                   if x.ndim == 4 else [int(round(x.mean() / 10))])
    return ids


def test_it_is_a_pydataset_with_class_names_through_the_chain(folder):
    ds = _samples(folder)
    assert isinstance(ds, utils.PyDataset)
    chained = ds.map(lambda x, y: (x, y)).batch(2).take(3).prefetch(1)
    assert chained.class_names == ["a", "b"]
    assert chained.file_paths == ds.file_paths
    assert len(chained) == 3 and chained.batch_size == 2


def test_indexing(folder):
    ds = _samples(folder)
    assert _ids([ds[0], ds[-1]]) == [0, N - 1]
    for bad in (N, -N - 1):
        with pytest.raises(IndexError):
            ds[bad]


def test_map_calls_f_on_each_element_or_batch(folder):
    scaled = _samples(folder).map(lambda x, y: (x / 10, y + 1))
    x, y = scaled[5]
    assert float(x.mean()) == 5 and y == 2
    batched = _samples(folder, batch_size=3).map(lambda x, y: (x.sum(axis=(1, 2, 3)), y))
    sums, labels = batched[1]
    np.testing.assert_array_equal(sums, [180, 240, 300])
    np.testing.assert_array_equal(labels, [0, 1, 1])
    # mapped samples, then batched: each sample mapped, then stacked
    images_only = _samples(folder, label_mode=None).map(lambda x: x[:1]).batch(4)
    assert images_only[0].shape == (4, 1, 3, 1)


def test_batch_and_unbatch(folder):
    batched = _samples(folder).batch(3)
    assert [len(b[1]) for b in batched] == [3, 3, 1]
    assert [len(b[1]) for b in _samples(folder).batch(3, drop_remainder=True)] == [3, 3]
    assert _ids(_samples(folder, batch_size=3).unbatch()) == list(range(N))
    rebatched = _samples(folder, batch_size=3).unbatch().batch(5)
    assert [len(b[1]) for b in rebatched] == [5, 2]
    with pytest.raises(ValueError, match="batched"):
        _samples(folder).unbatch()


def test_shuffle_draws_a_seeded_order_per_epoch(folder):
    ds = _samples(folder).shuffle(100, seed=1)
    first, second = _ids(ds), _ids(ds)  # each complete pass ends an epoch
    assert sorted(first) == sorted(second) == list(range(N))
    assert first != second
    again = _samples(folder).shuffle(100, seed=1)
    assert _ids(again) == first
    again.set_epoch(1)
    assert _ids(again) == second
    assert _ids(_samples(folder).shuffle(100, seed=2)) != first
    fixed = _samples(folder).shuffle(100, seed=1, reshuffle_each_iteration=False)
    assert _ids(fixed) == _ids(fixed)


def test_shuffled_batches_unbatch_with_the_short_batch_anywhere(folder):
    batches = _samples(folder, batch_size=3).shuffle(10, seed=0)
    for _ in range(3):
        order = _ids(batches)
        batches.set_epoch(batches.epoch - 1)
        assert _ids(batches.unbatch()) == order
        batches.on_epoch_end()


def test_take(folder):
    ds = _samples(folder)
    assert _ids(ds.take(2)) == [0, 1]
    assert len(ds.take(-1)) == N and len(ds.take(100)) == N and len(ds.take(0)) == 0
    assert [len(b[1]) for b in _samples(folder, batch_size=3).take(5).unbatch().batch(4)] == [4, 3]


def test_cache_computes_each_element_once_and_keeps_the_first_order(folder):
    calls = []

    def count(x, y):
        calls.append(1)
        return x, y

    cached = _samples(folder).map(count).cache()
    assert _ids(cached) == _ids(cached) == list(range(N))
    assert len(calls) == N
    frozen = _samples(folder).shuffle(10, seed=3).cache()
    assert _ids(frozen) == _ids(frozen)
    batched = _samples(folder).shuffle(10, seed=3).batch(2).cache()
    assert _ids(batched) == _ids(batched)


def test_prefetch_serves_the_same_elements(folder):
    plain = _samples(folder, batch_size=2, seed=4, shuffle=True)
    ahead = _samples(folder, batch_size=2, seed=4, shuffle=True).prefetch(2)
    assert ahead.max_queue_size == 2 and plain.prefetch(-1).max_queue_size == 10
    assert _ids(ahead) == _ids(plain) and ahead.epoch == 1
    assert _ids(ahead) == _ids(plain)
    iterator = iter(ahead)  # left after one element: the background thread stops cleanly
    next(iterator)
    iterator.close()


def test_batches_fetched_from_threads_at_once_are_the_same(folder):
    ds = _samples(folder, batch_size=2, seed=8, shuffle=True).map(lambda x, y: (x + 1, y))
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(ds.__getitem__, [3, 0, 2, 1] * 3))
    for i, (x, y) in zip([3, 0, 2, 1] * 3, together):
        np.testing.assert_array_equal(x, ds[i][0])
        np.testing.assert_array_equal(y, ds[i][1])


@pytest.mark.parametrize("call, message", [
    (lambda ds: ds.map(3), "callable"),
    (lambda ds: ds.batch(0), "batch_size"),
    (lambda ds: ds.take(-2), "count"),
    (lambda ds: ds.shuffle(0), "buffer_size"),
    (lambda ds: ds.shuffle(10, seed=-1), "seed"),
    (lambda ds: ds.cache("file.cache"), "filename"),
    (lambda ds: ds.prefetch(-3), "buffer_size"),
    (lambda ds: ds.set_epoch(-1), "epoch"),
])
def test_bad_arguments_are_refused(folder, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(_samples(folder))
