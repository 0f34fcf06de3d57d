"""A layer whose arguments make an output too large for the memory (CenterCrop(2**31, ...), and
any other layer that sizes its output from its arguments) is refused when it is built or called,
before anything is allocated, with a ValueError that says how much memory the output would need;
one beyond the kernels' 32-bit indices, with a ValueError that says so."""
import numpy as np
import pytest

import fastcnn
from fastcnn._ops import checks
from fastcnn.layers import CenterCrop, RandomCrop, Resizing, UpSampling2D, ZeroPadding2D

HUGE = 2**31
# Each makes images of (HUGE, 8 or 10) pixels of 3 channels from 8 x 8 ones: about 200 GiB of
# float32 values per image.
LAYERS = {
    "CenterCrop": lambda: CenterCrop(HUGE, 10),
    "Resizing": lambda: Resizing(HUGE, 10),
    "RandomCrop": lambda: RandomCrop(HUGE, 10),
    "UpSampling2D": lambda: UpSampling2D((HUGE // 8, 1)),
    "ZeroPadding2D": lambda: ZeroPadding2D(((HUGE - 8, 0), (1, 1))),
}


@pytest.fixture(autouse=True)
def memory_of_40_gib(monkeypatch):
    monkeypatch.setattr(checks, "available_memory", lambda: 40 * 2**30)


@pytest.mark.parametrize("name", LAYERS)
def test_building_on_a_huge_output_is_refused(name):
    layer = LAYERS[name]()
    with pytest.raises(ValueError, match=r"output to fit in memory: one sample of shape "
                                         r"\(None, 2147483648, \d+, 3\) in float32 "
                                         r"\(\d+\.0 GiB\) would need .* available"):
        fastcnn.Sequential([fastcnn.Input((8, 8, 3)), layer])


@pytest.mark.parametrize("name", LAYERS)
def test_calling_on_a_huge_output_is_refused(name):
    with pytest.raises(ValueError, match=r"output to fit in memory: the batch of shape "
                                         r"\(2, 2147483648, \d+, 3\) in float32 "
                                         r"\(\d+\.0 GiB\) would need .* available"):
        LAYERS[name]()(np.zeros((2, 8, 8, 3), np.float32))


def test_center_crop_says_what_its_output_needs():
    with pytest.raises(ValueError, match=r"Expected layer 'big' output to fit in memory: the "
                                         r"batch of shape \(2, 2147483648, 10, 3\) in float32 "
                                         r"\(480\.0 GiB\) would need 480\.0 GiB, more than the "
                                         r"40\.0 GiB available"):
        CenterCrop(HUGE, 10, name="big")(np.zeros((2, 8, 8, 3), np.float32))


def test_an_output_within_memory_but_beyond_32_bit_indices_is_refused():
    """2**31 values per image (8 GiB): within the memory, beyond the kernels' indices."""
    with pytest.raises(ValueError, match=r"at most 2147483647 values per sample"):
        CenterCrop(HUGE, 1)(np.zeros((2, 8, 8, 1), np.float32))


def test_a_crop_that_fits_still_runs():
    x = np.arange(2 * 8 * 8 * 3, dtype=np.float32).reshape(2, 8, 8, 3)
    assert np.array_equal(CenterCrop(4, 6)(x), x[:, 2:6, 1:7])
