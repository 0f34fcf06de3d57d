"""layers.Normalization with Keras's semantics: (x - mean) / max(sqrt(variance), 1e-7) per
index of the kept axes (invert: mean + x * that), mean and variance given (broadcast to the
kept axes from the right) or learned by adapt() as NumPy's mean and (biased) variance over the
other axes, whether the data comes as one array or streams in batches."""
import numpy as np
import pytest
from conftest import call_layer, check_layer, reloaded, write_images

import fastcnn
from fastcnn import layers, utils
from fastcnn.layers import feature_normalization


def _kept(axis, rank):
    if axis is None:
        return ()
    return tuple(sorted({a % rank for a in ((axis,) if isinstance(axis, int) else axis)}))


def _reference(x, axis):
    reduce = tuple(d for d in range(x.ndim) if d not in _kept(axis, x.ndim))
    x = x.astype(np.float64)
    return x.mean(axis=reduce), x.var(axis=reduce)


def test_keras_documented_examples():
    layer = layers.Normalization(axis=None)
    layer.adapt(np.array([1.0, 2, 3, 4, 5], np.float32))
    np.testing.assert_allclose(layer(np.array([[1.0, 2, 3]], np.float32)),
                               [[-1.4142135, -0.70710677, 0.0]], rtol=1e-6)
    data = np.array([[0.0, 7, 4], [2, 9, 6], [0, 7, 4], [2, 9, 6]], np.float32)
    layer = layers.Normalization(axis=-1)
    layer.adapt(data)
    np.testing.assert_allclose(layer(data[:1]), [[-1, -1, -1]], rtol=1e-6)
    inverse = layers.Normalization(axis=-1, invert=True)
    inverse.adapt(data)
    np.testing.assert_allclose(inverse(np.array([[1.0, 2, 3]], np.float32)), [[2, 10, 8]],
                               rtol=1e-6)
    given = layers.Normalization(mean=3.0, variance=2.0)
    np.testing.assert_allclose(given(np.array([[1.0], [2], [3]], np.float32)).ravel(),
                               [-1.4142135, -0.70710677, 0.0], rtol=1e-6)


@pytest.mark.parametrize("axis", [-1, 1, 2, (1, 3), (1, 2), (1, 2, 3), None])
def test_adapt_learns_numpy_mean_and_variance(axis, rng):
    x = (rng.standard_normal((6, 4, 3, 5)) * rng.uniform(0.5, 3, 5) + 2).astype(np.float32)
    layer = layers.Normalization(axis=axis)
    layer.adapt(x)
    mean, var = _reference(x, axis)
    np.testing.assert_allclose(layer.get_weights()[0], mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer.get_weights()[1], var, rtol=1e-6)
    shape = [x.shape[d] if d in _kept(axis, 4) else 1 for d in range(4)]
    want = (x - mean.reshape(shape)) / np.sqrt(var).reshape(shape)
    np.testing.assert_allclose(layer(x), want, rtol=1e-5, atol=1e-5)
    # invert maps the normalised values back
    inverse = layers.Normalization(axis=axis, invert=True)
    inverse.build(x.shape)
    inverse.set_weights(layer.get_weights())
    np.testing.assert_allclose(inverse(np.asarray(layer(x))), x, rtol=1e-5, atol=1e-5)


def test_streaming_adapt_equals_whole_array_adapt(rng, monkeypatch):
    # A large offset: Chan's update of float64 moments loses nothing against the whole array.
    x = (rng.standard_normal((50, 4, 3)) + 1e4).astype(np.float32)
    whole = layers.Normalization()
    whole.adapt(x)
    mean, var = _reference(x, -1)
    np.testing.assert_allclose(whole.get_weights()[1], var, rtol=1e-5)
    pieces = [x[:7], x[7:8], x[8:31], x[31:]]

    class Slices(utils.PyDataset):
        def __len__(self):
            return len(pieces)

        def __getitem__(self, i):
            return pieces[i], np.zeros(len(pieces[i]))

    sources = {"list": pieces, "generator": ((p, None) for p in pieces), "pydataset": Slices()}
    for name, source in sources.items():
        streamed = layers.Normalization()
        streamed.adapt(source)
        for got, want in zip(streamed.get_weights()[:2], whole.get_weights()[:2]):
            np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)
    # One array is read in chunks (here of 12 values: 1 row), never converted whole.
    monkeypatch.setattr(feature_normalization, "ADAPT_CHUNK", 12)
    chunked = layers.Normalization()
    chunked.adapt(x)
    for got, want in zip(chunked.get_weights()[:2], whole.get_weights()[:2]):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_adapt_reads_a_uint8_memmap(tmp_path, rng):
    images = rng.integers(0, 256, (40, 5, 5, 3), dtype=np.uint8)
    stored = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.uint8, images.shape)
    stored[...] = images
    layer = layers.Normalization()
    layer.adapt(np.load(tmp_path / "x.npy", mmap_mode="r"))
    mean, var = _reference(images, -1)
    np.testing.assert_allclose(layer.get_weights()[0], mean, rtol=1e-6)
    np.testing.assert_allclose(layer.get_weights()[1], var, rtol=1e-6)


def test_adapt_to_an_image_folder(tmp_path, rng):
    pytest.importorskip("PIL")
    pixels = rng.integers(0, 256, (5, 3, 4, 3), dtype=np.uint8)
    write_images(tmp_path, {f"c/{i}.png": p for i, p in enumerate(pixels)})
    mean, var = _reference(pixels, -1)
    for batch_size in (2, None):  # a dataset of single images is batched first
        ds = utils.image_dataset_from_directory(tmp_path, image_size=(3, 4), seed=0,
                                                batch_size=batch_size, verbose=False)
        layer = layers.Normalization()
        layer.adapt(ds)
        np.testing.assert_allclose(layer.get_weights()[0], mean, rtol=1e-6)
        np.testing.assert_allclose(layer.get_weights()[1], var, rtol=1e-6)


def test_given_mean_and_variance_broadcast_from_the_right(rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    mean, variance = np.array([1.0, -2, 0.5]), np.array([4.0, 0.25, 1])
    layer = layers.Normalization(axis=(1, 2), mean=mean, variance=variance)
    np.testing.assert_allclose(layer(x), (x - mean) / np.sqrt(variance), rtol=1e-6, atol=1e-6)
    assert layer.get_weights() == []
    # A variance of zero divides by 1e-7 (Keras's epsilon), not by zero.
    flat = layers.Normalization(mean=[1.0, 1.0], variance=[0.0, 1.0])
    np.testing.assert_allclose(flat(np.array([[1.0, 3.0]], np.float32)), [[0.0, 2.0]])


def test_gradient_is_the_per_feature_scale(rng):
    layer = layers.Normalization(mean=[0.5, 1.0, -1.0], variance=[4.0, 1.0, 0.25])
    layer.build((None, 2, 3))
    x = rng.standard_normal((3, 2, 3)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    _, dx, _ = call_layer(layer, x, dy)
    np.testing.assert_allclose(dx, dy / np.array([2.0, 1.0, 0.5]), rtol=1e-6)
    inverse = layers.Normalization(mean=[0.5, 1.0, -1.0], variance=[4.0, 1.0, 0.25], invert=True)
    inverse.build((None, 2, 3))
    _, dx, _ = call_layer(inverse, x, dy)
    np.testing.assert_allclose(dx, dy * np.array([2.0, 1.0, 0.5]), rtol=1e-6)


def test_weights_config_and_saving(rng, tmp_path):
    x = (rng.standard_normal((32, 4)) * 3 + 5).astype(np.float32)
    norm = layers.Normalization()
    norm.adapt(x)
    assert [w.shape for w in norm.weights] == [(4,), (4,), ()]
    assert norm.trainable_weights == [] and len(norm.non_trainable_weights) == 3
    config = layers.Normalization(axis=(1, 2), mean=[1.0, 2.0], variance=[1.0, 4.0],
                                  invert=True).get_config()
    assert config["axis"] == [1, 2] and config["mean"] == [1.0, 2.0] and config["invert"]
    assert layers.Normalization.from_config(config).get_config() == config
    fastcnn.utils.set_random_seed(0)
    model = fastcnn.Sequential([fastcnn.Input((4,)), norm, layers.Dense(2)])
    model.compile("sgd", "mse")
    model.fit(x, x[:, :2], epochs=1, verbose=0)
    np.testing.assert_allclose(model.layers[0].get_weights()[1], x.var(axis=0), rtol=1e-5)
    copy = reloaded(model, x, tmp_path)
    np.testing.assert_array_equal(copy.layers[0].get_weights()[0], norm.get_weights()[0])


@pytest.mark.parametrize("make, message", [
    (lambda: layers.Normalization(mean=1.0), "together"),
    (lambda: layers.Normalization(mean=[1.0, 2.0], variance=[1.0]), "one shape"),
    (lambda: layers.Normalization(axis=-1, mean=[[1.0]], variance=[[1.0]]), "rank at most 1"),
    (lambda: layers.Normalization(mean=0.0, variance=-1.0), "variance >= 0"),
    (lambda: layers.Normalization(axis="last"), "axis"),
    (lambda: layers.Normalization(axis=3)(np.zeros((2, 3), np.float32)), "axis values"),
    (lambda: layers.Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0])(
        np.zeros((2, 3), np.float32)), "broadcast"),
    (lambda: layers.Normalization(mean=1.0, variance=1.0).adapt(np.zeros((2, 3))), "adapt"),
    (lambda: layers.Normalization().adapt([]), "at least one sample"),
    (lambda: layers.Normalization().adapt(42), "iterable of batches"),
    (lambda: layers.Normalization().adapt([np.zeros((2, 3)), np.zeros((2, 4))]), "built for"),
    (lambda: layers.Normalization().adapt([np.array(["a", "b"])]), "real numbers"),
])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize("make, n_params", [
    (lambda: layers.Normalization(), 2 * 4 + 1),  # mean, variance and Keras's count
    (lambda: layers.Normalization(axis=None, mean=2.0, variance=9.0), 0),
])
def test_layer_contract(make, n_params):
    check_layer(make, (3, 4), (3, 4), n_params)
