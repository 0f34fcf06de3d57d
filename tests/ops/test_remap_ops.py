"""The remap wrappers refuse indices outside the image."""
import numpy as np
import pytest

from fastcnn._ops import remap as remap_ops


@pytest.mark.parametrize("bad,message", [(3, r"rows\[1, 2\] = 3 is outside \[-1, 3\)"),
                                         (-2, r"rows\[1, 2\] = -2")])
def test_remap_rejects_indices_outside_the_image(bad, message):
    x = np.zeros((2, 3, 3, 1), np.float32)
    rows = np.zeros((2, 3), np.int32)
    rows[1, 2] = bad
    with pytest.raises(ValueError, match=message):
        remap_ops.remap2d_forward(x, rows, np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError, match=message):
        remap_ops.remap2d_backward(x, rows, np.zeros((2, 3), np.int32), x.shape)
