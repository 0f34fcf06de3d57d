import importlib
import os
import pkgutil

import numpy as np
import pytest

from fastcnn import _ext


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


SIMD_PATHS = ("scalar", "avx2", "avx512")
SIMD_MODULES = [module for module in (importlib.import_module(f"{_ext.__name__}.{info.name}")
                                      for info in pkgutil.iter_modules(_ext.__path__))
                if hasattr(module, "_set_simd_path")]


@pytest.fixture(params=SIMD_PATHS[:SIMD_PATHS.index(SIMD_MODULES[0].simd_path()) + 1])
def simd_path(request):
    """Each SIMD path this machine has, in turn, set on every module that dispatches on one."""
    previous = [module.simd_path() for module in SIMD_MODULES]
    for module in SIMD_MODULES:
        assert module._set_simd_path(request.param) == request.param
    yield request.param
    for module, path in zip(SIMD_MODULES, previous):
        module._set_simd_path(path)


def panel_bytes_fixture(name, module, sizes):
    """A fixture, name, that sets module's bound on the forward tiles' K slices to each of sizes
    in turn."""
    @pytest.fixture(params=sizes, name=name)
    def panel_bytes(request):
        previous = module._set_panel_bytes(request.param)
        yield request.param
        module._set_panel_bytes(previous)
    return panel_bytes


# from one tap per slice up to several kernel rows
conv_panel_bytes = panel_bytes_fixture("conv_panel_bytes", _ext.conv, [4, 300, 3000, 20000])
# one tap per slice, pieces of 1600 inputs, and more (layers of at most 14 outputs take the
# narrow kernels, which do not slice by it)
dense_panel_bytes = panel_bytes_fixture("dense_panel_bytes", _ext.dense, [4, 1000, 20000])


def conv_case(rng, dtype, n, h, w, ci, co, kernel, strides, padding):
    """x, w, bias, dy and the geometry (stride_h, stride_w, pad_top, pad_left) of a conv."""
    (kh, kw), (sh, sw) = kernel, strides
    oh, pt = out_and_pad(h, kh, sh, padding)
    ow, pl = out_and_pad(w, kw, sw, padding)
    x = rng.standard_normal((n, h, w, ci)).astype(dtype)
    wt = rng.standard_normal((kh, kw, ci, co)).astype(dtype)
    bias = rng.standard_normal(co).astype(dtype)
    dy = rng.standard_normal((n, oh, ow, co)).astype(dtype)
    return x, wt, bias, dy, (sh, sw, pt, pl)


def conv_maxpool_case(rng, n, h, w, ci, co, kernel, strides, padding, pool, pool_strides):
    """The float32 conv case, with dy the gradient of the pooled output."""
    x, wt, bias, dz, geo = conv_case(rng, np.float32, n, h, w, ci, co, kernel, strides, padding)
    (oh, ow), (ph, pw), (psh, psw) = dz.shape[1:3], pool, pool_strides
    dy = rng.standard_normal((n, (oh - ph) // psh + 1, (ow - pw) // psw + 1, co)).astype(np.float32)
    return x, wt, bias, dy, geo


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
