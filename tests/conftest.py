import os

import numpy as np
import pytest


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of x (in place)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + eps
        up = f()
        flat[i] = keep - eps
        down = f()
        flat[i] = keep
        gflat[i] = (up - down) / (2 * eps)
    return grad


def variants(a):
    """The same values as a C-contiguous array, a non-contiguous view and a read-only array."""
    strided = np.zeros((*a.shape[:-1], a.shape[-1] * 2), a.dtype)[..., ::2]
    strided[...] = a
    frozen = a.copy()
    frozen.setflags(write=False)
    return {"contiguous": a, "strided": strided, "readonly": frozen}


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def data_dir():
    """$FASTCNN_DATA, or a skip; under CI=true missing data is a failure."""
    root = os.environ.get("FASTCNN_DATA")
    if root and os.path.isdir(os.path.join(root, "mnist")):
        return root
    if os.environ.get("CI") == "true":
        pytest.fail("FASTCNN_DATA must point at the datasets under CI")
    pytest.skip("FASTCNN_DATA not set")
