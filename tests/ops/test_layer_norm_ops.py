"""Layer and group normalisation ops: gradients against central differences in float64,
forward and gradients against torch, statistics per sample, and results bitwise independent of
the thread count."""
import numpy as np
import pytest

from conftest import numeric_grad
from fastcnn._ops import layer_norm

# (x's shape, axes): the last axis, the trailing ones, and axes that need moving last
LN_CASES = [((3, 4, 5, 6), (-1,)), ((2, 3, 4, 5), (1, 2, 3)), ((2, 3, 4, 5), (1, 2)),
            ((3, 4, 5), (1,)), ((2, 3, 4, 5), (3, 1)), ((5, 7), (1,))]
GN_CASES = [((2, 4, 5, 6), 3), ((3, 3, 2, 8), 1), ((2, 3, 3, 4), 4), ((4, 6), 2)]
EPS = 1e-3


def norm_shape(shape, axes):
    return tuple(shape[a] for a in axes)


def layernorm_pass(x, gamma, beta, u, axes):
    """(y, dx, dgamma, dbeta) of layer normalisation over ``axes`` with upstream gradient u."""
    y, mean, inv_std = layer_norm.layernorm_forward(x, gamma, beta, axes, EPS)
    dgamma, dbeta = np.empty_like(gamma), np.empty_like(beta)
    return y, layer_norm.layernorm_backward(x, u, gamma, mean, inv_std, axes, dgamma, dbeta), \
        dgamma, dbeta


def groupnorm_pass(x, gamma, beta, u, groups):
    """(y, dx, dgamma, dbeta) of group normalisation with upstream gradient u."""
    y, mean, inv_std = layer_norm.groupnorm_forward(x, gamma, beta, groups, EPS)
    dgamma, dbeta = np.empty_like(gamma), np.empty_like(beta)
    return y, layer_norm.groupnorm_backward(x, u, gamma, mean, inv_std, groups, dgamma, dbeta), \
        dgamma, dbeta


def operands(rng, shape, affine_shape):
    """x (mean 1, spread 2), gamma near 1, beta and an upstream gradient u, in float64."""
    return (rng.standard_normal(shape) * 2 + 1, 1 + 0.3 * rng.standard_normal(affine_shape),
            rng.standard_normal(affine_shape), rng.standard_normal(shape))


@pytest.mark.parametrize("run,shape,arg", [
    *((layernorm_pass, shape, axes) for shape, axes in LN_CASES),
    *((groupnorm_pass, shape, groups) for shape, groups in GN_CASES)])
def test_gradients_match_central_differences(run, shape, arg, rng):
    affine = norm_shape(shape, arg) if run is layernorm_pass else shape[-1]
    x, gamma, beta, u = operands(rng, shape, affine)
    _, dx, dgamma, dbeta = run(x, gamma, beta, u, arg)

    def f():
        return float(np.sum(run(x, gamma, beta, u, arg)[0] * u))
    for analytic, wrt in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        np.testing.assert_allclose(analytic, numeric_grad(f, wrt), rtol=1e-6, atol=1e-7)


def test_layernorm_normalises_each_sample_over_its_axes(rng):
    """With gamma 1 and beta 0: mean 0 and variance var / (var + epsilon) over the normalised
    axes, for every position of the others."""
    x = rng.standard_normal((3, 4, 5, 6)) * 3 + 2
    y, mean, inv_std = layer_norm.layernorm_forward(x, np.ones((4, 6)), np.zeros((4, 6)), (1, 3),
                                                    EPS)
    var = x.var(axis=(1, 3))
    np.testing.assert_allclose(y.mean(axis=(1, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(1, 3)), var / (var + EPS), rtol=1e-12)
    np.testing.assert_allclose(mean, x.mean(axis=(1, 3)).reshape(-1), rtol=1e-12)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(var + EPS).reshape(-1), rtol=1e-12)


def test_groupnorm_with_one_channel_per_group_is_instance_normalisation(rng):
    x = rng.standard_normal((2, 5, 4, 3)) * 3 + 2
    y = layer_norm.groupnorm_forward(x, np.ones(3), np.zeros(3), 3, EPS)[0]
    var = x.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y, (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(var + EPS),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bad,fragment", [
    ({"axes": (0,)}, "axis"), ({"axes": (4,)}, "axis"), ({"axes": (1, -3)}, "axis"),
    ({"axes": ()}, "axis"), ({"axes": 1.5}, "axis"), ({"gamma": np.ones(5)}, "gamma")])
def test_layernorm_refuses_bad_arguments(bad, fragment):
    args = {"x": np.zeros((2, 3, 4, 5)), "gamma": np.ones(5), "beta": np.zeros(5),
            "axes": (-1,), "epsilon": EPS}
    if "gamma" in bad:
        args["axes"] = (2,)
    args.update(bad)
    with pytest.raises(ValueError, match=fragment):
        layer_norm.layernorm_forward(**args)


@pytest.mark.parametrize("groups", [0, 4, -1, 2.0, True])
def test_groupnorm_refuses_groups_that_do_not_divide_the_channels(groups):
    with pytest.raises(ValueError, match="groups"):
        layer_norm.groupnorm_forward(np.zeros((2, 3, 6)), np.ones(6), np.zeros(6), groups, EPS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_the_thread_count(dtype, rng):
    """Shapes above the one-thread threshold, with more samples than threads and rows that do
    not split evenly."""
    x = (rng.standard_normal((5, 33, 17, 32)) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    gamma, beta = (rng.standard_normal(32).astype(dtype) for _ in range(2))
    runs = []
    for threads in (1, 2, 3):
        ln = layer_norm.layernorm_forward(x, gamma, beta, (-1,), EPS, n_threads=threads)
        ln_grads = (np.empty_like(gamma), np.empty_like(beta))
        ln_dx = layer_norm.layernorm_backward(x, dy, gamma, *ln[1:], (-1,), *ln_grads,
                                              n_threads=threads)
        gn = layer_norm.groupnorm_forward(x, gamma, beta, 8, EPS, n_threads=threads)
        gn_grads = (np.empty_like(gamma), np.empty_like(beta))
        gn_dx = layer_norm.groupnorm_backward(x, dy, gamma, *gn[1:], 8, *gn_grads,
                                              n_threads=threads)
        runs.append([*ln, *ln_grads, ln_dx, *gn, *gn_grads, gn_dx])
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            assert np.array_equal(a, b)


# ---- torch as the oracle -------------------------------------------------------------------

def torch_grads(fn, *arrays):
    """fn's output, then the gradients of sum(output * u) for each array, u the last array."""
    torch = pytest.importorskip("torch")
    *inputs, u = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    y = fn(*inputs)
    (y * u).sum().backward()
    return [y.detach().numpy(), *(t.grad.numpy() for t in inputs)]


@pytest.mark.parametrize("shape,axes", [((3, 4, 5, 6), (-1,)), ((2, 3, 4, 5), (1, 2, 3)),
                                        ((2, 3, 4, 5), (1, 2))])
def test_layernorm_matches_torch(shape, axes, rng):
    torch = pytest.importorskip("torch")
    x, gamma, beta, u = operands(rng, shape, norm_shape(shape, axes))
    moved = list(layer_norm.normalized_axes(axes, len(shape)))
    perm = [a for a in range(len(shape)) if a not in moved] + moved

    def fn(tx, tg, tb):  # torch normalises trailing axes: move them there and back
        y = torch.nn.functional.layer_norm(tx.permute(perm), tg.shape, tg, tb, EPS)
        return y.permute(list(np.argsort(perm)))
    for got, want in zip(layernorm_pass(x, gamma, beta, u, axes),
                         torch_grads(fn, x, gamma, beta, u), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape,groups", GN_CASES[:3])
def test_groupnorm_matches_torch(shape, groups, rng):
    torch = pytest.importorskip("torch")
    x, gamma, beta, u = operands(rng, shape, shape[-1])

    def fn(tx, tg, tb):  # torch is NCHW
        return torch.nn.functional.group_norm(tx.permute(0, 3, 1, 2), groups, tg, tb,
                                              EPS).permute(0, 2, 3, 1)
    for got, want in zip(groupnorm_pass(x, gamma, beta, u, groups),
                         torch_grads(fn, x, gamma, beta, u), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_float32_matches_torch_to_float32_round_off(rng):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((4, 8, 8, 16)) * 2 + 1).astype(np.float32)
    gamma, beta = (rng.standard_normal(16).astype(np.float32) for _ in range(2))
    tx = torch.tensor(x).permute(0, 3, 1, 2)
    want_ln = torch.nn.functional.layer_norm(torch.tensor(x), (16,), torch.tensor(gamma),
                                             torch.tensor(beta), EPS).numpy()
    want_gn = torch.nn.functional.group_norm(tx, 4, torch.tensor(gamma), torch.tensor(beta),
                                             EPS).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(layer_norm.layernorm_forward(x, gamma, beta, (-1,), EPS)[0],
                               want_ln, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer_norm.groupnorm_forward(x, gamma, beta, 4, EPS)[0],
                               want_gn, rtol=1e-5, atol=1e-5)
