"""Several Python threads on one model (issue 16): predict, evaluate and model(x) at once give
each caller exactly the serial answer; a second fit while one runs is refused, and the running
fit is not disturbed by it nor by predictions made meanwhile."""
import functools
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastcnn
from fastcnn import callbacks, layers
from conftest import toy_data

THREADS = 4


@pytest.fixture(autouse=True)
def frequent_thread_switches():
    """Python switches threads every few microseconds instead of every 5 ms, so that calls
    interleave at many more places."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)


def convnet():
    return fastcnn.Sequential([fastcnn.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                               layers.MaxPooling2D(2), layers.Dropout(0.3), layers.Flatten(),
                               layers.Dense(3, activation="softmax")])


def graph_model():
    """Fan-out, Add, Concatenate, BatchNormalization, a nested Sequential and a layer used
    twice."""
    inp = fastcnn.Input((8, 8, 1))
    a = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = layers.Conv2D(4, 1)(inp)
    h = layers.BatchNormalization()(layers.Add()([a, b]))
    h = layers.Concatenate()([layers.MaxPooling2D(2)(h), layers.AveragePooling2D(2)(inp)])
    nested = fastcnn.Sequential([fastcnn.Input((4, 4, 5)), layers.Conv2D(5, 3, padding="same",
                                                                         activation="relu"),
                                 layers.Dropout(0.5)])
    shared = layers.Dense(5, activation="relu")
    h = layers.GlobalAveragePooling2D()(shared(shared(nested(h))))
    return fastcnn.Model(inp, layers.Dense(3, activation="softmax")(h))


class Subclassed(fastcnn.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(4, 3, activation="relu")
        self.pool = layers.MaxPooling2D(2)
        self.drop = layers.Dropout(0.3)
        self.flat = layers.Flatten()
        self.out = layers.Dense(3, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.drop(self.flat(self.pool(self.conv(x))), training=training))


BUILDERS = {"convnet": convnet, "graph": graph_model, "subclassed": Subclassed}


def trained(kind, seed=0):
    fastcnn.utils.set_random_seed(seed)
    model = BUILDERS[kind]()
    model.compile(fastcnn.optimizers.Adam(0.01), "categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = toy_data(48, seed=seed)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # moving statistics away from 0 and 1
    return model


def batches(count=8):
    """Inputs of different sizes, so that a buffer shared between callers would show."""
    return [toy_data(24 + 7 * k, seed=10 + k) for k in range(count)]


def run_concurrently(call, args, repeats=6):
    """call(*args[k]) for every k, ``repeats`` times each, interleaved, from THREADS threads:
    the results by k."""
    jobs = [k for _ in range(repeats) for k in range(len(args))]
    start = threading.Barrier(THREADS)

    def job(k, first):
        if first:
            start.wait(timeout=30)  # every thread starts at once
        return k, call(*args[k])

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(job, k, i < THREADS) for i, k in enumerate(jobs)]
        return [f.result(timeout=120) for f in futures]


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_predict_from_threads_equals_serial(kind):
    model = trained(kind)
    data = batches()
    serial = [model.predict(x, batch_size=8, verbose=0) for x, _ in data]
    results = run_concurrently(lambda x: model.predict(x, batch_size=8, verbose=0),
                               [(x,) for x, _ in data])
    assert len(results) == 6 * len(data)
    for k, probs in results:
        np.testing.assert_array_equal(probs, serial[k])


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_call_from_threads_equals_serial(kind):
    model = trained(kind)
    data = batches()
    serial = [model(x) for x, _ in data]
    for k, out in run_concurrently(lambda x: model(x), [(x,) for x, _ in data]):
        np.testing.assert_array_equal(out, serial[k])


@pytest.mark.parametrize("kind", ["convnet", "graph"])
def test_evaluate_from_threads_equals_serial(kind):
    model = trained(kind)
    data = batches()
    serial = [model.evaluate(x, y, batch_size=8, verbose=0) for x, y in data]
    results = run_concurrently(lambda x, y: model.evaluate(x, y, batch_size=8, verbose=0), data)
    for k, scores in results:
        assert scores == serial[k]


def test_mixed_calls_from_threads_equal_serial():
    model = trained("graph")
    data = batches(6)
    calls = [lambda x, y: model.predict(x, batch_size=5, verbose=0), lambda x, y: model(x),
             lambda x, y: np.array(model.evaluate(x, y, batch_size=8, verbose=0))]
    args = [(i, x, y) for i in range(len(calls)) for x, y in data]
    serial = [calls[i](x, y) for i, x, y in args]
    for k, out in run_concurrently(lambda i, x, y: calls[i](x, y), args, repeats=3):
        np.testing.assert_array_equal(out, serial[k])


class FullyConvolutional(fastcnn.Model):
    """Any image size: conv, max pooling, a global average, then a softmax."""

    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(4, 3, activation="relu")
        self.pool = layers.MaxPooling2D(2)
        self.average = layers.GlobalAveragePooling2D()
        self.out = layers.Dense(3, activation="softmax")

    def call(self, x):
        return self.out(self.average(self.pool(self.conv(x))))


@pytest.mark.parametrize("kind", ["functional", "subclassed"])
def test_images_of_several_sizes_from_threads_equal_serial(kind, rng):
    """Each call sizes its own buffers: threads predicting on images of different sizes at
    once get the serial answers (a subclassed model traces each new size once)."""
    fastcnn.utils.set_random_seed(7)
    if kind == "subclassed":
        model = FullyConvolutional()
    else:
        inp = fastcnn.Input((None, None, 1))
        h = layers.MaxPooling2D(2)(layers.Conv2D(4, 3, activation="relu")(inp))
        model = fastcnn.Model(inp, layers.Dense(3, activation="softmax")(
            layers.GlobalAveragePooling2D()(h)))
    data = [(rng.standard_normal((5 + k, 6 + 2 * k, 9 - k, 1)).astype(np.float32),)
            for k in range(6)]
    serial = [model.predict(x, batch_size=4, verbose=0) for x, in data]
    for k, probs in run_concurrently(lambda x: model.predict(x, batch_size=4, verbose=0), data):
        np.testing.assert_array_equal(probs, serial[k])
    serial = [model(x) for x, in data]
    for k, out in run_concurrently(lambda x: model(x), data, repeats=2):
        np.testing.assert_array_equal(out, serial[k])


def test_models_sharing_layers_from_threads_equal_serial():
    """Two models share a conv (its relu handed to a pooling in one only) and a softmax head
    (fused into the loss in evaluate): calls on both at once from threads."""
    fastcnn.utils.set_random_seed(6)
    conv = layers.Conv2D(4, 3, activation="relu")
    head = layers.Dense(3, activation="softmax")
    inp = fastcnn.Input((8, 8, 1))
    plain = fastcnn.Model(inp, head(layers.Flatten()(conv(inp))))
    pooled = fastcnn.Sequential([fastcnn.Input((8, 8, 1)), conv,
                                 layers.MaxPooling2D(2, strides=1, padding="same"),
                                 layers.Flatten(), head])
    for model in (plain, pooled):
        model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    calls = [lambda x, y: plain.predict(x, batch_size=8, verbose=0),
             lambda x, y: np.array(pooled.evaluate(x, y, batch_size=8, verbose=0)),
             lambda x, y: pooled(x), lambda x, y: conv(x)]
    args = [(i, x, y) for i in range(len(calls)) for x, y in batches(4)]
    serial = [calls[i](x, y) for i, x, y in args]
    for k, out in run_concurrently(lambda i, x, y: calls[i](x, y), args, repeats=3):
        np.testing.assert_array_equal(out, serial[k])


@pytest.mark.parametrize("call", ["predict", "call"])
def test_first_calls_from_threads_build_an_unbuilt_model_once(call):
    x, _ = toy_data(16)
    for _ in range(30):  # the threads' first calls race; many fresh models give it many chances
        model = fastcnn.Sequential([layers.Conv2D(4, 3, activation="relu"),
                                    layers.MaxPooling2D(2), layers.Flatten(),
                                    layers.Dense(3, activation="softmax")])
        run = functools.partial(model.predict, verbose=0) if call == "predict" else model
        results = run_concurrently(run, [(x,)], repeats=THREADS)
        assert [len(layer.weights) for layer in model.layers] == [2, 0, 0, 2]
        assert [len(layer._inbound_nodes) for layer in model.layers] == [1, 1, 1, 1]
        serial = model.predict(x, verbose=0)
        for _, probs in results:
            np.testing.assert_array_equal(probs, serial)


def test_refused_inputs_and_good_ones_from_threads_on_an_unbuilt_model():
    """Threads whose fits are refused (y too short, images too small) race threads predicting
    good images on an unbuilt model: no prediction sees a model another thread is rolling
    back, and the model ends built once, for the good images."""
    x, y = toy_data(16)
    tiny = x[:, :2, :2]

    def attempt(kind, model):
        try:
            if kind == "short_y":
                model.fit(x, y[:-1], verbose=0)
            elif kind == "tiny":
                model.fit(tiny, y, verbose=0)
            else:
                return model.predict(x, verbose=0)
        except ValueError:
            return None
        except RuntimeError as error:  # another thread's fit was running: refused as well
            assert "already training" in str(error)
            return None
        raise AssertionError("a bad input was accepted")

    for _ in range(10):
        model = fastcnn.Sequential([layers.Conv2D(4, 3, activation="relu"),
                                    layers.MaxPooling2D(2), layers.Flatten(),
                                    layers.Dense(3, activation="softmax")])
        model.compile("sgd", "categorical_crossentropy")
        kinds = ["short_y", "predict", "tiny", "predict"]
        results = run_concurrently(lambda k: attempt(kinds[k], model),
                                   [(k,) for k in range(len(kinds))], repeats=2)
        assert model.input_shape == (None, 8, 8, 1)
        assert [len(layer.weights) for layer in model.layers] == [2, 0, 0, 2]
        assert [len(layer._inbound_nodes) for layer in model.layers] == [1, 1, 1, 1]
        serial = model.predict(x, verbose=0)
        for k, out in results:
            if kinds[k] == "predict":
                np.testing.assert_array_equal(out, serial)
            else:
                assert out is None


# -- fit ---------------------------------------------------------------------------------------

class Pause(callbacks.Callback):
    """Holds the fit at the start of its second batch until ``release`` is set."""

    def __init__(self):
        super().__init__()
        self.paused, self.release = threading.Event(), threading.Event()

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 1 and not self.paused.is_set():
            self.paused.set()
            assert self.release.wait(timeout=60)


def twin_models(kind="convnet"):
    """Two models with the same weights, seed and optimizer settings."""
    models = []
    for _ in range(2):
        fastcnn.utils.set_random_seed(5)
        model = BUILDERS[kind]()
        model.compile(fastcnn.optimizers.Adam(0.01), "categorical_crossentropy",
                      metrics=["accuracy"])
        models.append(model)
    return models


@pytest.mark.parametrize("kind", ["convnet", "graph"])
def test_second_fit_is_refused_while_the_first_runs(kind):
    model, control = twin_models(kind)
    x, y = toy_data(48)
    pause = Pause()
    with ThreadPoolExecutor(THREADS) as pool:
        first = pool.submit(model.fit, x, y, batch_size=8, epochs=2, verbose=0,
                            callbacks=[pause])
        assert pause.paused.wait(timeout=60)
        try:
            with pytest.raises(RuntimeError, match="already training"):
                model.fit(x, y, batch_size=8, epochs=1, verbose=0)
            second = pool.submit(model.fit, x, y, epochs=1, verbose=0)
            with pytest.raises(RuntimeError, match="already training"):
                second.result(timeout=60)
            # predictions and evaluations meanwhile see the weights as they are in the pause
            now = model.predict(x, verbose=0)
            futures = [pool.submit(model.predict, x, verbose=0) for _ in range(THREADS - 1)]
            for f in futures:
                np.testing.assert_array_equal(f.result(timeout=60), now)
            evaluated = model.evaluate(x, y, verbose=0)
            assert pool.submit(model.evaluate, x, y, verbose=0).result(timeout=60) == evaluated
        finally:
            pause.release.set()
        history = first.result(timeout=120)
    assert len(history.history["loss"]) == 2
    # the refused fit and the predictions left the first fit exactly as it would have gone
    want = control.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert history.history == want.history
    for a, b in zip(model.get_weights(), control.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # free again once the first returned


def test_predict_while_a_fit_runs_leaves_the_fit_undisturbed():
    """Predictions taken while another thread trains (weights changing under them) have the
    right shape and are finite, and the fit ends exactly as an undisturbed one."""
    model, control = twin_models("graph")
    x, y = toy_data(64)
    with ThreadPoolExecutor(THREADS) as pool:
        fitting = pool.submit(model.fit, x, y, batch_size=4, epochs=3, verbose=0)
        calls = 0
        while not fitting.done() or calls < 3:
            futures = [pool.submit(model.predict, x[:16], verbose=0) for _ in range(THREADS - 1)]
            for probs in [model(x[16:24])] + [f.result(timeout=60) for f in futures]:
                assert probs.shape in ((16, 3), (8, 3)) and np.isfinite(probs).all()
            calls += 1
        history = fitting.result(timeout=120)
    assert history.history == control.fit(x, y, batch_size=4, epochs=3, verbose=0).history
    for a, b in zip(model.get_weights(), control.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_from_its_own_callback_is_refused():
    model, _ = twin_models()
    x, y = toy_data(16)
    errors = []

    seen = []

    class Reenter(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            try:
                model.fit(x, y, verbose=0)
            except RuntimeError as error:
                errors.append(str(error))
            # predicting and evaluating from inside the fit are allowed
            seen.append((model.get_weights(), model.predict(x, verbose=0),
                         model.evaluate(x, y, verbose=0)))

    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[Reenter()])
    assert len(history.history["loss"]) == 2
    assert len(errors) == 2 and all("already training" in e for e in errors)
    model.set_weights(seen[0][0])
    np.testing.assert_array_equal(model.predict(x, verbose=0), seen[0][1])
    assert model.evaluate(x, y, verbose=0) == seen[0][2]


def test_a_fit_that_raises_frees_the_model():
    model, _ = twin_models()
    x, y = toy_data(16)

    class Fail(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyError("from a callback")

    with pytest.raises(ValueError):
        model.fit(x[..., 0], y, verbose=0)
    with pytest.raises(KeyError):
        model.fit(x, y, verbose=0, callbacks=[Fail()])
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
