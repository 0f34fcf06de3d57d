import os
from pathlib import Path

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


# ---- shared by tests/api and tests/ops --------------------------------------------------------
# (fastcnn is imported inside the helpers: conftest itself loads without built kernels.)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def child_env(*folders):
    """The environment for a Python child that imports this fastcnn, conftest and the modules in
    ``folders``."""
    import fastcnn
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastcnn.__file__)))
    path = [root, str(TESTS), *map(str, folders), os.environ.get("PYTHONPATH")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}


def toy_data(n, seed=0):
    """n 8x8x1 images of 3 classes, each with a bright pixel where its label says: learnable."""
    import fastcnn
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 8, 8, 1)).astype(np.float32) * 0.3
    x[np.arange(n), labels * 2 + 1, labels * 2 + 1, 0] += 3
    return x, fastcnn.utils.to_categorical(labels, 3)


class CodeOnUnpickle:
    """Unpickling this calls func(arg): with os.mkdir, proof that a loader ran code from a file."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)
