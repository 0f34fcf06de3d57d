"""The regularization wrappers: the sum of squares whatever the thread count, and axpy's output
check."""
import numpy as np
import pytest

import fastcnn
from fastcnn._ops import regularization as regularization_ops


def test_sum_of_squares_is_the_same_for_any_thread_count(rng):
    x = rng.standard_normal(300_001).astype(np.float32)
    totals = set()
    for n in (1, 2):
        fastcnn.set_num_threads(n)
        try:
            totals.add(regularization_ops.sum_of_squares(x))
        finally:
            fastcnn.set_num_threads(None)
    assert len(totals) == 1
    assert totals.pop() == pytest.approx(np.sum(x.astype(np.float64) ** 2), rel=1e-12)


def test_axpy_refuses_an_output_it_cannot_write_in_place():
    y = np.zeros((4, 6))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        regularization_ops.axpy(1.0, np.ones((4, 3)), y)
