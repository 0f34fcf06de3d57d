"""Distance kernels against their NumPy twins, and KNeighborsClassifier against brute force."""
import inspect

import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ops import distance as distance_ops
from fastcnn._ext import distance
from fastcnn.extras import neighbors
from fastcnn.extras.neighbors import KNeighborsClassifier
from conftest import data_dir

# (n, d, m): spans the 64 x 256 x 256 tiles, the 4-row groups, odd depths and single samples.
SHAPES = [(1, 1, 1), (3, 5, 7), (67, 300, 517), (130, 513, 260), (5, 2, 1000)]


@pytest.mark.parametrize("name", ["pairwise_distances", "k_smallest"])
def test_signature_matches_reference(name):
    params = inspect.signature(getattr(distance, name)).parameters
    assert list(params) == list(inspect.signature(getattr(ref, name)).parameters)


PATHS = ("scalar", "avx2", "avx512")


@pytest.fixture(params=PATHS[:PATHS.index(distance.simd_path()) + 1])
def simd_path(request):
    previous = distance.simd_path()
    assert distance._set_simd_path(request.param) == request.param
    yield request.param
    distance._set_simd_path(previous)


@pytest.mark.parametrize("n,d,m", SHAPES)
@pytest.mark.parametrize("l1", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_distances_match_reference(n, d, m, l1, dtype, simd_path, rng):
    x = rng.standard_normal((n, d)).astype(dtype)
    yt = rng.standard_normal((d, m)).astype(dtype)
    out, expected = np.full((n, m), np.nan, dtype), np.zeros((n, m), dtype)
    distance.pairwise_distances(x, yt, out, l1, 2)
    ref.pairwise_distances(x, yt, expected, l1, 2)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * d)
    # Every element is owned by one thread and summed in feature order.
    single = np.empty_like(out)
    distance.pairwise_distances(x, yt, single, l1, 1)
    np.testing.assert_array_equal(out, single)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_k_smallest_matches_stable_sort(dtype, rng):
    # Small integers force many ties; NaN must sort last.
    dist = rng.integers(0, 6, (37, 300)).astype(dtype)
    dist[3, ::7] = np.nan
    dist[4] = np.nan
    for k in (1, 5, 300):
        index, values = np.empty((37, k), np.intp), np.empty((37, k), dtype)
        ref_index, ref_values = np.empty_like(index), np.empty_like(values)
        distance.k_smallest(dist, index, values, 2)
        ref.k_smallest(dist, ref_index, ref_values, 2)
        np.testing.assert_array_equal(index, ref_index)
        np.testing.assert_array_equal(values, ref_values)


def test_kernels_reject_mismatched_shapes():
    x, yt = np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="Expected x"):
        distance.pairwise_distances(x, yt, np.zeros((2, 5), np.float32), True, 1)
    with pytest.raises(ValueError, match="k <= 5"):
        distance.k_smallest(np.zeros((2, 5), np.float32), np.zeros((2, 6), np.intp),
                            np.zeros((2, 6), np.float32), 1)
    with pytest.raises(ValueError, match="metric"):
        distance_ops.pairwise_distances(x, np.zeros((3, 5)), "cosine")


def brute_force_predict(x_train, y_train, x_test, k, metric):
    """The obvious kNN: full float64 distances, a stable sort, then the smallest top-voted label."""
    a = x_train.reshape(len(x_train), -1).astype(np.float64)
    b = x_test.reshape(len(x_test), -1).astype(np.float64)
    diff = b[:, None, :] - a[None, :, :]
    dist = np.abs(diff).sum(-1) if metric == "l1" else (diff * diff).sum(-1)
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    labels = np.unique(y_train)
    votes = (y_train[nearest][:, :, None] == labels).sum(axis=1)
    return labels[votes.argmax(axis=1)]


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("k", [1, 4, 5])
def test_predict_matches_brute_force(metric, k, rng, monkeypatch):
    # Small integer pixels keep float32 distances exact, so ties in distance and in the vote
    # really happen and must be broken the same way; a tiny chunk exercises the chunk loop.
    monkeypatch.setattr(neighbors, "CHUNK_VALUES", 500)
    x_train = rng.integers(0, 3, (200, 4, 3, 2)).astype(np.uint8)
    y_train = rng.integers(0, 4, 200) * 3 + 1
    x_test = rng.integers(0, 3, (61, 4, 3, 2)).astype(np.uint8)
    knn = KNeighborsClassifier(n_neighbors=k, metric=metric).fit(x_train, y_train)
    expected = brute_force_predict(x_train, y_train, x_test, k, metric)
    np.testing.assert_array_equal(knn.predict(x_test), expected)
    assert knn.score(x_test, expected) == 1.0
    proba = knn.predict_proba(x_test)
    assert proba.shape == (61, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_kneighbors_distances_and_training_points():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]], np.float32)
    knn = KNeighborsClassifier(n_neighbors=2).fit(x, [0, 1, 0])
    dist, index = knn.kneighbors(np.array([[0.0, 0.0]]))
    np.testing.assert_array_equal(index, [[0, 2]])
    np.testing.assert_allclose(dist, [[0.0, np.sqrt(2.0)]], rtol=1e-6)
    dist, index = KNeighborsClassifier(2, metric="l1").fit(x, [0, 1, 0]).kneighbors([[3, 4]])
    np.testing.assert_array_equal(index, [[1, 2]])
    np.testing.assert_allclose(dist, [[0.0, 5.0]])


def test_tied_vote_goes_to_smallest_label():
    x = np.array([[0.0], [1.0], [-1.0], [2.0]], np.float32)
    knn = KNeighborsClassifier(n_neighbors=2, metric="l1").fit(x, ["b", "a", "c", "a"])
    assert knn.predict([[0.0]]).tolist() == ["a"]  # neighbours b (0) and a (1): a < b


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match=r"positive int, received n_neighbors=0"):
        KNeighborsClassifier(n_neighbors=0)
    with pytest.raises(ValueError, match=r'metric "l1" or "l2", received metric=\'cosine\''):
        KNeighborsClassifier(metric="cosine")
    knn = KNeighborsClassifier(n_neighbors=3)
    with pytest.raises(RuntimeError, match="fit"):
        knn.predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"n_neighbors <= the 2 training samples"):
        knn.fit(np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValueError, match=r"Expected y of shape \(4,\)"):
        knn.fit(np.zeros((4, 2)), [0, 1])
    with pytest.raises(TypeError, match="Expected x to hold real numbers"):
        knn.fit(np.array([["a", "b"]] * 4), [0, 1, 2, 3])
    knn.fit(np.zeros((4, 2, 3)), [[0], [1], [2], [3]])
    with pytest.raises(ValueError, match=r"x with 6 values per sample, as in fit, received 5"):
        knn.predict(np.zeros((1, 5)))


def test_mnist_subset_accuracy():
    from fastcnn.datasets import mnist
    data_dir()
    (x, y), (xt, yt) = mnist.load_data()
    knn = KNeighborsClassifier(n_neighbors=3, metric="l2").fit(x[:2000], y[:2000])
    assert knn.score(xt[:500], yt[:500]) > 0.85
