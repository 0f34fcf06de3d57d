"""sample_weight for a model with several outputs, as Keras 3 hands it to the losses: one
array given alone weighs every output's loss; a list holds one entry per output and a dict one
per output name, None (or a name left out) leaving that output unweighted. Each output's
weights are per sample or per position of that output, and the output's weighted metrics take
them. The reference is Keras's formula per output: loss_k = sum(w_k * -log p_k[label]) / m over
the m = samples * positions loss values, and the total loss is the sum over the outputs."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers

B, H, W, C, K = 6, 3, 4, 2, 3  # samples, height, width, input channels, classes
LR = 0.5


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, H, W, C)).astype(np.float32)
    labels = [rng.integers(0, K, (B, H, W)) for _ in range(2)]
    weights = [rng.uniform(0, 3, (B, H, W)).astype(np.float32) for _ in range(2)]
    return x, labels, weights


def _model(**compile_args):
    """Two heads "a" and "b", each a 1x1 convolution with a softmax per pixel."""
    fastcnn.utils.set_random_seed(7)
    inputs = fastcnn.Input((H, W, C))
    a = layers.Conv2D(K, 1, activation="softmax", name="a")(inputs)
    b = layers.Conv2D(K, 1, activation="softmax", name="b")(inputs)
    model = fastcnn.Model(inputs, [a, b])
    model.compile(fastcnn.optimizers.SGD(LR), "sparse_categorical_crossentropy", **compile_args)
    return model


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _head(model, name, x, labels, weights):
    """(loss, kernel gradient, bias gradient, probabilities) of head ``name`` in float64, for
    weights of the labels' shape, or None (all ones)."""
    kernel, bias = (w.astype(np.float64) for w in model.get_layer(name).get_weights())
    p = _softmax(x.astype(np.float64) @ kernel[0, 0] + bias)
    w = np.ones(labels.shape) if weights is None else np.asarray(weights, np.float64)
    onehot = np.eye(K)[labels]
    m = labels.size
    loss = float(np.sum(w * -np.log(np.sum(p * onehot, axis=-1)))) / m
    dlogits = w[..., None] * (p - onehot) / m
    return (loss, np.einsum("bhwc,bhwk->ck", x, dlogits)[None, None],
            dlogits.sum(axis=(0, 1, 2)), p)


def _per_sample(w):
    return np.broadcast_to(w[:, None, None], (B, H, W))


def _expected(model, x, labels, wa, wb):
    la = _head(model, "a", x, labels[0], wa)[0]
    lb = _head(model, "b", x, labels[1], wb)[0]
    return {"loss": la + lb, "a_loss": la, "b_loss": lb}


def _check_logs(logs, want):
    for key, value in want.items():
        np.testing.assert_allclose(logs[key], value, rtol=2e-5, err_msg=key)


@pytest.mark.parametrize("batch_size", [B, 3])
def test_one_array_weighs_every_output_per_position(batch_size):
    x, labels, (w, _) = _data()
    model = _model()
    logs = model.evaluate(x, labels, sample_weight=w, batch_size=batch_size, verbose=0,
                          return_dict=True)
    _check_logs(logs, _expected(model, x, labels, w, w))


def test_one_per_sample_array_weighs_every_output_per_sample():
    x, labels, (w, _) = _data()
    model = _model()
    per_sample = w[:, 0, 0]
    logs = model.evaluate(x, labels, sample_weight=per_sample, verbose=0, return_dict=True)
    _check_logs(logs, _expected(model, x, labels, _per_sample(per_sample),
                                _per_sample(per_sample)))


def test_a_list_weighs_each_output_and_none_leaves_one_unweighted():
    x, labels, (wa, wb) = _data()
    model = _model()
    logs = model.evaluate(x, labels, sample_weight=[wa, wb], verbose=0, return_dict=True)
    _check_logs(logs, _expected(model, x, labels, wa, wb))
    logs = model.evaluate(x, labels, sample_weight=[wa, None], verbose=0, return_dict=True)
    _check_logs(logs, _expected(model, x, labels, wa, None))
    # each output's own kind: per position for a, per sample (with a trailing 1) for b
    logs = model.evaluate(x, labels, sample_weight=(wa, wb[:, :1, 0]), verbose=0,
                          return_dict=True)
    _check_logs(logs, _expected(model, x, labels, wa, _per_sample(wb[:, 0, 0])))


def test_a_dict_weighs_outputs_by_name_and_a_name_left_out_is_unweighted():
    x, labels, (wa, wb) = _data()
    model = _model()
    logs = model.evaluate(x, labels, sample_weight={"b": wb}, verbose=0, return_dict=True)
    _check_logs(logs, _expected(model, x, labels, None, wb))
    logs = model.evaluate(x, {"a": labels[0], "b": labels[1]},
                          sample_weight={"a": wa, "b": wb}, verbose=0, return_dict=True)
    _check_logs(logs, _expected(model, x, labels, wa, wb))


@pytest.mark.parametrize("how", ["train_on_batch", "fit"])
def test_each_head_steps_along_its_own_weighted_gradient(how):
    x, labels, (wa, wb) = _data()
    model = _model()
    want = {name: _head(model, name, x, y, w)
            for name, y, w in (("a", labels[0], wa), ("b", labels[1], None))}
    before = {name: model.get_layer(name).get_weights() for name in "ab"}
    if how == "train_on_batch":
        logs = model.train_on_batch(x, labels, sample_weight={"a": wa}, return_dict=True)
    else:
        history = model.fit(x, labels, sample_weight=[wa, None], batch_size=B, shuffle=False,
                            verbose=0)
        logs = {k: v[0] for k, v in history.history.items()}
    np.testing.assert_allclose(logs["a_loss"], want["a"][0], rtol=2e-5)
    np.testing.assert_allclose(logs["b_loss"], want["b"][0], rtol=2e-5)
    for name in "ab":
        kernel, bias = model.get_layer(name).get_weights()
        np.testing.assert_allclose(kernel, before[name][0] - LR * want[name][1], rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(bias, before[name][1] - LR * want[name][2], rtol=1e-5,
                                   atol=1e-6)


def test_test_on_batch_takes_a_list():
    x, labels, (wa, wb) = _data()
    model = _model()
    logs = model.test_on_batch(x, labels, sample_weight=[None, wb], return_dict=True)
    _check_logs(logs, _expected(model, x, labels, None, wb))


@pytest.mark.parametrize("structure", ["list", "dict"])
def test_batches_of_a_generator_and_a_pydataset_carry_weights_per_output(structure):
    x, labels, (wa, wb) = _data()
    halves = [slice(0, 3), slice(3, 6)]

    def weights(s):
        return [wa[s], wb[s]] if structure == "list" else {"a": wa[s], "b": wb[s]}

    class Halves(fastcnn.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            s = halves[i]
            return x[s], [labels[0][s], labels[1][s]], weights(s)

    model = _model()
    want = _expected(model, x, labels, wa, wb)
    generator = ((x[s], [labels[0][s], labels[1][s]], weights(s)) for s in halves)
    _check_logs(model.evaluate(generator, verbose=0, return_dict=True), want)
    _check_logs(model.evaluate(Halves(), verbose=0, return_dict=True), want)


def test_weighted_metrics_of_each_output_take_that_outputs_weights():
    x, labels, (wa, wb) = _data()
    model = _model(metrics=["acc"], weighted_metrics=["acc"])
    logs = model.evaluate(x, labels, sample_weight={"a": wa, "b": wb[:, 0, 0]}, verbose=0,
                          return_dict=True)
    for name, y, w in (("a", labels[0], wa), ("b", labels[1], _per_sample(wb[:, 0, 0]))):
        p = _head(model, name, x, y, None)[3]
        correct = (p.argmax(axis=-1) == y).astype(np.float64)
        np.testing.assert_allclose(logs[f"{name}_acc"], correct.mean(), rtol=1e-6)
        np.testing.assert_allclose(logs[f"{name}_weighted_acc"],
                                   np.sum(w * correct) / np.sum(w), rtol=1e-6)


@pytest.mark.parametrize("sample_weight, message", [
    (lambda w: [w], r"Expected sample_weight to hold 2 entries, one per output"),
    (lambda w: {"c": w}, r"Expected sample_weight keys among the output names \['a', 'b'\], "
                         r"received \['c'\]"),
    (lambda w: [w, w[:, :2]], r"Expected sample_weight for output 'b' of shape \(6,\), one "
                              r"weight per sample, or \(6, 3, 4\), one per position"),
    (lambda w: w[:4], r"Expected sample_weight for output 'a' of shape \(6,\)"),
])
def test_weights_that_do_not_fit_the_outputs_are_refused(sample_weight, message):
    x, labels, (w, _) = _data()
    with pytest.raises(ValueError, match=message):
        _model().evaluate(x, labels, sample_weight=sample_weight(w), verbose=0)


def test_a_single_output_model_reads_a_list_as_its_array():
    """As in Keras, a list of numbers for a model of one output is that output's weights."""
    rng = np.random.default_rng(1)
    model = fastcnn.Sequential([fastcnn.Input((3,)), layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = rng.standard_normal((4, 3)).astype(np.float32), rng.integers(0, 2, 4)
    w = [0.5, 1.0, 2.0, 0.0]
    np.testing.assert_allclose(model.evaluate(x, y, sample_weight=w, verbose=0),
                               model.evaluate(x, y, sample_weight=np.array(w), verbose=0),
                               rtol=0)


def test_a_validation_split_keeps_each_outputs_weights_with_its_samples():
    """Shuffled training batches gather each output's weights with their samples, and the
    validation samples (the last half, taken before shuffling) keep theirs."""
    x, labels, (wa, wb) = _data()
    model = _model()
    history = model.fit(x, labels, sample_weight=[wa, wb], validation_split=0.5, batch_size=2,
                        shuffle=True, verbose=0)
    tail = slice(3, None)
    la = _head(model, "a", x[tail], labels[0][tail], wa[tail])[0]
    lb = _head(model, "b", x[tail], labels[1][tail], wb[tail])[0]
    np.testing.assert_allclose(history.history["val_a_loss"][0], la, rtol=2e-5)
    np.testing.assert_allclose(history.history["val_b_loss"][0], lb, rtol=2e-5)

