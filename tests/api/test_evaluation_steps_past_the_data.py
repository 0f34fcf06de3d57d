"""evaluate(steps=S), predict(steps=S) and fit(validation_steps=S) with S larger than the
batches the data holds, as Keras 3 runs them: a warning that the input ran out of data, and the
result of the batches there are, the same as without ``steps``. Checked for arrays, a PyDataset
and a generator against NumPy's softmax and cross-entropy of a one-layer model."""
import warnings

import numpy as np
import pytest

import fastcnn
from fastcnn import layers

N, D, K, BATCH = 10, 4, 3, 4  # samples, features, classes, batch size: 3 batches
RAN_OUT = r"ran out of data|runs out of data"


def _model():
    fastcnn.utils.set_random_seed(3)
    model = fastcnn.Sequential([fastcnn.Input((D,)), layers.Dense(K, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)).astype(np.float32), rng.integers(0, K, N)


def _probabilities(model, x):
    kernel, bias = (w.astype(np.float64) for w in model.get_weights())
    z = x.astype(np.float64) @ kernel + bias
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _loss(model, x, y):
    """Keras's mean sparse cross-entropy over all the samples."""
    return float(np.mean(-np.log(_probabilities(model, x)[np.arange(len(y)), y])))


class Batches(fastcnn.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return -(-len(self.x) // BATCH)

    def __getitem__(self, i):
        s = slice(i * BATCH, (i + 1) * BATCH)
        return self.x[s], self.y[s]


def _generator(x, y):
    return ((x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, N, BATCH))


@pytest.mark.parametrize("kind", ["arrays", "pydataset", "generator"])
def test_evaluate_warns_and_uses_every_batch_there_is(kind):
    x, y = _data()
    model = _model()
    data = {"arrays": lambda: (x, y), "pydataset": lambda: (Batches(x, y), None),
            "generator": lambda: (_generator(x, y), None)}[kind]()
    with pytest.warns(UserWarning, match=RAN_OUT):
        got = model.evaluate(*data, batch_size=BATCH, steps=7, verbose=0)
    np.testing.assert_allclose(got, _loss(model, x, y), rtol=1e-5)


@pytest.mark.parametrize("kind", ["arrays", "pydataset", "generator"])
def test_predict_warns_and_returns_every_sample(kind):
    x, y = _data()
    model = _model()
    data = {"arrays": x, "pydataset": Batches(x, y), "generator": _generator(x, y)}[kind]
    with pytest.warns(UserWarning, match=RAN_OUT):
        got = model.predict(data, batch_size=BATCH, steps=5, verbose=0)
    assert got.shape == (N, K)
    np.testing.assert_allclose(got, _probabilities(model, x), rtol=1e-5, atol=1e-7)


def test_steps_within_the_data_take_that_many_batches_without_a_warning():
    x, y = _data()
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = model.evaluate(x, y, batch_size=BATCH, steps=2, verbose=0)
        predicted = model.predict(x, batch_size=BATCH, steps=2, verbose=0)
    np.testing.assert_allclose(got, _loss(model, x[:8], y[:8]), rtol=1e-5)
    assert predicted.shape == (8, K)


@pytest.mark.parametrize("kind", ["arrays", "pydataset"])
def test_validation_steps_past_the_data_warn_and_validate_on_all_of_it(kind):
    x, y = _data()
    xv, yv = _data(seed=1)
    model = _model()
    validation = (xv, yv) if kind == "arrays" else Batches(xv, yv)
    with pytest.warns(UserWarning, match=RAN_OUT):
        history = model.fit(x, y, batch_size=BATCH, epochs=2, validation_data=validation,
                            validation_steps=9, verbose=0)
    # the second epoch's validation runs on the weights fit returns
    np.testing.assert_allclose(history.history["val_loss"][1], _loss(model, xv, yv), rtol=1e-5)
