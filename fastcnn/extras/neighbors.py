"""k-nearest-neighbour classification, with scikit-learn's ``fit``/``predict``/``score``.

    from fastcnn.extras.neighbors import KNeighborsClassifier
    knn = KNeighborsClassifier(n_neighbors=5, metric="l1").fit(x_train, y_train)
    accuracy = knn.score(x_test, y_test)

Every sample is flattened, so images go in as they come from ``fastcnn.datasets``. Distances are
computed in float32 by the ``distance`` kernels, a chunk of queries at a time: the full
(queries x references) matrix is never held, only ``CHUNK_VALUES`` of it.
"""
import numbers

import numpy as np

from .._ops import distance
from .._ops.checks import positive_int

# Distances held at once: 32 MB in float32, e.g. 139 MNIST queries against 60000 references.
CHUNK_VALUES = 2**23


class KNeighborsClassifier:
    """Majority vote of the ``n_neighbors`` nearest training samples.

    ``metric`` is "l1" (sum of absolute differences) or "l2" (Euclidean). Among equally distant
    training samples the earlier one is nearer; a tied vote goes to the smallest label.
    """

    def __init__(self, n_neighbors=5, metric="l2"):
        self.n_neighbors = positive_int(n_neighbors, "n_neighbors")
        if metric not in distance.DISTANCE_METRICS:
            raise ValueError(f'Expected metric "l1" or "l2", received metric={metric!r}')
        self.metric = metric

    def fit(self, x, y):
        """Remember the training set; y holds one label per sample (any sortable labels)."""
        x = _samples(x, "x")
        y = _labels(y, "y", len(x))
        if self.n_neighbors > len(x):
            raise ValueError(f"Expected n_neighbors <= the {len(x)} training samples, received "
                             f"n_neighbors={self.n_neighbors}")
        self.classes_, self._codes = np.unique(y, return_inverse=True)
        self._codes = self._codes.reshape(-1)
        # Transposed once here so the kernel's inner loop runs along contiguous references;
        # converted in the same copy, so a uint8 training set never exists twice in float32.
        self._references = np.ascontiguousarray(x.T, dtype=np.float32)
        self.n_features_in_ = x.shape[1]
        self.n_samples_fit_ = len(x)
        return self

    def kneighbors(self, x, n_neighbors=None, return_distance=True):
        """``(distances, indices)`` of each sample's nearest training samples, nearest first.

        Distances are L1 or Euclidean as ``metric`` says; indices count training samples.
        """
        if not hasattr(self, "_references"):
            raise RuntimeError("Call fit(x, y) before kneighbors, predict or score")
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        if (isinstance(k, bool) or not isinstance(k, numbers.Integral)
                or not 1 <= k <= self.n_samples_fit_):
            raise ValueError(f"Expected n_neighbors in [1, {self.n_samples_fit_}], received "
                             f"n_neighbors={k!r}")
        x = _samples(x, "x")
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"Expected x with {self.n_features_in_} values per sample, as in "
                             f"fit, received {x.shape[1]} (shape {x.shape})")
        rows = min(max(1, CHUNK_VALUES // self.n_samples_fit_), len(x))
        buffer = np.empty((rows, self.n_samples_fit_), np.float32)
        indices = np.empty((len(x), k), np.intp)
        distances = np.empty((len(x), k), np.float32)
        for start in range(0, len(x), rows):
            chunk = x[start:start + rows]
            dist = distance.pairwise_distances(chunk, self._references, self.metric,
                                               out=buffer[:len(chunk)])
            distance.k_smallest(dist, k, index=indices[start:start + rows],
                                out=distances[start:start + rows])
        if not return_distance:
            return indices
        if self.metric == "l2":
            np.sqrt(distances, out=distances)
        return distances, indices

    def predict_proba(self, x):
        """(samples, classes) vote shares, columns in ``classes_`` order."""
        return self._votes(x) / self.n_neighbors

    def predict(self, x):
        """The label with most votes among each sample's neighbours; ties go to the smallest."""
        votes = self._votes(x)
        return self.classes_[votes.argmax(axis=1)]

    def score(self, x, y):
        """Mean accuracy of ``predict(x)`` against the labels y."""
        x = _samples(x, "x")
        y = _labels(y, "y", len(x))
        return float(np.mean(self.predict(x) == y))

    def _votes(self, x):
        nearest = self.kneighbors(x, return_distance=False)
        codes = self._codes[nearest]
        n, c = len(codes), len(self.classes_)
        flat = (np.arange(n)[:, None] * c + codes).reshape(-1)
        return np.bincount(flat, minlength=n * c).reshape(n, c)

    def __repr__(self):
        return f"KNeighborsClassifier(n_neighbors={self.n_neighbors}, metric={self.metric!r})"


def _samples(x, name):
    """x as a (samples, features) array, each sample flattened; the dtype is left alone."""
    if x is None:
        raise ValueError(f"Expected {name} to be an array, received None")
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"Expected {name} to hold real numbers, received dtype {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0 or x[0].size == 0:
        raise ValueError(f"Expected {name} of shape (samples, ...) with at least one sample and "
                         f"one value per sample, received shape {x.shape}")
    return x.reshape(len(x), -1)


def _labels(y, name, n):
    """y as a 1-D array of n labels; (n, 1) column vectors, as Keras's CIFAR-10 gives, too."""
    if y is None:
        raise ValueError(f"Expected {name} to be an array of labels, received None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"Expected {name} of shape ({n},), one label per sample, received "
                         f"shape {y.shape}")
    return y
