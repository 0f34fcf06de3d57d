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


def images(rng, n=64, h=5, w=6, c=2):
    return rng.standard_normal((n, h, w, c)).astype(np.float32)


class CodeOnUnpickle:
    """Unpickling this calls func(arg): with os.mkdir, proof that a loader ran code from a file."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


# Argument checks, at the API (tests/api/test_validation.py) and in the ops room
# (tests/ops/test_checks_ops.py): one parametrized test per category over (case id, call,
# exception, message fragments), on these arrays.
_RNG = np.random.default_rng(0)
X = _RNG.standard_normal((8, 6, 6, 1)).astype(np.float32)
LABELS = np.arange(8) % 3
Y = np.eye(3, dtype=np.float32)[LABELS]
K = _RNG.standard_normal((3, 3, 1, 2)).astype(np.float32)  # HWIO: 6x6x1 -> 4x4x2
DY = _RNG.standard_normal((8, 4, 4, 2)).astype(np.float32)
W = _RNG.standard_normal((4, 3)).astype(np.float32)  # dense (in, out)
LOGITS = _RNG.standard_normal((8, 3)).astype(np.float32)
INTEGRAL = np.clip(np.round(X * 40 + 100), 0, 255).astype(np.float32)  # exact in every integer dtype


def huge(*shape):
    """A zero-stride view with ``shape``: enormous, yet costs no memory unless someone copies it."""
    return np.broadcast_to(np.float32(0), shape)


def readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def assert_refused(call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"{type(info.value).__name__}({message!r}) lacks {missing}"


def refusal_cases(*rows):
    return pytest.mark.parametrize("call, exc, fragments", [pytest.param(*r[1:], id=r[0]) for r in rows])


def odd_inputs(kind, tmp_path):
    """(clean float32 images, {name: the same values in a valid but unusual container}) for one
    ``kind`` of values: float, or whole numbers as uint8, int32, int64 or bool."""
    clean = X if kind == "float" else (INTEGRAL > 100 if kind == "bool" else INTEGRAL).astype(np.float32)
    base = clean if kind == "float" else clean.astype(kind)
    strided = np.zeros((*base.shape[:-1], base.shape[-1] * 2), base.dtype)[..., ::2]
    strided[...] = base
    mapped = np.memmap(tmp_path / "x.dat", dtype=base.dtype, mode="w+", shape=base.shape)
    mapped[...] = base
    mapped.flush()
    return clean, {"plain": base, "strided": strided, "fortran": np.asfortranarray(base),
                   "readonly": readonly(base),
                   "memmap": np.memmap(tmp_path / "x.dat", dtype=base.dtype, mode="r", shape=base.shape),
                   "float64": base.astype(np.float64), "reversed": base[::-1].copy()[::-1],
                   "list": base.tolist()}
