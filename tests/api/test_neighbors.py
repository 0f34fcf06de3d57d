"""KNeighborsClassifier against brute force, its tie rules, argument checks and MNIST accuracy."""
import numpy as np
import pytest

from fastcnn.extras import neighbors
from fastcnn.extras.neighbors import KNeighborsClassifier
from conftest import data_dir


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
