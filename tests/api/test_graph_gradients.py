"""Weight gradients of graph models against finite differences, and SGD steps against PyTorch.

The engine's backward (float32) is compared with five-point central differences of the objective
sum(outputs * upstream), for a fixed upstream gradient, computed in float64 from the model's own
forward passes. Graphs covered: one tensor read by two branches joined by Add or Concatenate; one
Dense called at three places; functional models nested as layers (used twice, nested two deep,
frozen, called in both modes); convolutions, pooling and padding, BatchNormalization (batch
statistics, shared) and merges along two axes; Dropout, RandomFlip and RandomTranslation with
their draws fixed; two inputs and three outputs with a frozen layer.

PyTorch checks the forward pass and one SGD step of a ResNet-style block, and of two weighted
losses over a trunk with a regularized shared layer."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from fastcnn.engine.execution import Execution
from fastcnn.engine.graph import FlatGraph
from fastcnn.engine.plan import make_plan

# Five-point central differences (error O(EPS**4)) let the step be large, which keeps the
# float32 round-off of the forward passes (a few 1e-7 of the objective) small once divided by
# 12 * EPS. Measured on these nets, the worst entry is off by 3e-4 of the largest entry of its
# weight's gradient, the median by 1e-5 (a smaller step is worse, the round-off growing; a
# larger one too, the truncation). RTOL = 2e-3, relative to each entry plus 2e-3 of that largest
# entry, leaves a margin of over ten; a branch whose gradient is missing or counted twice
# changes entries by their own size.
EPS = 5e-2
RTOL = 2e-3


@pytest.fixture(autouse=True)
def one_thread():
    """Finite differences run thousands of passes over tiny tensors, where starting the kernels'
    threads would cost more than the arithmetic (six times the run time on a busy two-core
    machine). The results do not depend on the thread count (test_graph_equivalence)."""
    fastcnn.set_num_threads(1)
    yield
    fastcnn.set_num_threads(None)


class Objective:
    """sum_k sum(output_k * upstream_k) of ``model`` on ``xs``, in mode ``training``. Every
    pass starts from the same state: the non-trained weights as they were at the start (a pass
    in training mode moves BatchNormalization's moving statistics, which a call in inference
    mode elsewhere in the graph reads), and the random layers drawing the same masks and
    transforms."""

    def __init__(self, model, xs, training):
        self.model, self.xs, self.training = model, xs, training
        self.state = [w.copy() for w in model.non_trainable_weights]

    def execution(self, loss_outputs=None):
        return Execution(make_plan(FlatGraph(self.model._built_graph(), self.training), True,
                                   loss_outputs=loss_outputs))

    def outputs(self, execution):
        for w, value in zip(self.model.non_trainable_weights, self.state):
            w[...] = value
        execution.seed_random(7, 0)
        return execution.forward(self.xs)


def engine_gradients(objective, upstream):
    """{id(weight): its gradient} by the engine's backward pass, with the fused plan;
    ``upstream`` holds None for an output without a gradient."""
    execution = objective.execution(loss_outputs=[u is not None for u in upstream])
    objective.outputs(execution)
    execution.backward(upstream)
    return {id(w): g.copy() for w, g in zip(execution.plan.trained, execution.gradients)}


def numeric_gradient(objective, upstream, weight):
    """Five-point central differences of the objective over each entry of ``weight``, in
    float64. The float32 weight lands within half an ulp (6e-8 here) of each nominal point,
    which moves the result by less than 1e-5 of the gradient's scale."""
    execution = objective.execution()
    ups = [None if u is None else u.astype(np.float64) for u in upstream]

    def value():
        return sum(float((o.astype(np.float64) * u).sum())
                   for o, u in zip(objective.outputs(execution), ups) if u is not None)

    grad = np.zeros(weight.shape)
    flat = weight.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        f = []
        for k in (-2, -1, 1, 2):
            flat[i] = keep + np.float32(k * EPS)
            f.append(value())
        flat[i] = keep
        grad.reshape(-1)[i] = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * EPS)
    return grad


def check_gradients(model, xs, n_trained, training=False, skip_outputs=()):
    """Every trained weight's gradient against finite differences; ``xs`` an array or a list,
    ``skip_outputs`` the outputs that get no upstream gradient."""
    objective = Objective(model, xs if isinstance(xs, list) else [xs], training)
    rng = np.random.default_rng(3)
    upstream = [None if k in skip_outputs else rng.standard_normal(o.shape).astype(np.float32)
                for k, o in enumerate(objective.outputs(objective.execution()))]
    grads = engine_gradients(objective, upstream)
    assert len(grads) == n_trained
    for owner, i in model._weight_owners():
        w = owner._weights[i]
        name = f"{owner.name}/{owner._weight_names[i]}"
        if not model._is_trained(owner, i):
            assert id(w) not in grads, f"{name} is not trained, yet has a gradient"
            continue
        want = numeric_gradient(objective, upstream, w)
        if id(w) not in grads:
            # No output with a gradient reads it: the differences are float64 round-off.
            assert np.abs(want).max() < 1e-12, f"{name} has no gradient, yet moves the objective"
            continue
        scale = np.abs(want).max()
        assert scale > 1e-3, f"{name} has no gradient to check"
        np.testing.assert_allclose(grads[id(w)], want, rtol=RTOL, atol=RTOL * scale,
                                   err_msg=name)


def small_inputs(n=5, features=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, features)).astype(np.float32)


def random_biases(model, seed=1):
    """Nonzero biases (and BatchNormalization's gamma and beta), so that their gradients and
    the branches' differ from the defaults'."""
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        if w.ndim == 1:
            w[...] = rng.uniform(-0.5, 0.5, w.shape)


@pytest.mark.parametrize("merge", [layers.Add, layers.Concatenate])
def test_fan_out_into_two_branches(merge):
    fastcnn.utils.set_random_seed(10)
    inputs = fastcnn.Input((4,))
    shared_input = layers.Dense(5, activation="tanh")(inputs)  # read by both branches
    left = layers.Dense(3, activation="tanh")(shared_input)
    right = layers.Dense(3, activation="sigmoid")(layers.Dense(4, activation="tanh")(shared_input))
    model = fastcnn.Model(inputs, layers.Dense(2)(merge()([left, right])))
    random_biases(model)
    check_gradients(model, small_inputs(), 10)


def test_fan_out_of_the_input_into_three_merged_branches():
    """The input itself feeds three branches, and one branch is read by both merges."""
    fastcnn.utils.set_random_seed(11)
    inputs = fastcnn.Input((4,))
    a = layers.Dense(3, activation="tanh")(inputs)
    b = layers.Dense(3, activation="sigmoid")(inputs)
    c = layers.Dense(3, activation="tanh")(inputs)
    joined = layers.Concatenate()([layers.Add()([a, b, c]), b])
    model = fastcnn.Model(inputs, layers.Dense(2, activation="tanh")(joined))
    random_biases(model)
    check_gradients(model, small_inputs(), 8)


def test_a_layer_shared_at_three_places():
    """One Dense applied to one branch, and twice in a row to another: its gradient is the sum
    over its three calls."""
    fastcnn.utils.set_random_seed(12)
    inputs = fastcnn.Input((4,))
    shared = layers.Dense(4, activation="tanh")
    a = shared(layers.Dense(4, activation="tanh")(inputs))
    b = shared(shared(layers.Dense(4, activation="sigmoid")(inputs)))
    model = fastcnn.Model(inputs, layers.Dense(2)(layers.Concatenate()([a, b])))
    random_biases(model)
    check_gradients(model, small_inputs(), 8)


def inner_model():
    inputs = fastcnn.Input((4,))
    hidden = layers.Dense(5, activation="tanh")(inputs)
    return fastcnn.Model(inputs, layers.Dense(4, activation="sigmoid")(hidden))


def test_a_nested_model_used_twice():
    fastcnn.utils.set_random_seed(13)
    inner = inner_model()
    inputs = fastcnn.Input((4,))
    first = layers.Dense(4, activation="tanh")(inputs)
    twice = inner(inner(first))  # in series: the second call reads the first's output
    beside = inner(layers.Dense(4, activation="tanh")(inputs))
    model = fastcnn.Model(inputs, layers.Dense(2)(layers.Add()([twice, beside])))
    random_biases(model)
    check_gradients(model, small_inputs(), 10)


def test_a_model_nested_two_deep():
    """A Sequential holding a functional model, inside a functional model."""
    fastcnn.utils.set_random_seed(14)
    inner = inner_model()
    middle = fastcnn.Sequential([fastcnn.Input((4,)), inner,
                                 layers.Dense(4, activation="tanh")], name="middle")
    inputs = fastcnn.Input((4,))
    first = layers.Dense(4, activation="tanh")(inputs)
    joined = layers.Concatenate()([middle(first), inner(first)])
    model = fastcnn.Model(inputs, layers.Dense(3)(joined))
    random_biases(model)
    check_gradients(model, small_inputs(), 10)


def test_images_through_batch_statistics_and_merges_on_two_axes():
    """Convolutions read by two branches, BatchNormalization in training mode (batch
    statistics) read by two convolutions, Add on channels and Concatenate along the height."""
    fastcnn.utils.set_random_seed(16)
    inputs = fastcnn.Input((5, 5, 2))
    c = layers.Conv2D(3, 3, padding="same", activation="tanh")(inputs)
    normed = layers.BatchNormalization()(c)
    a = layers.Conv2D(3, 3, padding="same", activation="tanh")(normed)
    b = layers.Conv2D(3, 1, activation="sigmoid")(normed)
    tall = layers.Concatenate(axis=1)([a, layers.Add()([b, c])])  # (10, 5, 3)
    pooled = layers.Flatten()(layers.AveragePooling2D(2)(tall))
    model = fastcnn.Model(inputs, layers.Dense(2, activation="tanh")(pooled))
    random_biases(model)
    x = np.random.default_rng(5).standard_normal((4, 5, 5, 2)).astype(np.float32)
    check_gradients(model, x, 10, training=True)


def test_two_inputs_three_outputs_and_a_frozen_layer():
    """An output read by another layer gets its own gradient plus its reader's; an output
    without a gradient contributes none; a frozen layer passes dX on and gets no gradient."""
    fastcnn.utils.set_random_seed(17)
    first, second = fastcnn.Input((4,)), fastcnn.Input((3,))
    h1 = layers.Dense(5, activation="tanh")(first)
    h2 = layers.Dense(5, activation="sigmoid")(second)
    frozen = layers.Dense(5, activation="tanh")
    middle = frozen(layers.Add()([h1, h2]))
    frozen.trainable = False
    out1 = layers.Dense(3, activation="tanh")(middle)
    out2 = layers.Dense(2)(layers.Concatenate()([out1, h2]))
    unused = layers.Dense(2)(h1)
    model = fastcnn.Model([first, second], [out1, out2, unused])
    random_biases(model)
    xs = [small_inputs(), small_inputs(features=3, seed=1)]
    check_gradients(model, xs, 8, skip_outputs=(2,))


def test_batch_normalization_shared_at_two_places():
    """Each call normalises its own input with its own batch statistics."""
    fastcnn.utils.set_random_seed(19)
    inputs = fastcnn.Input((5, 5, 2))
    bn = layers.BatchNormalization()
    c = layers.Conv2D(2, 3, padding="same", activation="tanh")(inputs)
    a, b = bn(c), bn(layers.Conv2D(2, 1, activation="sigmoid")(inputs))
    joined = layers.AveragePooling2D(2)(layers.Concatenate()([a, b, c]))
    model = fastcnn.Model(inputs, layers.Dense(2, activation="tanh")(layers.Flatten()(joined)))
    random_biases(model)
    x = np.random.default_rng(7).standard_normal((4, 5, 5, 2)).astype(np.float32)
    check_gradients(model, x, 8, training=True)


def test_a_frozen_nested_sequential_in_inference_mode():
    """A frozen Sequential (its BatchNormalization then normalises with the moving statistics)
    passes the gradient on to the layers before it."""
    fastcnn.utils.set_random_seed(20)
    inner = fastcnn.Sequential([fastcnn.Input((5, 5, 3)),
                                layers.BatchNormalization(moving_mean_initializer="random_normal",
                                                          gamma_initializer="random_normal"),
                                layers.Conv2D(3, 3, activation="tanh")])
    inner.trainable = False
    inputs = fastcnn.Input((5, 5, 2))
    c = layers.Conv2D(3, 3, padding="same", activation="tanh")(inputs)
    joined = layers.Add()([inner(c), layers.Conv2D(3, 3)(c)])
    model = fastcnn.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(joined)))
    random_biases(model)
    x = np.random.default_rng(8).standard_normal((4, 5, 5, 2)).astype(np.float32)
    check_gradients(model, x, 6, training=True)


def test_a_nested_model_called_in_both_modes():
    """One call of a nested model in training mode (batch statistics), one with
    training=False (moving statistics). momentum=1 keeps the moving statistics fixed: neither
    Keras nor fastcnn differentiates their update, which finite differences would see."""
    fastcnn.utils.set_random_seed(21)
    inner_inputs = fastcnn.Input((4,))
    normed = layers.BatchNormalization(momentum=1.0, moving_mean_initializer="random_normal")(
        layers.Dense(4)(inner_inputs))
    inner = fastcnn.Model(inner_inputs, layers.Dense(4, activation="tanh")(normed))
    inputs = fastcnn.Input((4,))
    other = layers.Dense(4, activation="tanh")(inputs)
    joined = layers.Add()([inner(inputs), inner(other, training=False)])
    model = fastcnn.Model(inputs, layers.Dense(2)(joined))
    random_biases(model)
    check_gradients(model, small_inputs(n=6), 10, training=True)


def test_strides_padding_pooling_and_dense_on_images():
    """A strided "same" convolution, ZeroPadding2D, SumPooling2D, a Dense on rank-4 tensors
    read by two outputs."""
    fastcnn.utils.set_random_seed(22)
    inputs = fastcnn.Input((5, 5, 2))
    c = layers.Conv2D(3, 3, strides=2, padding="same", activation="tanh")(inputs)
    pooled = layers.SumPooling2D(2, strides=1)(layers.ZeroPadding2D(1)(c))
    d = layers.Dense(4, activation="sigmoid")(pooled)
    model = fastcnn.Model(inputs, [
        layers.GlobalAveragePooling2D()(d),
        layers.Flatten()(layers.Conv2D(2, 2, activation="tanh")(d))])
    random_biases(model)
    x = np.random.default_rng(9).standard_normal((4, 5, 5, 2)).astype(np.float32)
    check_gradients(model, x, 6)


def test_random_layers_in_training_mode_with_fixed_draws():
    """Dropout read by two branches, and RandomFlip and RandomTranslation inside the graph: with
    the draws fixed, the gradient goes through the same masks and remaps as the forward pass."""
    fastcnn.utils.set_random_seed(23)
    inputs = fastcnn.Input((5, 5, 2))
    c = layers.Conv2D(3, 3, padding="same", activation="tanh")(inputs)
    dropped = layers.Dropout(0.4)(c)
    flipped = layers.RandomFlip()(layers.Conv2D(3, 1, activation="sigmoid")(dropped))
    moved = layers.RandomTranslation(0.3, 0.3)(layers.Conv2D(3, 3, padding="same")(dropped))
    joined = layers.Concatenate()([flipped, moved, c])
    model = fastcnn.Model(inputs, layers.Dense(2, activation="tanh")(layers.Flatten()(joined)))
    random_biases(model)
    x = np.random.default_rng(10).standard_normal((3, 5, 5, 2)).astype(np.float32)
    check_gradients(model, x, 8, training=True)


# -- PyTorch as the oracle -------------------------------------------------------------------

def resnet_block():
    """x -> conv 3x3 relu -> conv 3x3, plus a 1x1 projection of x -> relu -> global average ->
    softmax."""
    inputs = fastcnn.Input((6, 6, 3))
    residual = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
    residual = layers.Conv2D(4, 3, padding="same", name="conv_b")(residual)
    shortcut = layers.Conv2D(4, 1, name="projection")(inputs)
    merged = layers.Activation("relu")(layers.Add()([residual, shortcut]))
    pooled = layers.GlobalAveragePooling2D()(merged)
    return fastcnn.Model(inputs, layers.Dense(3, activation="softmax", name="head")(pooled))


def test_resnet_block_forward_and_one_sgd_step_match_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fastcnn.utils.set_random_seed(15)
    model = resnet_block()
    random_biases(model)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 6, 6, 3)).astype(np.float32)
    labels = np.arange(6) % 3

    def oihw(kernel):
        return torch.tensor(kernel.transpose(3, 2, 0, 1), dtype=torch.float64, requires_grad=True)

    def vector(w, transpose=False):
        return torch.tensor(w.T if transpose else w, dtype=torch.float64, requires_grad=True)

    names = ["conv_a", "conv_b", "projection", "head"]
    before = {n: [w.copy() for w in model.get_layer(n).weights] for n in names}
    params = {n: [oihw(k) if k.ndim == 4 else vector(k, True), vector(b)]
              for n, (k, b) in before.items()}
    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64)
    a = F.relu(F.conv2d(xt, *params["conv_a"], padding=1))
    b = F.conv2d(a, *params["conv_b"], padding=1)
    merged = F.relu(b + F.conv2d(xt, *params["projection"]))
    logits = F.linear(merged.mean(dim=(2, 3)), *params["head"])

    np.testing.assert_allclose(model.predict(x, verbose=0),
                               torch.softmax(logits, 1).detach().numpy(), rtol=1e-5, atol=1e-6)

    lr = 0.5
    model.compile(fastcnn.optimizers.SGD(learning_rate=lr), "sparse_categorical_crossentropy")
    model.fit(x, labels, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    F.cross_entropy(logits, torch.tensor(labels)).backward()  # the batch mean, as Keras's
    with torch.no_grad():
        for group in params.values():
            for p in group:
                p -= lr * p.grad  # torch.optim.SGD's step without momentum
    for n in names:
        (k, b), layer = params[n], model.get_layer(n)
        want_k = k.detach().numpy()
        want_k = want_k.transpose(2, 3, 1, 0) if want_k.ndim == 4 else want_k.T
        for got, want, old in zip(layer.weights, (want_k, b.detach().numpy()), before[n]):
            # The step itself, old - new, against torch's: a check on the gradients, which the
            # weights' own size would hide. Measured, float32 is off by at most 7e-7 of the
            # step's largest entry (the rounding of old and new), a fourteenth of this tolerance.
            step = old.astype(np.float64) - want
            np.testing.assert_allclose(old - got, step, rtol=1e-5,
                                       atol=1e-5 * np.abs(step).max(), err_msg=n)


def test_two_losses_with_weights_and_a_regularized_shared_layer_match_pytorch():
    """A classification and a regression output with loss_weights, over a trunk whose L2
    regularized Dense is called twice: its penalty counts once, as in Keras."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fastcnn.utils.set_random_seed(18)
    inputs = fastcnn.Input((4,))
    first = layers.Dense(6, activation="tanh", name="first")
    trunk = layers.Dense(6, activation="tanh", kernel_regularizer=fastcnn.regularizers.L2(0.05),
                         name="trunk")
    t1 = trunk(first(inputs))
    t2 = trunk(t1)
    cls = layers.Dense(3, activation="softmax", name="cls")(t2)
    reg = layers.Dense(2, name="reg")(layers.Concatenate()([t1, t2]))
    model = fastcnn.Model(inputs, {"cls": cls, "reg": reg})
    random_biases(model)
    rng = np.random.default_rng(6)
    x = small_inputs(n=8)
    labels = rng.integers(0, 3, 8)
    targets = rng.standard_normal((8, 2)).astype(np.float32)

    names = ["first", "trunk", "cls", "reg"]
    before = {n: [w.copy() for w in model.get_layer(n).weights] for n in names}
    params = {n: [torch.tensor(w.T if w.ndim == 2 else w, dtype=torch.float64,
                               requires_grad=True) for w in ws] for n, ws in before.items()}
    xt = torch.tensor(x, dtype=torch.float64)
    u1 = torch.tanh(F.linear(torch.tanh(F.linear(xt, *params["first"])), *params["trunk"]))
    u2 = torch.tanh(F.linear(u1, *params["trunk"]))
    ce = F.cross_entropy(F.linear(u2, *params["cls"]), torch.tensor(labels))
    mse = F.mse_loss(F.linear(torch.cat([u1, u2], 1), *params["reg"]),
                     torch.tensor(targets, dtype=torch.float64))
    penalty = 0.05 * (params["trunk"][0] ** 2).sum()
    total = ce + 0.3 * mse + penalty

    lr = 0.5
    model.compile(fastcnn.optimizers.SGD(learning_rate=lr),
                  {"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.3})
    logs = model.fit(x, {"cls": labels, "reg": targets}, batch_size=8, shuffle=False,
                     verbose=0).history
    # Keras's logs: the weighted total with the penalty, and each output's own mean loss.
    for key, want in (("loss", total), ("cls_loss", ce), ("reg_loss", mse)):
        np.testing.assert_allclose(logs[key][0], want.item(), rtol=1e-5, err_msg=key)
    total.backward()
    for n in names:
        for got, old, p in zip(model.get_layer(n).weights, before[n], params[n]):
            grad = p.grad.numpy()
            step = lr * (grad.T if grad.ndim == 2 else grad)
            np.testing.assert_allclose(old - got, step, rtol=1e-5,
                                       atol=1e-5 * np.abs(step).max(), err_msg=n)
