"""Every public ops function takes n_threads, resolved once where a call enters the ops room."""
import numpy as np
import pytest

import fastcnn
from fastcnn._ops import conv, threads


def test_ops_take_an_explicit_thread_count():
    """Every public ops function takes n_threads (None: get_num_threads()), resolved once by
    effective_n_threads with set_num_threads's rules; the results do not depend on it."""
    assert threads.effective_n_threads() == fastcnn.get_num_threads()
    assert threads.effective_n_threads(3) == (3 if fastcnn._ext.runtime.openmp_enabled() else 1)
    for bad in (0, 1.5, True, -0.5):
        with pytest.raises(ValueError, match="n_threads"):
            threads.effective_n_threads(bad)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 12, 12, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    outs = [conv.conv2d_forward(x, kernel, None, (1, 1), "same", n_threads=n) for n in (1, 2, None)]
    assert all(np.array_equal(outs[0], out) for out in outs[1:])
    with pytest.raises(ValueError, match="n_threads=0"):
        conv.conv2d_forward(x, kernel, None, (1, 1), "same", n_threads=0)
