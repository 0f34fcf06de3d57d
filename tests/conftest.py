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


# ---- kernel tests (tests/kernels) --------------------------------------------------------------

def out_and_pad(n, k, s, padding):
    """Output length and padding before of a window of k at stride s over n, by TensorFlow's
    rules."""
    if padding == "valid":
        return (n - k) // s + 1, 0
    out = -(-n // s)
    return out, max((out - 1) * s + k - n, 0) // 2


def assert_close(got, want, dtype, err_msg=""):
    """A kernel's result against its float64 twin's: 1e-4 (float32) or 1e-10 (float64), relative,
    and absolute on the scale of the largest entry; None where the twin gives None."""
    if want is None:
        assert got is None, err_msg
        return
    tol = 1e-4 if dtype == np.float32 else 1e-10
    scale = max(1.0, float(np.nanmax(np.abs(want), initial=0)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=err_msg)


def bn_params(rng, c, dtype):
    """gamma, beta, moving_mean and moving_var of c channels."""
    gamma = (1 + 0.3 * rng.standard_normal(c)).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    moving_mean = rng.standard_normal(c).astype(dtype)
    moving_var = rng.uniform(0.5, 2, c).astype(dtype)
    return gamma, beta, moving_mean, moving_var


def random_maps(rng, n, out_size, size, fill_fraction=0.3):
    """n remap index maps of out_size entries into an axis of size, fill_fraction of them -1."""
    index = rng.integers(0, size, (n, out_size)).astype(np.int32)
    index[rng.random((n, out_size)) < fill_fraction] = -1
    return index


@pytest.fixture(params=[(kind, bad) for bad in (-1, 10, -2**63)
                        for kind in ("multiclass_hinge", "sparse_softmax_cross_entropy")],
                ids=lambda p: f"{p[1]}-{p[0]}")
def out_of_range_labels(request, rng):
    """(loss kind, bad label, logits (5000, 10), labels with one bad label on the second thread's
    half)."""
    kind, bad = request.param
    logits = rng.standard_normal((5000, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 5000)
    labels[3999] = bad
    return kind, bad, logits, labels
