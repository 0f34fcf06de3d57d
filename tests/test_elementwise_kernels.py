"""Activations, softmax, dropout, the fused loss and the optimizer updates against their twins."""
import inspect

import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import activation, dropout, loss, normalization, optim, regularization, remap
from fastcnn._ops import loss as loss_ops
from conftest import numeric_grad

POINTWISE = ["relu", "sigmoid", "tanh"]
TOL = {np.float32: 2e-6, np.float64: 1e-13}
TWINNED = [activation, dropout, loss, normalization, optim, regularization, remap]


def _kernels(module):
    """The module's public functions but simd_path, the SIMD-path query of cpu.pxi."""
    return [name for name in dir(module) if not name.startswith("_") and name != "simd_path"
            and callable(getattr(module, name))]


@pytest.mark.parametrize("module", TWINNED, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_kernel_has_a_twin_with_its_signature(module):
    """Each function of the module has a twin of the same name and parameters in _reference."""
    assert _kernels(module)
    for name in _kernels(module):
        assert hasattr(ref, name), f"{module.__name__}.{name} has no twin"
        assert (list(inspect.signature(getattr(module, name)).parameters)
                == list(inspect.signature(getattr(ref, name)).parameters)), name


@pytest.mark.parametrize("name", POINTWISE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 7, 100_003])
def test_pointwise_match_reference(name, dtype, size, rng):
    x = (rng.standard_normal(size) * 4).astype(dtype)
    forward = getattr(activation, f"{name}_forward")
    backward = getattr(activation, f"{name}_backward")
    y, ref_y = np.empty_like(x), np.empty_like(x)
    forward(x, y, 2)
    getattr(ref, f"{name}_forward")(x, ref_y, 2)
    np.testing.assert_allclose(y, ref_y, rtol=TOL[dtype], atol=TOL[dtype])
    dy = rng.standard_normal(size).astype(dtype)
    dx, ref_dx = np.empty_like(x), np.empty_like(x)
    backward(y, dy, dx, 2)
    getattr(ref, f"{name}_backward")(y, dy, ref_dx, 2)
    np.testing.assert_allclose(dx, ref_dx, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("name", POINTWISE)
def test_pointwise_gradient_finite_differences(name, rng):
    x = rng.standard_normal(50) * 2
    x[np.abs(x) < 1e-3] = 0.5  # keep relu away from its kink
    probe = rng.standard_normal(50)
    forward = getattr(activation, f"{name}_forward")
    backward = getattr(activation, f"{name}_backward")

    def f():
        y = np.empty_like(x)
        forward(x, y, 1)
        return float((y * probe).sum())

    y = np.empty_like(x)
    forward(x, y, 1)
    dx = np.empty_like(x)
    backward(y, probe, dx, 1)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", POINTWISE + ["softmax"])
def test_activations_threads_agree(name, rng):
    """Past the threading threshold, 1 and 2 threads give bitwise the same forward and backward."""
    x = (rng.standard_normal((5000, 10)) * 4).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    forward = getattr(activation, f"{name}_forward")
    backward = getattr(activation, f"{name}_backward")
    if name != "softmax":
        x, dy = x.reshape(-1), dy.reshape(-1)
    results = []
    for threads in (1, 2):
        y, dx = np.empty_like(x), np.empty_like(x)
        forward(x, y, threads)
        backward(y, dy, dx, threads)
        results.append((y, dx))
    assert all(np.array_equal(a, b) for a, b in zip(*results))


def test_sigmoid_extremes_are_finite():
    x = np.array([-1e4, -100, 0, 100, 1e4], np.float32)
    y = np.empty_like(x)
    activation.sigmoid_forward(x, y, 1)
    assert np.all(np.isfinite(y)) and y[0] == 0 and y[-1] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_forward_backward(dtype, rng):
    x = (rng.standard_normal((9, 10)) * 30).astype(dtype)
    y, ref_y = np.empty_like(x), np.empty_like(x)
    activation.softmax_forward(x, y, 2)
    ref.softmax_forward(x, ref_y, 2)
    # Both compute in double: the exps differ by an ulp each, the sums of K (in other orders) by
    # (K - 1) eps, 1 / s * e against e / s by 1.5; float32 rounds 1.5 eps32 (or half subnormals).
    k, eps, eps64 = x.shape[1], np.finfo(dtype).eps, np.finfo(np.float64).eps
    rtol = (k + 3) * eps64 + (1.5 * eps if dtype == np.float32 else 0)
    np.testing.assert_allclose(y, ref_y, rtol=rtol, atol=np.finfo(dtype).smallest_subnormal)
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-6)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, ref_dx = np.empty_like(x), np.empty_like(x)
    activation.softmax_backward(y, dy, dx, 2)
    ref.softmax_backward(y, dy, ref_dx, 2)
    # dot's K products and sums, dy - dot and the product by y each round at worst in the dtype,
    # relative to what they combine; the results round once more (half a subnormal at least).
    y64, dy64 = y.astype(np.float64), np.abs(dy.astype(np.float64))
    size = y64 * (dy64 + (dy64 * y64).sum(axis=1, keepdims=True))
    bound = (k + 2) * eps * size + eps * np.abs(ref_dx) + np.finfo(dtype).smallest_subnormal
    assert np.all(np.abs(dx - ref_dx.astype(np.float64)) <= bound)


def test_softmax_gradient_finite_differences(rng):
    x = rng.standard_normal((3, 5))
    probe = rng.standard_normal((3, 5))

    def f():
        y = np.empty_like(x)
        activation.softmax_forward(x, y, 1)
        return float((y * probe).sum())

    y = np.empty_like(x)
    activation.softmax_forward(x, y, 1)
    dx = np.empty_like(x)
    activation.softmax_backward(y, probe, dx, 1)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_matches_reference(rate, dtype, rng):
    x = rng.standard_normal(100_000).astype(dtype)
    seed = 2**63 + 12345  # the full uint64 range is valid
    out, ref_out = np.empty_like(x), np.empty_like(x)
    dropout.dropout_forward(x, seed, rate, out, 2)
    ref.dropout_forward(x, seed, rate, ref_out, 2)
    np.testing.assert_allclose(out, ref_out, rtol=1e-6)
    dropped = np.count_nonzero(out == 0) / x.size
    assert abs(dropped - rate) < 0.01  # the draws are uniform
    dx, ref_dx = np.empty_like(x), np.empty_like(x)
    dropout.dropout_backward(x, seed, rate, dx, 2)
    ref.dropout_backward(x, seed, rate, ref_dx, 2)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-6)
    assert np.array_equal(dx == 0, out == 0)  # backward recomputes the forward's mask


def test_dropout_masks_depend_on_seed_not_threads(rng):
    x = rng.standard_normal(100_000).astype(np.float32)
    one, two, other = (np.empty_like(x) for _ in range(3))
    dropout.dropout_forward(x, 7, 0.5, one, 1)
    dropout.dropout_forward(x, 7, 0.5, two, 2)
    dropout.dropout_forward(x, 8, 0.5, other, 2)
    assert np.array_equal(one, two) and not np.array_equal(one, other)


@pytest.mark.parametrize("seed", [0, 7, 2**32 - 1, 2**63])
def test_dropout_masks_of_neighbouring_seeds_are_independent(seed):
    # The hash keys one 32-bit mixer with the seed; a weak keying would make neighbouring seeds'
    # masks shifted or flipped copies of each other, so that both keep far more or far less than
    # a quarter of the elements at rate 0.5 (the standard error here is 0.0014).
    n = 100_000
    a, b = ref.dropout_keep(seed, n, 0.5), ref.dropout_keep(seed + 1, n, 0.5)
    assert abs(np.count_nonzero(a & b) / n - 0.25) < 0.01
    assert abs(np.count_nonzero(a[1:] & a[:-1]) / n - 0.25) < 0.01  # and neighbouring elements
    # elements j and j + 16 of a block of 32 take the two halves of one hash
    first, second = a.reshape(-1, 2, 16)[:, 0], a.reshape(-1, 2, 16)[:, 1]
    assert abs(np.count_nonzero(first & second) / first.size - 0.25) < 0.01


@pytest.mark.parametrize("n", [1, 31, 32, 33, 1000, 4096 * 3 + 17])
def test_dropout_in_place_and_ragged_lengths(n, rng):
    """Lengths around the blocks of 32 that share hashes, and out being x itself, as in the
    fused conv step."""
    x = rng.standard_normal(n).astype(np.float32)
    want = np.empty_like(x)
    ref.dropout_forward(x, 99, 0.3, want, 2)
    dropout.dropout_forward(x, 99, 0.3, x, 2)
    np.testing.assert_allclose(x, want, rtol=1e-6)


# ---- fused softmax + cross-entropy -------------------------------------------------------

def _ce(kind, logits, target, dtype, threads=2):
    grad = np.empty_like(logits)
    rows = np.empty(len(logits), dtype)
    getattr(loss, kind)(logits, target, grad, rows, 1 / len(logits), threads)
    return rows, grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["softmax_cross_entropy", "sparse_softmax_cross_entropy"])
def test_fused_loss_matches_reference(kind, dtype, rng):
    logits = (rng.standard_normal((33, 10)) * 5).astype(dtype)
    labels = rng.integers(0, 10, 33)
    target = labels if kind.startswith("sparse") else np.eye(10, dtype=dtype)[labels]
    rows, grad = _ce(kind, logits, target, dtype)
    ref_rows, ref_grad = np.empty_like(rows), np.empty_like(grad)
    getattr(ref, kind)(logits, target, ref_grad, ref_rows, 1 / 33, 2)
    np.testing.assert_allclose(rows, ref_rows, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-6)  # each gradient row sums to 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_is_the_one_the_fused_loss_uses(dtype, rng):
    """Off the label, sparse cross-entropy's gradient at grad_scale 1 is the softmax itself."""
    logits = (rng.standard_normal((50, 10)) * 5).astype(dtype)
    labels = rng.integers(0, 10, 50)
    grad, rows = np.empty_like(logits), np.empty(50, dtype)
    loss.sparse_softmax_cross_entropy(logits, labels, grad, rows, 1.0, 1)
    y = np.empty_like(logits)
    activation.softmax_forward(logits, y, 1)
    off_label = np.arange(10) != labels[:, None]
    np.testing.assert_array_equal(y[off_label], grad[off_label])


def test_fused_loss_is_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0], [-3e38, 3e38, 0]], np.float32)
    rows, grad = _ce("sparse_softmax_cross_entropy", logits, np.array([1, 1]), np.float32)
    assert np.all(np.isfinite(rows)) and np.all(np.isfinite(grad))
    assert rows[0] == pytest.approx(2e4) and rows[1] == 0


@pytest.mark.parametrize("kind", ["softmax_cross_entropy", "sparse_softmax_cross_entropy"])
def test_fused_loss_gradient_finite_differences(kind, rng):
    logits = rng.standard_normal((4, 6))
    labels = rng.integers(0, 6, 4)
    target = labels if kind.startswith("sparse") else np.eye(6)[labels]
    _, grad = _ce(kind, logits, target, np.float64)
    mean = lambda: float(_ce(kind, logits, target, np.float64)[0].mean())
    np.testing.assert_allclose(grad, numeric_grad(mean, logits), rtol=1e-6, atol=1e-9)


def test_soft_targets_match_reference(rng):
    logits = (rng.standard_normal((40, 7)) * 3).astype(np.float32)
    target = (rng.dirichlet(np.ones(7), 40) * rng.uniform(0.5, 2, (40, 1))).astype(np.float32)
    rows, grad = _ce("softmax_cross_entropy", logits, target, np.float32)
    ref_rows, ref_grad = np.empty_like(rows), np.empty_like(grad)
    ref.softmax_cross_entropy(logits, target, ref_grad, ref_rows, 1 / 40, 2)
    np.testing.assert_allclose(rows, ref_rows, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["sparse_softmax_cross_entropy", "multiclass_hinge"])
@pytest.mark.parametrize("bad", [-1, 10, -2**63])
def test_labels_out_of_range_are_refused_by_the_kernels(kind, bad, rng):
    logits = rng.standard_normal((5000, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 5000)
    labels[3999] = bad  # on the second thread's half
    with pytest.raises(ValueError, match=rf"labels in \[0, 10\), received values from .*{bad}\b"):
        _ce(kind, logits, labels, np.float32)
    with pytest.raises(ValueError, match=r"labels in \[0, 10\)"):
        getattr(loss_ops, kind)(logits, labels, 1.0)
    huge = np.full(5000, 2**63 + 1, np.uint64)  # negative once cast to the kernels' int64
    with pytest.raises(ValueError, match=rf"labels in \[0, 10\), received {2**63 + 1}"):
        getattr(loss_ops, kind)(logits, huge, 1.0)


@pytest.mark.parametrize("kind", ["softmax_cross_entropy", "sparse_softmax_cross_entropy"])
def test_fused_loss_threads_agree(kind, rng):
    logits = rng.standard_normal((5000, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 5000)
    target = labels if kind.startswith("sparse") else np.eye(10, dtype=np.float32)[labels]
    one = _ce(kind, logits, target, np.float32, threads=1)
    two = _ce(kind, logits, target, np.float32, threads=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))


# ---- optimizer updates -------------------------------------------------------------------

@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_update_matches_formula(momentum, nesterov, rng):
    p, g, v = (rng.standard_normal(100) for _ in range(3))
    expected = [p.copy(), v.copy()]
    ref.sgd_update([expected[0]], [g], [expected[1]], 0.1, momentum, nesterov, 1)
    optim.sgd_update([p], [g], [v], 0.1, momentum, nesterov, 2)
    np.testing.assert_allclose(p, expected[0], rtol=1e-14)
    if momentum:
        np.testing.assert_allclose(v, expected[1], rtol=1e-14)
        # Keras: v = mu v - lr g
        assert np.allclose(v, expected[1])


UPDATE_RULES = {  # each kernel's call after (module, params, grads, slots, threads)
    "sgd": (1, lambda mod, p, g, s, t: mod.sgd_update(p, g, s[0], 0.1, 0.0, False, t)),
    "sgd_momentum": (1, lambda mod, p, g, s, t: mod.sgd_update(p, g, s[0], 0.1, 0.9, False, t)),
    "sgd_nesterov": (1, lambda mod, p, g, s, t: mod.sgd_update(p, g, s[0], 0.1, 0.9, True, t)),
    "adam": (2, lambda mod, p, g, s, t: mod.adam_update(p, g, s[0], s[1], 1e-3, 0.9, 0.999, 1e-7,
                                                        3, 0.0, t)),
    "adamw": (2, lambda mod, p, g, s, t: mod.adam_update(p, g, s[0], s[1], 1e-2, 0.9, 0.999, 1e-7,
                                                         3, 0.05, t)),
    "rmsprop_centered_momentum": (3, lambda mod, p, g, s, t: mod.rmsprop_update(
        p, g, s[0], s[1], s[2], 0.01, 0.9, 0.5, 1e-7, True, t)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", sorted(UPDATE_RULES))
def test_one_update_call_for_many_tensors_matches_each_on_its_own(rule, dtype, rng):
    """A model's weights go to the kernel in one call, cut into runs of any of them: tensors of
    no element, of one, across run boundaries and past the threading threshold, each against the
    NumPy twin of its own update, at any thread count."""
    n_slots, run = UPDATE_RULES[rule]
    sizes = [4097, 0, 1, 40_001, 10, 4096]
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
    slots = [[(rng.random(n) * 0.1).astype(dtype) for n in sizes] for _ in range(n_slots)]
    if rule.startswith("rmsprop"):  # mean_square above mean_grad^2, as it stays in training
        slots[0] = [a + 1 for a in slots[0]]
    expected = ([p.copy() for p in params], [[a.copy() for a in s] for s in slots])
    for t in range(len(sizes)):  # one tensor at a time through the reference
        run(ref, [expected[0][t]], [grads[t]], [[s[t]] for s in expected[1]], 1)
    results = []
    for threads in (1, 2):
        state = ([p.copy() for p in params], [[a.copy() for a in s] for s in slots])
        run(optim, state[0], grads, state[1], threads)
        for got, want in zip(state[0] + sum(state[1], []), expected[0] + sum(expected[1], [])):
            np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])
        results.append(state[0] + sum(state[1], []))
    assert all(np.array_equal(a, b) for a, b in zip(*results))


def test_adam_update_matches_formula(rng):
    p, g = rng.standard_normal(100), rng.standard_normal(100)
    m, v = rng.standard_normal(100) * 0.1, rng.random(100) * 0.1
    p0, m0, v0 = p.copy(), m.copy(), v.copy()
    optim.adam_update([p], [g], [m], [v], 1e-3, 0.9, 0.999, 1e-7, 3, 0.0, 2)
    m_new = 0.9 * m0 + 0.1 * g
    v_new = 0.999 * v0 + 0.001 * g * g
    alpha = 1e-3 * np.sqrt(1 - 0.999 ** 3) / (1 - 0.9 ** 3)
    np.testing.assert_allclose(m, m_new, rtol=1e-12)
    np.testing.assert_allclose(v, v_new, rtol=1e-12)
    np.testing.assert_allclose(p, p0 - alpha * m_new / (np.sqrt(v_new) + 1e-7), rtol=1e-12)
