"""The activation functions of Keras 3 (beside relu, sigmoid, tanh and softmax, which
test_activation_kernels.py covers) and PReLU, through the ops facade that picks their kernels:
torch as the oracle of the forward pass and the gradient, central differences in float64, Keras's
constants at known points, extreme inputs, and bitwise thread-count independence."""
import math

import numpy as np
import pytest

from fastcnn._ops import activation as ops
from conftest import numeric_grad

# (name, Keras options): every activation by name, and the options of those that take some.
CASES = [
    ("elu", {}), ("elu", {"alpha": 0.5}), ("selu", {}), ("gelu", {}), ("gelu", {"approximate": True}),
    ("silu", {}), ("swish", {}), ("softplus", {}), ("softsign", {}), ("leaky_relu", {}),
    ("leaky_relu", {"negative_slope": 0.3}), ("relu6", {}), ("hard_sigmoid", {}), ("hard_silu", {}),
    ("hard_swish", {}), ("mish", {}), ("exponential", {}), ("log_softmax", {}),
    ("log_softmax", {"axis": 1}), ("softmax", {"axis": 0}), ("softmax", {"axis": (1, 2)}),
    ("relu", {"max_value": 6.0}), ("relu", {"threshold": 0.5}),
    ("relu", {"negative_slope": 0.1, "max_value": 2.5, "threshold": 0.4}),
]
KINKS = {"leaky_relu": [0], "relu6": [0, 6], "hard_sigmoid": [-3, 3], "hard_silu": [-3, 3],
         "hard_swish": [-3, 3], "relu": [0, 0.4, 0.5, 2.5, 6]}


def case_id(case):
    name, options = case
    return name + "".join(f"-{k}={v}" for k, v in options.items())


def torch_function(name, options):
    """The torch function equal to activation ``name`` with ``options``, on a (4, 5, 6) tensor."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    axis = options.get("axis", -1)
    relu = {(): F.relu6, ("threshold",): lambda t: F.threshold(t, 0.5, 0.0)}
    return {
        "elu": lambda t: F.elu(t, options.get("alpha", 1.0)),
        "selu": F.selu,
        "gelu": lambda t: F.gelu(t, approximate="tanh" if options.get("approximate") else "none"),
        "silu": F.silu, "swish": F.silu,
        "softplus": lambda t: F.softplus(t, threshold=1e9),
        "softsign": F.softsign,
        "leaky_relu": lambda t: F.leaky_relu(t, options.get("negative_slope", 0.2)),
        "relu6": F.relu6,
        # Keras 3's definition, which torch's hardsigmoid shares; its own backward multiplies
        # by a float32 1/6 even in float64, 3e-8 off
        "hard_sigmoid": lambda t: F.relu6(t + 3) / 6,
        "hard_silu": F.hardswish, "hard_swish": F.hardswish,
        "mish": F.mish,
        "exponential": torch.exp,
        "log_softmax": lambda t: F.log_softmax(t, dim=axis),
        # torch's softmax takes one axis: over several, the exp of x less their log-sum-exp
        "softmax": lambda t: torch.exp(t - torch.logsumexp(t, dim=axis, keepdim=True)),
        # relu's options as torch has them: a cap of 6, or a threshold without a slope
        "relu": lambda t: relu[tuple(k for k in options if k != "max_value")](t),
    }[name]


def keras_relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's relu with options, in its own steps: x above the threshold clipped to
    [0, max_value], less negative_slope * relu(threshold - x)."""
    above = x * (x > threshold)
    if max_value is not None:
        above = np.clip(above, 0, max_value)
    return above - negative_slope * np.maximum(threshold - x, 0)


def away_from_kinks(x, name):
    for kink in KINKS.get(name, []):
        near = np.abs(x - kink) < 1e-3
        x[near] = kink + 0.01
    return x


def forward_and_grad(name, options, x, dy):
    y = ops.activation_forward(name, x, **options)
    saved = x if ops.backward_reads_input(name) else y
    return y, ops.activation_backward(name, saved, dy, **options)


TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-6, atol=2e-6)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_activation_matches_torch(case, dtype, rng):
    """Forward and gradient against torch (in float64, on the same values)."""
    torch = pytest.importorskip("torch")
    name, options = case
    if name == "relu" and "negative_slope" in options:
        pytest.skip("torch has no relu with a slope, a cap and a threshold at once: "
                    "test_relu_options_follow_keras covers it")
    x = away_from_kinks(rng.standard_normal((4, 5, 6)) * 4, name).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y, dx = forward_and_grad(name, options, x, dy)
    t = torch.tensor(x.astype(np.float64), requires_grad=True)
    want = torch_function(name, options)(t)
    want.backward(torch.tensor(dy.astype(np.float64)))
    tol = TOLERANCES[dtype]
    scale = np.abs(want.detach().numpy()).max()  # exp's outputs reach e^16
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=tol["rtol"],
                               atol=tol["atol"] * max(1, scale))
    np.testing.assert_allclose(dx, t.grad.numpy(), rtol=tol["rtol"],
                               atol=tol["atol"] * max(1, scale))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_activation_gradient_finite_differences(case, rng):
    name, options = case
    x = away_from_kinks(rng.uniform(-5, 5, (3, 4, 5)), name)
    probe = rng.standard_normal(x.shape)

    def f():
        return float((ops.activation_forward(name, x, **options) * probe).sum())

    _, dx = forward_and_grad(name, options, x, probe)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("options", [{}, {"negative_slope": 0.5}, {"max_value": 5.0},
                                     {"threshold": 5.0}, {"max_value": 0.0},
                                     {"negative_slope": 0.1, "max_value": 2.5, "threshold": 0.4},
                                     {"negative_slope": 0.3, "max_value": 1.0, "threshold": 2.0}])
def test_relu_options_follow_keras(options, rng):
    """Keras's documented examples, and its formula over random values with every option."""
    examples = {(): [0, 0, 0, 5, 10], ("negative_slope",): [-5, -2.5, 0, 5, 10],
                ("max_value",): [0, 0, 0, 5, 5], ("threshold",): [0, 0, 0, 0, 10]}
    key = tuple(options)
    if key in examples and options.get("max_value", 5.0) == 5.0:
        got = ops.activation_forward("relu", np.array([-10, -5, 0.0, 5, 10]), **options)
        np.testing.assert_array_equal(got, examples[key])
    x = rng.uniform(-4, 4, 1000)
    np.testing.assert_allclose(ops.activation_forward("relu", x, **options),
                               keras_relu(x, **options), rtol=1e-15, atol=1e-15)


def test_keras_constants_and_defaults():
    """Values at known points: selu's constants, gelu exact by default, Keras 3's hard sigmoid
    (relu6(x + 3) / 6, not Keras 2's 0.2 x + 0.5), leaky_relu's slope 0.2."""
    def at(name, v, **options):
        return float(ops.activation_forward(name, np.array([v]), **options)[0])

    assert at("selu", 1.0) == pytest.approx(1.0507009873554805, rel=1e-15)
    assert at("selu", -50.0) == pytest.approx(-1.0507009873554805 * 1.6732632423543772, rel=1e-15)
    assert at("gelu", 1.0) == pytest.approx(0.5 * (1 + math.erf(1 / math.sqrt(2))), rel=1e-15)
    assert at("gelu", 1.0, approximate=True) == pytest.approx(
        0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * (1 + 0.044715))), rel=1e-15)
    assert at("hard_sigmoid", 1.0) == pytest.approx(4 / 6, rel=1e-15)
    assert at("hard_silu", 1.0) == pytest.approx(4 / 6, rel=1e-15)
    assert at("leaky_relu", -1.0) == pytest.approx(-0.2, rel=1e-15)
    assert at("elu", -1.0) == pytest.approx(math.expm1(-1), rel=1e-15)
    assert at("softsign", 3.0) == 0.75
    assert at("exponential", 2.0) == pytest.approx(math.e**2, rel=1e-15)
    assert at("swish", 2.0) == at("silu", 2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_stay_finite(dtype):
    """Large magnitudes give the limits, not NaN: softplus neither overflows nor loses its
    small values, silu and mish go to 0 below, and their gradients with them."""
    x = np.array([-1e4, -800, -50, 50, 800, 1e4], dtype)
    for name in ("elu", "selu", "gelu", "silu", "softplus", "softsign", "hard_sigmoid",
                 "hard_silu", "mish", "log_softmax"):
        for approximate in ((False, True) if name == "gelu" else (None,)):
            options = {} if approximate is None else {"approximate": approximate}
            y, dx = forward_and_grad(name, options, x, np.ones_like(x))
            assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx)), name
    np.testing.assert_array_equal(ops.activation_forward("softplus", x)[[0, -1]], [0, 1e4])
    tiny = ops.activation_forward("softplus", np.array([-50.0]))
    assert tiny[0] == pytest.approx(math.exp(-50), rel=1e-14)
    np.testing.assert_allclose(forward_and_grad("softplus", {}, np.array([-50.0]),
                                                np.ones(1))[1], [math.exp(-50)], rtol=1e-14)


@pytest.mark.parametrize("case", CASES + [("prelu", {})], ids=case_id)
def test_activations_threads_agree(case, rng):
    """Past the threading threshold, 1, 2 and 3 threads give bitwise the same forward and
    backward."""
    name, options = case
    x = (rng.standard_normal((50, 40, 30)) * 4).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    alpha = rng.standard_normal((1, 30)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        if name == "prelu":
            y = ops.prelu_forward(x, alpha, n_threads=threads)
            results.append((y, *ops.prelu_backward(x, alpha, dy, n_threads=threads)))
            continue
        y = ops.activation_forward(name, x, n_threads=threads, **options)
        saved = x if ops.backward_reads_input(name) else y
        results.append((y, ops.activation_backward(name, saved, dy, n_threads=threads,
                                                   **options)))
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other))


@pytest.mark.parametrize("out_is", ["saved", "dy"])
@pytest.mark.parametrize("name", ["gelu", "elu", "log_softmax", "softmax"])
def test_backward_in_place(name, out_is, rng):
    x = rng.standard_normal((6, 7))
    dy = rng.standard_normal(x.shape)
    y, want = forward_and_grad(name, {"axis": 0} if name == "softmax" else {}, x, dy)
    saved = (x if ops.backward_reads_input(name) else y).copy()
    dy = dy.copy()
    out = saved if out_is == "saved" else dy
    got = ops.activation_backward(name, saved, dy, out=out,
                                  **({"axis": 0} if name == "softmax" else {}))
    assert got is out
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("name,options,error,fragments", [
    ("relu", {"max_value": -1.0}, ValueError, ["max_value", "-1.0"]),
    ("relu", {"negative_slope": None}, ValueError, ["negative_slope", "None"]),
    ("relu", {"threshold": -0.5}, ValueError, ["threshold", "-0.5"]),
    ("leaky_relu", {"negative_slope": -0.1}, ValueError, ["negative_slope"]),
    ("elu", {"alpha": -1.0}, ValueError, ["alpha"]),
    ("gelu", {"approximate": "yes"}, ValueError, ["approximate", "'yes'"]),
    ("softmax", {"axis": 3}, ValueError, ["axis", "3"]),
    ("softmax", {"axis": [1, 1]}, ValueError, ["axis"]),
    ("selu", {"alpha": 1.0}, TypeError, ["selu", "alpha"]),
])
def test_bad_options_are_refused(name, options, error, fragments):
    with pytest.raises(error) as info:
        ops.activation_forward(name, np.zeros((2, 3)), **options)
    for fragment in fragments:
        assert fragment in str(info.value)


# ---- PReLU ------------------------------------------------------------------------------------

def prelu_case(rng, shape, shared_axes, dtype=np.float64):
    alpha_shape = tuple(1 if i + 1 in shared_axes else d for i, d in enumerate(shape[1:]))
    return (rng.standard_normal(shape).astype(dtype),
            rng.uniform(-0.5, 1.5, alpha_shape).astype(dtype))


@pytest.mark.parametrize("shared_axes", [(), (1, 2), (3,), (1,), (2,), (1, 3), (1, 2, 3)])
def test_prelu_gradients_finite_differences(shared_axes, rng):
    x, alpha = prelu_case(rng, (3, 4, 5, 2), shared_axes)
    x[np.abs(x) < 1e-3] = 0.1
    probe = rng.standard_normal(x.shape)

    def f():
        return float((ops.prelu_forward(x, alpha) * probe).sum())

    dx, dalpha = ops.prelu_backward(x, alpha, probe)
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(dalpha, numeric_grad(f, alpha), rtol=1e-7, atol=1e-8)
    y = ops.prelu_forward(x, alpha)
    np.testing.assert_allclose(y, np.where(x > 0, x, alpha * x), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prelu_matches_torch(dtype, rng):
    """One slope per channel (shared_axes=[1, 2] of NHWC) is torch's PReLU on NCHW."""
    torch = pytest.importorskip("torch")
    x, alpha = prelu_case(rng, (2, 5, 6, 3), (1, 2), dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y = ops.prelu_forward(x, alpha)
    dx, dalpha = ops.prelu_backward(x, alpha, dy)
    t = torch.tensor(x.astype(np.float64)).permute(0, 3, 1, 2).requires_grad_()
    w = torch.tensor(alpha.reshape(-1).astype(np.float64), requires_grad=True)
    out = torch.nn.functional.prelu(t, w)
    out.backward(torch.tensor(dy.astype(np.float64)).permute(0, 3, 1, 2))
    tol = TOLERANCES[dtype]
    np.testing.assert_allclose(y, out.detach().permute(0, 2, 3, 1).numpy(), **tol)
    np.testing.assert_allclose(dx, t.grad.permute(0, 2, 3, 1).numpy(), **tol)
    np.testing.assert_allclose(dalpha.reshape(-1), w.grad.numpy(), rtol=tol["rtol"] * 10,
                               atol=tol["atol"] * 10)


def test_prelu_refuses_slopes_of_another_shape_or_too_many_runs(rng):
    x = np.zeros((2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="alpha"):
        ops.prelu_forward(x, np.zeros((3, 4, 5, 5)))
    # slopes varying along axes 1 and 3 but shared over 2 and 4: three runs of unshared axes
    with pytest.raises(ValueError, match="two runs"):
        ops.prelu_forward(x, np.zeros((3, 1, 5, 1)))
    # without the batch axis, the same slopes along runs 1 and 3 only: accepted
    assert ops.prelu_forward(np.ones((2, 3, 4, 5)), np.zeros((3, 1, 5))).shape == (2, 3, 4, 5)


def test_hard_sigmoid_is_torchs_hardsigmoid(rng):
    """torch's hardsigmoid is Keras 3's function; its backward carries a float32 1/6."""
    torch = pytest.importorskip("torch")
    x = away_from_kinks(rng.uniform(-5, 5, 200), "hard_sigmoid")
    dy = rng.standard_normal(x.shape)
    y, dx = forward_and_grad("hard_sigmoid", {}, x, dy)
    t = torch.tensor(x, requires_grad=True)
    out = torch.nn.functional.hardsigmoid(t)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(dx, t.grad.numpy(), rtol=1e-7)
