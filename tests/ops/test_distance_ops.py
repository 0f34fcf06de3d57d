"""The distance wrapper refuses a metric other than l1 and l2."""
import numpy as np
import pytest

from fastcnn._ops import distance as distance_ops


def test_pairwise_distances_refuse_an_unknown_metric():
    with pytest.raises(ValueError, match="metric"):
        distance_ops.pairwise_distances(np.zeros((2, 3), np.float32), np.zeros((3, 5)), "cosine")
