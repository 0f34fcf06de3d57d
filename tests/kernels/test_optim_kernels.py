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
    ref.sgd_update([expected[0]], [g], [expected[1]], 0.1, momentum, nesterov, None, 0.0, None, 1)
    optim.sgd_update([p], [g], [v], 0.1, momentum, nesterov, None, 0.0, None, 2)
    np.testing.assert_allclose(p, expected[0], rtol=1e-14)
    if momentum:
        np.testing.assert_allclose(v, expected[1], rtol=1e-14)
        # Keras: v = mu v - lr g
        assert np.allclose(v, expected[1])


# Each kernel's call after (module, params, grads, slots, transforms, threads); transforms are
# the gradient transforms (grad_scale, clip_value, decay).
UPDATE_RULES = {
    "sgd": (1, lambda mod, p, g, s, x, t: mod.sgd_update(p, g, s[0], 0.1, 0.0, False, *x, t)),
    "sgd_momentum": (1, lambda mod, p, g, s, x, t: mod.sgd_update(p, g, s[0], 0.1, 0.9, False,
                                                                  *x, t)),
    "sgd_nesterov": (1, lambda mod, p, g, s, x, t: mod.sgd_update(p, g, s[0], 0.1, 0.9, True,
                                                                  *x, t)),
    "adam": (2, lambda mod, p, g, s, x, t: mod.adam_update(p, g, s[0], s[1], [None] * len(p),
                                                           1e-3, 0.9, 0.999, 1e-7, 3, *x, t)),
    "adam_amsgrad": (3, lambda mod, p, g, s, x, t: mod.adam_update(p, g, s[0], s[1], s[2], 1e-3,
                                                                   0.9, 0.999, 1e-7, 3, *x, t)),
    "rmsprop_centered_momentum": (3, lambda mod, p, g, s, x, t: mod.rmsprop_update(
        p, g, s[0], s[1], s[2], 0.01, 0.9, 0.5, 1e-7, True, *x, t)),
    "nadam": (2, lambda mod, p, g, s, x, t: mod.nadam_update(p, g, s[0], s[1], 1e-3, 0.9, 0.999,
                                                             1e-7, 2, 0.5, *x, t)),
    "adagrad": (1, lambda mod, p, g, s, x, t: mod.adagrad_update(p, g, s[0], 0.01, 1e-7, *x, t)),
    "adadelta": (2, lambda mod, p, g, s, x, t: mod.adadelta_update(p, g, s[0], s[1], 1.0, 0.95,
                                                                   1e-7, *x, t)),
    "adamax": (2, lambda mod, p, g, s, x, t: mod.adamax_update(p, g, s[0], s[1], 1e-3, 0.9, 0.999,
                                                               1e-7, 3, *x, t)),
    "lion": (1, lambda mod, p, g, s, x, t: mod.lion_update(p, g, s[0], 1e-3, 0.9, 0.99, *x, t)),
    "accumulate_mean": (0, lambda mod, p, g, s, x, t: mod.accumulate_gradients(p, g, 2, 3, t)),
    "moving_average": (0, lambda mod, p, g, s, x, t: mod.moving_average(p, g, 0.9, t)),
}


@pytest.mark.parametrize("transformed", [False, True], ids=["plain", "clip_scale_decay"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", sorted(UPDATE_RULES))
def test_one_update_call_for_many_tensors_matches_each_on_its_own(rule, dtype, transformed, rng):
    """A model's weights go to the kernel in one call, cut into runs of any of them: tensors of
    no element, of one, across run boundaries and past the threading threshold, each against the
    NumPy twin of its own update, at any thread count."""
    n_slots, run = UPDATE_RULES[rule]
    sizes = [4097, 0, 1, 40_001, 10, 4096]
    scale, decay = np.linspace(0.5, 1.5, len(sizes)), np.linspace(0.0, 0.01, len(sizes))
    transforms = (scale, 0.7, decay) if transformed else (None, 0.0, None)
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
    slots = [[(rng.random(n) * 0.1).astype(dtype) for n in sizes] for _ in range(n_slots)]
    if rule.startswith("rmsprop"):  # mean_square above mean_grad^2, as it stays in training
        slots[0] = [a + 1 for a in slots[0]]
    expected = ([p.copy() for p in params], [[a.copy() for a in s] for s in slots])
    for t in range(len(sizes)):  # one tensor at a time through the reference
        own = (scale[t:t + 1], 0.7, decay[t:t + 1]) if transformed else transforms
        run(ref, [expected[0][t]], [grads[t]], [[s[t]] for s in expected[1]], own, 1)
    results = []
    for threads in (1, 2, 3):
        state = ([p.copy() for p in params], [[a.copy() for a in s] for s in slots])
        run(optim, state[0], grads, state[1], transforms, threads)
        for got, want in zip(state[0] + sum(state[1], []), expected[0] + sum(expected[1], [])):
            np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])
        results.append(state[0] + sum(state[1], []))
    assert all(np.array_equal(a, b) for other in results[1:] for a, b in zip(results[0], other))


def test_adam_update_matches_formula(rng):
    p, g = rng.standard_normal(100), rng.standard_normal(100)
    m, v = rng.standard_normal(100) * 0.1, rng.random(100) * 0.1
    p0, m0, v0 = p.copy(), m.copy(), v.copy()
    optim.adam_update([p], [g], [m], [v], [None], 1e-3, 0.9, 0.999, 1e-7, 3, None, 0.0, None, 2)
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
                       momentum, 1e-7, centered, None, 0.0, None, 2)
    optim.rmsprop_update([p], [g], [ms], [buf], [mg], 0.01, 0.9, momentum, 1e-7, centered, None,
                         0.0, None, 2)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for a, b in zip(state, expected):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_rmsprop_kernel_refuses_missing_slots():
    a = np.zeros(4)
    with pytest.raises(ValueError, match="momentum_buffer"):
        optim.rmsprop_update([a], [a], [a.copy()], [None], [None], 0.1, 0.9, 0.5, 1e-7, False,
                             None, 0.0, None, 1)


X = (None, 0.0, None)  # no gradient transforms


@pytest.mark.parametrize("call,exc,match", [
    (lambda a: optim.adam_update([a], [a], [None], [a.copy()], [None], 1e-3, 0.9, 0.999, 1e-7, 1,
                                 *X, 1), TypeError, "m to hold arrays"),
    (lambda a: optim.adam_update([a], [a[:3]], [a.copy()], [a.copy()], [None], 1e-3, 0.9, 0.999,
                                 1e-7, 1, *X, 1), ValueError, "4 elements"),
    (lambda a: optim.adam_update([a, a.copy()], [a], [a.copy()] * 2, [a.copy()] * 2, [None] * 2,
                                 1e-3, 0.9, 0.999, 1e-7, 1, *X, 1), ValueError, "2 arrays"),
    (lambda a: optim.adam_update([a], [a], [a.copy()], [a.copy()], [a[:2].copy()], 1e-3, 0.9,
                                 0.999, 1e-7, 1, *X, 1), ValueError, "4 elements"),
    (lambda a: optim.sgd_update([a], [a], [None], 0.1, 0.9, False, *X, 1), ValueError, "velocity"),
    (lambda a: optim.sgd_update([None], [a], [a.copy()], 0.1, 0.9, False, *X, 1), TypeError,
     "param 0"),
    (lambda a: optim.sgd_update([a], [None], [a.copy()], 0.1, 0.9, False, *X, 1), TypeError,
     "grad 0"),
    (lambda a: optim.sgd_update([a], [a], [np.zeros(2)], 0.1, 0.9, False, *X, 1), ValueError,
     "4 elements"),
    (lambda a: optim.sgd_update([a], [a], [a.copy()], 0.1, 0.9, False, np.ones(2), 0.0, None, 1),
     ValueError, "one grad_scale per param"),
    (lambda a: optim.sgd_update([a], [a], [a.copy()], 0.1, 0.9, False, None, 0.0, np.ones(3), 1),
     ValueError, "one decay per param"),
    (lambda a: optim.sgd_update([a], [a], [a.copy()], 0.1, 0.9, False, None, -1.0, None, 1),
     ValueError, "clip_value >= 0"),
    (lambda a: optim.rmsprop_update([a], [a], [a[:2].copy()], [None], [None], 0.1, 0.9, 0.0, 1e-7,
                                    False, *X, 1), ValueError, "4 elements"),
    (lambda a: optim.lion_update([a], [a], [None], 0.1, 0.9, 0.99, *X, 1), TypeError, "m to hold"),
    (lambda a: optim.accumulate_gradients([a], [a[:1]], 1, 2, 1), ValueError, "4 elements"),
    (lambda a: optim.accumulate_gradients([a], [a], 3, 2, 1), ValueError, "mode"),
])
def test_update_kernels_refuse_missing_or_short_operands(call, exc, match):
    """The C loops index every operand alike: a missing or short one is refused, not read past."""
    with pytest.raises(exc, match=match):
        call(np.zeros(4))
