"""fastcnn.ops' nn and image ops against PyTorch: values on arrays, and gradients through the
engine against torch.autograd, in float64."""
import numpy as np
import pytest

from fastcnn import ops
from fastcnn.ops.function import Function

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _compare(fn, torch_fn, arrays, wrt, rtol=1e-9, atol=1e-10, seed=0):
    """fn's value and the engine's gradients of sum(fn * upstream) against torch_fn's, for the
    arguments ``wrt``."""
    out = np.asarray(fn(*arrays))
    tensors = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    want = torch_fn(*tensors)
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=rtol, atol=atol)
    upstream = np.random.default_rng(seed).normal(size=out.shape)
    (want * torch.tensor(upstream)).sum().backward()
    _, grads = Function(fn).value_and_grad(arrays, upstream, wrt)
    for i, grad in zip(wrt, grads, strict=True):
        np.testing.assert_allclose(grad, tensors[i].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of argument {i}")


ACTIVATIONS = {
    "relu": (ops.relu, F.relu), "relu6": (ops.relu6, F.relu6),
    "sigmoid": (ops.sigmoid, torch.sigmoid), "tanh": (ops.tanh, torch.tanh),
    "softplus": (ops.softplus, F.softplus),
    "gelu": (ops.gelu, lambda x: F.gelu(x, approximate="tanh")),
    "gelu_exact": (lambda x: ops.gelu(x, approximate=False), F.gelu),
    "silu": (ops.silu, F.silu),
    "leaky_relu": (ops.leaky_relu, lambda x: F.leaky_relu(x, 0.2)),
    "elu": (lambda x: ops.elu(x, alpha=0.7), lambda x: F.elu(x, 0.7)),
    "softmax": (ops.softmax, lambda x: F.softmax(x, -1)),
    "softmax_axis0": (lambda x: ops.softmax(x, axis=0), lambda x: F.softmax(x, 0)),
    "log_softmax": (ops.log_softmax, lambda x: F.log_softmax(x, -1)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_match_torch(name):
    x = np.random.default_rng(1).normal(size=(4, 7)) * 4
    x[np.abs(x) < 1e-3] = 0.5  # no kink within reach
    fn, torch_fn = ACTIVATIONS[name]
    _compare(fn, torch_fn, [x], [0], rtol=1e-7, atol=1e-9)
    assert fn(x.astype(np.float32)).dtype == np.float32


def _nchw(fn):
    """A torch function of NCHW images and OIHW kernels, on NHWC images and HWIO kernels."""
    def wrapped(x, kernel):
        return fn(x.permute(0, 3, 1, 2), kernel).permute(0, 2, 3, 1)
    return wrapped


@pytest.mark.parametrize("strides,padding,dilation", [(1, "valid", 1), (2, "valid", 1),
                                                      (1, "same", 1), (1, "valid", 2)], ids=str)
def test_conv_matches_torch(strides, padding, dilation):
    rng = np.random.default_rng(2)
    x, kernel = rng.normal(size=(2, 7, 6, 3)), rng.normal(size=(3, 3, 3, 4))
    _compare(lambda a, k: ops.conv(a, k, strides, padding, dilation_rate=dilation),
             _nchw(lambda a, k: F.conv2d(a, k.permute(3, 2, 0, 1), stride=strides,
                                         padding=padding, dilation=dilation)),
             [x, kernel], [0, 1])


def test_depthwise_conv_matches_torch():
    rng = np.random.default_rng(3)
    x, kernel = rng.normal(size=(2, 6, 6, 3)), rng.normal(size=(3, 3, 3, 2))

    def torch_fn(a, k):  # (kh, kw, c, m) -> (c * m, 1, kh, kw), channel c * m + j
        weight = k.permute(2, 3, 0, 1).reshape(6, 1, 3, 3)
        return F.conv2d(a.permute(0, 3, 1, 2), weight, stride=2, groups=3).permute(0, 2, 3, 1)

    _compare(lambda a, k: ops.depthwise_conv(a, k, strides=2), torch_fn, [x, kernel], [0, 1])


def test_conv_transpose_matches_torch():
    rng = np.random.default_rng(4)
    x, kernel = rng.normal(size=(2, 4, 5, 3)), rng.normal(size=(3, 3, 2, 3))

    def torch_fn(a, k):  # Keras's (kh, kw, out, in) -> torch's (in, out, kh, kw)
        return F.conv_transpose2d(a.permute(0, 3, 1, 2), k.permute(3, 2, 0, 1),
                                  stride=2).permute(0, 2, 3, 1)

    _compare(lambda a, k: ops.conv_transpose(a, k, strides=2), torch_fn, [x, kernel], [0, 1])


@pytest.mark.parametrize("pool_size,strides", [(2, None), (3, 2), ((2, 3), (1, 2))], ids=str)
def test_pooling_matches_torch(pool_size, strides):
    x = np.random.default_rng(5).permutation(2 * 7 * 6 * 3).reshape(2, 7, 6, 3) * 0.1
    torch_strides = pool_size if strides is None else strides
    for fn, torch_pool in ((ops.max_pool, F.max_pool2d), (ops.average_pool, F.avg_pool2d)):
        _compare(lambda a, fn=fn: fn(a, pool_size, strides),
                 lambda a, pool=torch_pool: pool(a.permute(0, 3, 1, 2), pool_size,
                                                 torch_strides).permute(0, 2, 3, 1), [x], [0])


def test_image_resize_matches_torch_bilinear():
    x = np.random.default_rng(6).normal(size=(2, 5, 7, 3))
    for size in ((9, 4), (3, 11)):
        # the resize maps' weights are computed in float32, as TensorFlow's are, whatever the
        # images' dtype: float32 round-off bounds the difference
        _compare(lambda a, size=size: ops.image.resize(a, size),
                 lambda a, size=size: F.interpolate(a.permute(0, 3, 1, 2), size=size,
                                                    mode="bilinear", align_corners=False
                                                    ).permute(0, 2, 3, 1), [x], [0],
                 rtol=1e-6, atol=2e-6)
    assert ops.image.resize(x[0], (4, 4)).shape == (4, 4, 3)


def test_batch_normalization_and_moments_match_torch():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 3, 5))
    mean, var, gamma, beta = (rng.normal(size=(3,)) for _ in range(4))
    var = np.abs(var) + 0.1
    _compare(lambda a, m, v, g, b: ops.batch_normalization(a, m, v, axis=1, offset=b, scale=g,
                                                           epsilon=1e-3),
             lambda a, m, v, g, b: (a - m[:, None]) / torch.sqrt(v[:, None] + 1e-3) * g[:, None]
             + b[:, None],
             [x, mean, var, gamma, beta], [0, 1, 2, 3, 4])
    _compare(lambda a: ops.moments(a, axes=(0, 2))[1] + ops.moments(a, axes=(0, 2))[0],
             lambda a: a.var(dim=(0, 2), unbiased=False) + a.mean(dim=(0, 2)), [x], [0])


def test_cross_entropies_match_torch():
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(5, 4)) * 2
    labels = rng.integers(0, 4, size=5)
    target = rng.dirichlet(np.ones(4), size=5)
    _compare(lambda t, o: ops.categorical_crossentropy(t, o, from_logits=True),
             lambda t, o: F.cross_entropy(o, t, reduction="none"), [target, logits], [1])
    _compare(lambda o: ops.sparse_categorical_crossentropy(labels, o, from_logits=True),
             lambda o: F.cross_entropy(o, torch.tensor(labels), reduction="none"), [logits], [0])
    probs = F.softmax(torch.tensor(logits), -1).numpy()
    _compare(lambda t, p: ops.categorical_crossentropy(t, p),
             lambda t, p: -(t * torch.log(p / p.sum(-1, keepdim=True))).sum(-1),
             [target, probs], [1])
    _compare(lambda p: ops.sparse_categorical_crossentropy(labels[:, None], p),
             lambda p: F.nll_loss(torch.log(p / p.sum(-1, keepdim=True)), torch.tensor(labels),
                                  reduction="none"), [probs], [0])
    bits = rng.integers(0, 2, size=(5, 4)).astype(np.float64)
    _compare(lambda t, o: ops.binary_crossentropy(t, o, from_logits=True),
             lambda t, o: F.binary_cross_entropy_with_logits(o, t, reduction="none"),
             [bits, logits], [1])
    _compare(lambda t, p: ops.binary_crossentropy(t, p),
             lambda t, p: F.binary_cross_entropy(p, t, reduction="none"), [bits, probs], [1])


def test_one_hot_matches_torch():
    labels = np.array([[0, 3], [2, 1]])
    want = F.one_hot(torch.tensor(labels), 4).numpy()
    np.testing.assert_array_equal(ops.one_hot(labels, 4), want)
    assert ops.one_hot(labels, 4).dtype == np.float32
    np.testing.assert_array_equal(ops.one_hot(labels, 4, axis=0), np.moveaxis(want, -1, 0))
    np.testing.assert_array_equal(ops.one_hot(np.array([5, -1]), 3), np.zeros((2, 3)))


def test_nn_ops_infer_symbolic_shapes():
    from fastcnn.engine.tensor import KerasTensor
    x = KerasTensor((None, 8, 8, 3))
    assert ops.conv(x, np.zeros((3, 3, 3, 5), np.float32), strides=2).shape == (None, 3, 3, 5)
    assert ops.conv(x, np.zeros((3, 3, 3, 5), np.float32), padding="same").shape == \
        (None, 8, 8, 5)
    assert ops.depthwise_conv(x, np.zeros((3, 3, 3, 2), np.float32)).shape == (None, 6, 6, 6)
    assert ops.conv_transpose(x, np.zeros((3, 3, 4, 3), np.float32), 2).shape == \
        (None, 17, 17, 4)
    assert ops.max_pool(x, 2).shape == (None, 4, 4, 3)
    assert ops.image.resize(x, (5, 6)).shape == (None, 5, 6, 3)
    assert ops.softmax(x).shape == (None, 8, 8, 3)
    assert ops.one_hot(KerasTensor((None,), "int64"), 10).shape == (None, 10)
    assert ops.sparse_categorical_crossentropy(KerasTensor((None,), "float32"),
                                               KerasTensor((None, 10))).shape == (None,)
