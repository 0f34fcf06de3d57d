"""The optimizer update kernels against their twins and Keras's formulas: many tensors in one
call, any thread count, and operands refused when missing or short."""
import numpy as np
import pytest

from fastcnn import _reference as ref
from fastcnn._ext import optim

TOL = {np.float32: 2e-6, np.float64: 1e-13}


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_kernel_matches_reference(dtype, momentum, centered, rng):
    n = 40_000  # past the threading threshold
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    ms = (rng.random(n) + 1).astype(dtype)  # above mean_grad^2, as it stays in training
    buf = rng.standard_normal(n).astype(dtype) if momentum else None
    mg = (rng.standard_normal(n) * 0.1).astype(dtype) if centered else None
    state = [p, ms, buf, mg]
    expected = [None if a is None else a.copy() for a in state]
    ref.rmsprop_update([expected[0]], [g], [expected[1]], [expected[2]], [expected[3]], 0.01, 0.9,
                       momentum, 1e-7, centered, 2)
    optim.rmsprop_update([p], [g], [ms], [buf], [mg], 0.01, 0.9, momentum, 1e-7, centered, 2)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for a, b in zip(state, expected):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_rmsprop_kernel_refuses_missing_slots():
    a = np.zeros(4)
    with pytest.raises(ValueError, match="momentum_buffer"):
        optim.rmsprop_update([a], [a], [a.copy()], [None], [None], 0.1, 0.9, 0.5, 1e-7, False, 1)


@pytest.mark.parametrize("call,exc,match", [
    (lambda a: optim.adam_update([a], [a], [None], [a.copy()], 1e-3, 0.9, 0.999, 1e-7, 1, 0.0, 1),
     TypeError, "m and v"),
    (lambda a: optim.adam_update([a], [a[:3]], [a.copy()], [a.copy()], 1e-3, 0.9, 0.999, 1e-7, 1,
                                 0.0, 1), ValueError, "4 elements"),
    (lambda a: optim.adam_update([a, a.copy()], [a], [a.copy()] * 2, [a.copy()] * 2, 1e-3, 0.9,
                                 0.999, 1e-7, 1, 0.0, 1), ValueError, "2 arrays"),
    (lambda a: optim.sgd_update([a], [a], [None], 0.1, 0.9, False, 1), ValueError, "velocity"),
    (lambda a: optim.sgd_update([None], [a], [a.copy()], 0.1, 0.9, False, 1), TypeError, "param 0"),
    (lambda a: optim.sgd_update([a], [None], [a.copy()], 0.1, 0.9, False, 1), TypeError, "grad 0"),
    (lambda a: optim.sgd_update([a], [a], [np.zeros(2)], 0.1, 0.9, False, 1), ValueError, "4 elements"),
    (lambda a: optim.rmsprop_update([a], [a], [a[:2].copy()], [None], [None], 0.1, 0.9, 0.0, 1e-7,
                                    False, 1), ValueError, "4 elements"),
])
def test_update_kernels_refuse_missing_or_short_operands(call, exc, match):
    """The C loops index every operand alike: a missing or short one is refused, not read past."""
    with pytest.raises(exc, match=match):
        call(np.zeros(4))
