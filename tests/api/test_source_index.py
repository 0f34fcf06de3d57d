"""source_index, the index maps of the image-preprocessing layers, in each fill mode."""
import numpy as np
import pytest

from fastcnn.layers import preprocessing


def test_source_index_fill_modes():
    coords = np.arange(-5, 9)  # an axis of 4 cells: a b c d at 0..3
    expected = {
        "constant": [-1, -1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, -1],
        "nearest": [0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 3, 3, 3, 3],
        "reflect": [3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0],  # (d c b a | a b c d | d c b a)
        "wrap": [3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0],     # (a b c d | a b c d | a b c d)
    }
    for mode, index in expected.items():
        got = preprocessing.source_index(coords, 4, mode)
        assert got.dtype == np.int32 and got.tolist() == index, mode
    with pytest.raises(ValueError, match="fill_mode='mirror'"):
        preprocessing.source_index(coords, 4, "mirror")
