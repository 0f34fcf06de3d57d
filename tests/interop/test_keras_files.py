"""Keras 3's own files, with Keras (on its torch backend) as the oracle: a ``.keras`` file that
Keras wrote loads in fastcnn and predicts what Keras predicts, a file that fastcnn writes with
``format="keras"`` loads in Keras and predicts what fastcnn predicts, ``.weights.h5`` files go
both ways; what either side lacks, code, and hostile files are refused by name."""
import json
import os
import shutil
import sys
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

import fastcnn  # noqa: E402
from fastcnn import layers  # noqa: E402
from fastcnn.file_limits import JSON_DEPTH_LIMIT, JSON_LIMIT, MEMBER_LIMIT  # noqa: E402
from fastcnn.models import load_model  # noqa: E402
from fastcnn.saving import InvalidSaveFileError  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6
K = keras.layers
# Keras's own deprecation warnings (its tensors' __array__ under NumPy 2), not fastcnn's.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


# -- helpers ---------------------------------------------------------------------------------
def data(shape, batch=3, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


def randomize_keras(model, seed=0):
    """Every weight random (variances in [0.5, 1.5]; an integer count kept), so that a weight
    read into the wrong place shows."""
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        value = keras.ops.convert_to_numpy(w)
        if value.dtype.kind != "f":
            values.append(value)
        elif "variance" in w.path:
            values.append(rng.uniform(0.5, 1.5, value.shape).astype(value.dtype))
        else:
            values.append((0.5 * rng.standard_normal(value.shape)).astype(value.dtype))
    model.set_weights(values)
    return model


def randomize_fastcnn(model, seed=0):
    rng = np.random.default_rng(seed)
    for owner, i in model._weight_owners():
        w = owner._weights[i]
        w[...] = (rng.uniform(0.5, 1.5, w.shape) if "variance" in owner._weight_names[i]
                  else 0.5 * rng.standard_normal(w.shape))
    return model


def keras_predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def assert_close(got, expected):
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def rewrite(path, replace=(), add=()):
    """Rewrite the zip at ``path`` with members replaced ({name: bytes}) and added."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members.update(dict(replace))
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in list(members.items()) + list(add):
            zf.writestr(name, value)


def edit_h5(path, edit):
    """Apply ``edit(h5py.File)`` to the HDF5 file at ``path``, or to the weights of a .keras zip."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            inner = path.parent / "inner.h5"
            inner.write_bytes(zf.read("model.weights.h5"))
        edit_h5(inner, edit)
        rewrite(path, replace={"model.weights.h5": inner.read_bytes()})
        return
    with h5py.File(path, "a") as f:
        edit(f)


def convnet(lib, L):
    """A functional model of Keras (``lib`` keras, ``L`` its layers) or fastcnn: Conv2D,
    BatchNormalization, Add, pooling, a nested Sequential, Dense; and convolutions of different
    shapes in parallel, made in another order than Keras's model.layers lists them (by depth,
    then as a walk from the outputs meets them), which numbers them in the weights file."""
    inputs = lib.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same")(inputs)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    shortcut = L.Conv2D(4, 1)(inputs)
    x = L.MaxPooling2D()(L.Add()([x, shortcut]))
    left = L.Conv2D(3, 1)(x)
    right = L.Conv2D(5, 3, padding="same")(x)
    x = L.Concatenate()([right, left])
    head = lib.Sequential([lib.Input((4, 4, 8)), L.Conv2D(6, 3, activation="relu"),
                           L.GlobalAveragePooling2D()])
    outputs = L.Dense(3, activation="softmax")(head(x))
    return lib.Model(inputs, outputs)


def keras_convnet():
    return convnet(keras, K)


def fastcnn_convnet():
    return convnet(fastcnn, layers)


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """A trained Keras Sequential convnet and the functional keras_convnet, compiled, saved."""
    folder = tmp_path_factory.mktemp("keras")
    x, y = data((8, 8, 3), batch=8), np.arange(8) % 3
    sequential = keras.Sequential([keras.Input((8, 8, 3)), K.Conv2D(4, 3, activation="relu"),
                                   K.BatchNormalization(), K.MaxPooling2D(), K.Flatten(),
                                   K.Dense(3, activation="softmax")])
    functional = keras_convnet()
    for model, name in ((sequential, "sequential"), (functional, "functional")):
        randomize_keras(model)
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        model.save(folder / f"{name}.keras")
        model.save_weights(folder / f"{name}.weights.h5")
    return {"sequential": sequential, "functional": functional, "folder": folder}


# -- Keras -> fastcnn ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_a_keras_model_loads_and_predicts_alike(keras_files, kind, tmp_path):
    # told by its content, whatever its name
    path = shutil.copy(keras_files["folder"] / f"{kind}.keras", tmp_path / "model.bin")
    model = load_model(path)
    x = data((8, 8, 3), batch=5, seed=2)
    assert_close(model.predict(x, verbose=0), keras_predict(keras_files[kind], x))
    assert type(model.optimizer).__name__ == "Adam"
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    assert type(model.loss).__name__ == "SparseCategoricalCrossentropy"
    model.fit(x, np.arange(5) % 3, verbose=0)  # compiled: it trains on
    assert load_model(path, compile=False).optimizer is None


def test_keras_weights_h5_load_into_the_same_fastcnn_architecture(keras_files):
    model = fastcnn_convnet()
    model.load_weights(keras_files["folder"] / "functional.weights.h5")
    x = data((8, 8, 3), batch=4, seed=3)
    assert_close(model.predict(x, verbose=0), keras_predict(keras_files["functional"], x))
    fresh = fastcnn_convnet()  # Keras's load_weights reads a .keras file's weights too
    fresh.load_weights(keras_files["folder"] / "functional.keras")
    assert_close(fresh.predict(x, verbose=0), keras_predict(keras_files["functional"], x))


# -- fastcnn -> Keras ------------------------------------------------------------------------
# fastcnn writes no optimizer state, which Keras says as it builds the optimizer afresh.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_a_fastcnn_model_saved_in_keras_format_loads_in_keras(tmp_path):
    sequential = randomize_fastcnn(fastcnn.Sequential([
        fastcnn.Input((8, 8, 3)), layers.Conv2D(4, 3, activation="relu"),
        layers.BatchNormalization(), layers.AveragePooling2D(), layers.Flatten(),
        layers.Dense(3)]))
    sequential.compile(fastcnn.optimizers.SGD(0.05, momentum=0.9), "mse", metrics=["mae"])
    functional = randomize_fastcnn(fastcnn_convnet(), seed=1)
    x = data((8, 8, 3), batch=4, seed=4)
    for model in (sequential, functional):
        path = tmp_path / f"{model.name}.keras"
        model.save(path, format="keras")
        loaded = keras.models.load_model(path)
        assert_close(keras_predict(loaded, x), model.predict(x, verbose=0))
    assert type(loaded).__name__ == "Functional"
    compiled = keras.models.load_model(tmp_path / f"{sequential.name}.keras")
    assert type(compiled.optimizer).__name__ == "SGD"
    assert float(compiled.optimizer.momentum) == pytest.approx(0.9)


def test_fastcnn_weights_h5_load_into_keras_and_back(tmp_path):
    model = randomize_fastcnn(fastcnn_convnet(), seed=5)
    model.save_weights(tmp_path / "model.weights.h5")
    assert h5py.is_hdf5(tmp_path / "model.weights.h5")
    twin = keras_convnet()
    twin.load_weights(tmp_path / "model.weights.h5")
    x = data((8, 8, 3), batch=4, seed=6)
    assert_close(keras_predict(twin, x), model.predict(x, verbose=0))
    again = fastcnn_convnet()
    again.load_weights(tmp_path / "model.weights.h5")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def subclassed(lib, L):
    """The same subclassed model in Keras or fastcnn: Keras files its layers by attribute name,
    those of its `layers` that no earlier attribute holds under layers/, privates last."""
    class Blocks(lib.Model):
        def __init__(self):
            super().__init__()
            self.zeta, self.alpha, self.out_ = L.Dense(3), L.Dense(2), L.Dense(1)
            self.blocks = [L.Dense(2), L.Dense(2)]
            self._hidden = L.Dense(2)

        def call(self, x):
            for layer in (self.zeta, self.alpha, *self.blocks, self._hidden, self.out_):
                x = layer(x)
            return x

    return Blocks()


def test_a_subclassed_model_weights_h5_go_both_ways(tmp_path):
    x = data((4,))
    model = subclassed(fastcnn, layers)
    model.build((None, 4))
    randomize_fastcnn(model)
    model.save_weights(tmp_path / "fastcnn.weights.h5")
    twin = subclassed(keras, K)
    twin(x)
    twin.load_weights(tmp_path / "fastcnn.weights.h5")
    assert_close(keras_predict(twin, x), model.predict(x, verbose=0))
    randomize_keras(twin, seed=3).save_weights(tmp_path / "keras.weights.h5")
    again = subclassed(fastcnn, layers)
    again.build((None, 4))
    again.load_weights(tmp_path / "keras.weights.h5")
    assert_close(again.predict(x, verbose=0), keras_predict(twin, x))


# -- every layer fastcnn maps, both ways -----------------------------------------------------
def normalization(x):
    layer = K.Normalization()
    layer.adapt(x)
    return layer


# (id, input shape, Keras layer factory taking sample data): a one-input model of one layer
LAYER_CASES = [
    ("conv1d", (9, 2), lambda x: K.Conv1D(3, 3, strides=2, padding="same", activation="relu")),
    ("conv2d_dilated_groups", (7, 7, 4),
     lambda x: K.Conv2D(4, 3, dilation_rate=2, groups=2, padding="same", use_bias=False)),
    ("conv2d_transpose", (4, 4, 2), lambda x: K.Conv2DTranspose(3, 3, strides=2, padding="same")),
    ("depthwise_conv2d", (6, 6, 3),
     lambda x: K.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu6")),
    ("separable_conv2d", (7, 7, 3),
     lambda x: K.SeparableConv2D(4, 3, depth_multiplier=2, strides=2)),
    ("dense", (5,), lambda x: K.Dense(3, activation="gelu", kernel_initializer="he_normal",
                                      kernel_regularizer=keras.regularizers.L2(0.01),
                                      bias_constraint=keras.constraints.MaxNorm(2.0))),
    ("dropout", (5,), lambda x: K.Dropout(0.3)),
    ("flatten", (3, 2, 2), lambda x: K.Flatten()),
    ("batch_normalization_no_center", (4, 4, 3),
     lambda x: K.BatchNormalization(center=False, epsilon=0.01)),
    ("layer_normalization", (6, 4), lambda x: K.LayerNormalization(epsilon=1e-5)),
    ("group_normalization", (4, 4, 4), lambda x: K.GroupNormalization(2)),
    ("normalization", (5,), normalization),
    ("activation", (5,), lambda x: K.Activation("silu")),
    ("relu", (5,), lambda x: K.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2)),
    ("elu", (5,), lambda x: K.ELU(alpha=0.7)),
    ("leaky_relu", (5,), lambda x: K.LeakyReLU(negative_slope=0.1)),
    ("prelu", (4, 4, 3), lambda x: K.PReLU(shared_axes=[1, 2])),
    ("softmax", (5,), lambda x: K.Softmax()),
    ("max_pooling2d", (7, 7, 2), lambda x: K.MaxPooling2D(3, strides=2, padding="same")),
    # "same" padding even on both sides: Keras's torch backend pads an uneven one by repeating
    # the edge, which its other backends and fastcnn leave out of the average.
    ("average_pooling2d", (5, 5, 2), lambda x: K.AveragePooling2D(3, strides=1, padding="same")),
    ("global_average_pooling2d", (4, 4, 2), lambda x: K.GlobalAveragePooling2D(keepdims=True)),
    ("global_max_pooling2d", (4, 4, 2), lambda x: K.GlobalMaxPooling2D()),
    ("gaussian_noise", (5,), lambda x: K.GaussianNoise(0.1)),
    ("gaussian_dropout", (5,), lambda x: K.GaussianDropout(0.2)),
    ("spatial_dropout2d", (4, 4, 2), lambda x: K.SpatialDropout2D(0.2)),
    ("cropping2d", (6, 6, 2), lambda x: K.Cropping2D(((1, 0), (2, 1)))),
    ("permute", (4, 3), lambda x: K.Permute((2, 1))),
    ("reshape", (12,), lambda x: K.Reshape((3, 4))),
    ("zero_padding2d", (4, 4, 2), lambda x: K.ZeroPadding2D(((1, 0), (0, 2)))),
    ("up_sampling2d", (3, 3, 2), lambda x: K.UpSampling2D((2, 3), interpolation="bilinear")),
    ("rescaling", (4, 4, 2), lambda x: K.Rescaling(1 / 255, offset=-0.5)),
    ("resizing", (6, 6, 2), lambda x: K.Resizing(4, 3)),
    ("center_crop", (6, 6, 2), lambda x: K.CenterCrop(4, 3)),
    ("random_flip", (4, 4, 2), lambda x: K.RandomFlip()),
    ("random_rotation", (4, 4, 2), lambda x: K.RandomRotation(0.1)),
    ("random_translation", (4, 4, 2), lambda x: K.RandomTranslation(0.1, 0.1)),
    ("random_zoom", (4, 4, 2), lambda x: K.RandomZoom(0.1)),
    ("random_brightness", (4, 4, 2), lambda x: K.RandomBrightness(0.1)),
    ("random_contrast", (4, 4, 2), lambda x: K.RandomContrast(0.1)),
]
MERGES = ["Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract"]


def check_both_ways(keras_model, x, tmp_path):
    """Keras's file loads in fastcnn, and fastcnn's in Keras, each predicting as the other."""
    keras_model.save(tmp_path / "keras.keras")
    model = load_model(tmp_path / "keras.keras")
    expected = keras_predict(keras_model, x)
    assert_close(model.predict(x, verbose=0), expected)
    model.save(tmp_path / "fastcnn.keras", format="keras")
    assert_close(keras_predict(keras.models.load_model(tmp_path / "fastcnn.keras"), x), expected)


@pytest.mark.parametrize("case", LAYER_CASES, ids=[case[0] for case in LAYER_CASES])
def test_each_layer_goes_both_ways(case, tmp_path):
    _, shape, make = case
    x = data(shape)
    keras_model = keras.Sequential([keras.Input(shape), make(x)])
    check_both_ways(randomize_keras(keras_model), x, tmp_path)


def test_shared_layers_and_nested_functional_models_go_both_ways(tmp_path):
    """A functional model called thrice, one of its calls a model output (which Keras numbers
    from 1 there), a layer called twice, two inputs and three outputs."""
    inner_input = keras.Input((4,))
    inner = keras.Model(inner_input, K.Dense(3, activation="tanh")(inner_input), name="inner")
    shared = K.Dense(3)
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    mixed = K.Add()([inner(a), inner(b)])
    keras_model = keras.Model([a, b], [shared(mixed), inner(b), shared(inner(b))])
    randomize_keras(keras_model)
    keras_model.save(tmp_path / "keras.keras")
    model = load_model(tmp_path / "keras.keras")
    x = [data((4,), seed=1), data((4,), seed=2)]
    expected = [keras.ops.convert_to_numpy(y) for y in keras_model(x, training=False)]
    for got, want in zip(model.predict(x, verbose=0), expected):
        assert_close(got, want)
    model.save(tmp_path / "fastcnn.keras", format="keras")
    loaded = keras.models.load_model(tmp_path / "fastcnn.keras")
    for got, want in zip(loaded(x, training=False), expected):
        assert_close(keras.ops.convert_to_numpy(got), want)


def test_random_crop_goes_both_ways(tmp_path):
    """At inference Keras's RandomCrop gives its largest centred window resized to the crop, as
    its documentation and output shape say, and as fastcnn's does; Keras 3's torch backend
    returns the image whole instead. So only the config is compared with Keras's."""
    x = data((6, 5, 2))
    keras.Sequential([keras.Input((6, 5, 2)), K.RandomCrop(4, 3)]).save(tmp_path / "k.keras")
    model = load_model(tmp_path / "k.keras")
    twin = fastcnn.Sequential([fastcnn.Input((6, 5, 2)), layers.RandomCrop(4, 3)])
    np.testing.assert_array_equal(model.predict(x, verbose=0), twin.predict(x, verbose=0))
    model.save(tmp_path / "f.keras", format="keras")
    loaded = keras.models.load_model(tmp_path / "f.keras")
    assert loaded.output_shape == (None, 4, 3, 2)
    assert loaded.layers[0].get_config()["height"] == 4


@pytest.mark.parametrize("merge", MERGES)
def test_each_merge_goes_both_ways(merge, tmp_path):
    a, b = keras.Input((4, 3)), keras.Input((4, 3))
    keras_model = keras.Model([a, b], getattr(K, merge)()([a, b]))
    check_both_ways(keras_model, [data((4, 3), seed=1), data((4, 3), seed=2)], tmp_path)


# -- what is refused -------------------------------------------------------------------------
def save_keras(model, path):
    model.save(path)
    return path


@pytest.mark.parametrize("make,message", [
    (lambda: keras.Sequential([keras.Input((4,)), K.Lambda(lambda t: t * 2)]),
     r"'lambda\w*' \(Lambda\) is Python code, which fastcnn never runs"),
    (lambda: keras.Sequential([keras.Input((2, 6, 6)),
                               K.Conv2D(2, 3, data_format="channels_first")]),
     r"'conv2d.*' \(Conv2D\) has data_format='channels_first'"),
    (lambda: keras.Sequential([keras.Input((4, 3)), K.LSTM(2)]),
     r"\(LSTM\) has no fastcnn counterpart"),
    (lambda: keras.Sequential([keras.Input((4,)), K.BatchNormalization(renorm=True)]),
     r"\(BatchNormalization\) has renorm=True, which fastcnn's BatchNormalization does not"),
    (lambda: keras.Sequential([keras.Input((4,)),
                               K.Dense(2, kernel_regularizer="orthogonal_regularizer")]),
     r"option kernel_regularizer is OrthogonalRegularizer, which fastcnn does not have"),
])
def test_what_fastcnn_lacks_is_refused_by_name(make, message, tmp_path):
    path = save_keras(make(), tmp_path / "model.keras")
    with pytest.raises(InvalidSaveFileError, match=message):
        load_model(path)


def test_python_functions_and_custom_classes_are_refused_without_running(tmp_path):
    path = save_keras(keras.Sequential([keras.Input((4,)), K.Dense(2)]), tmp_path / "m.keras")
    original = path.read_bytes()
    marker = tmp_path / "pwned"
    code = {"module": "builtins", "class_name": "function", "registered_name": "function",
            "config": f"__import__('os').mkdir({str(marker)!r})"}
    custom = {"module": "evil", "class_name": "Dense", "registered_name": "Evil>Dense",
              "config": {"units": 2}}
    for change, message in [
            (lambda layer: layer["config"].update(activation=code), "Python code"),
            (lambda layer: layer.update(custom), r"custom class 'Evil>Dense' of module 'evil'"),
            (lambda layer: layer["config"].update(kernel_initializer={
                "class_name": "__lambda__", "config": {"code": "x"}}), "Python code")]:
        path.write_bytes(original)
        config = json.loads(zipfile.ZipFile(path).read("config.json"))
        change(config["config"]["layers"][1])
        rewrite(path, replace={"config.json": json.dumps(config)})
        with pytest.raises(InvalidSaveFileError, match=message):
            load_model(path)
    assert not marker.exists()


def test_a_fastcnn_layer_keras_lacks_is_refused_and_nothing_written(tmp_path):
    model = fastcnn.Sequential([fastcnn.Input((4, 4, 2)), layers.SumPooling2D()])
    with pytest.raises(ValueError, match=r"'sum_pooling2d.*' \(SumPooling2D\) has no Keras "
                                         "counterpart; save it with format='fastcnn'"):
        model.save(tmp_path / "model.keras", format="keras")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="format=.onnx."):
        model.save(tmp_path / "model.keras", format="onnx")
    model.save(tmp_path / "model.keras")  # the default stays fastcnn's own format
    assert json.loads(zipfile.ZipFile(tmp_path / "model.keras").read("metadata.json"))[
        "format"] == "fastcnn"


def test_a_compiled_state_keras_lacks_is_written_uncompiled_with_a_warning(tmp_path):
    def halved_mse(y_true, y_pred):
        return fastcnn.ops.mean((y_true - y_pred) ** 2, axis=-1) / 2

    model = fastcnn.Sequential([fastcnn.Input((4,)), layers.Dense(2)])
    model.compile("adam", loss=halved_mse)
    with pytest.warns(UserWarning, match="written uncompiled.*has no Keras class"):
        model.save(tmp_path / "model.keras", format="keras")
    assert not keras.models.load_model(tmp_path / "model.keras").compiled


def test_a_compile_config_fastcnn_lacks_loads_uncompiled_with_a_warning(tmp_path):
    model = keras.Sequential([keras.Input((4,)), K.Dense(2)])
    model.compile("adam", loss="mean_squared_logarithmic_error")
    path = save_keras(model, tmp_path / "model.keras")
    with pytest.warns(UserWarning, match="uncompiled.*mean_squared_logarithmic_error"):
        loaded = load_model(path)
    assert loaded.optimizer is None


# -- hostile files ---------------------------------------------------------------------------
@pytest.fixture
def small_keras(tmp_path):
    model = keras.Sequential([keras.Input((4,)), K.Dense(3)])
    model.save_weights(tmp_path / "model.weights.h5")
    return save_keras(model, tmp_path / "model.keras")


def test_too_many_members_and_deep_json_are_refused(small_keras):
    original = small_keras.read_bytes()
    rewrite(small_keras, add=[(f"assets/{k}", b"") for k in range(MEMBER_LIMIT)])
    with pytest.raises(InvalidSaveFileError, match=f"at most {MEMBER_LIMIT} members"):
        load_model(small_keras)
    small_keras.write_bytes(original)
    deep = b"[" * (JSON_DEPTH_LIMIT + 1) + b"]" * (JSON_DEPTH_LIMIT + 1)
    rewrite(small_keras, replace={"config.json": b'{"a": ' + deep + b"}"})
    with pytest.raises(InvalidSaveFileError, match="nested at most"):
        load_model(small_keras)
    small_keras.write_bytes(original)
    rewrite(small_keras, add=[("payload.pkl", b"")])
    with pytest.raises(InvalidSaveFileError, match=r"received \['payload.pkl'\]"):
        load_model(small_keras)


def test_layers_larger_than_the_weights_file_are_refused_before_allocation(small_keras):
    config = json.loads(zipfile.ZipFile(small_keras).read("config.json"))
    config["config"]["layers"][1]["config"]["units"] = 10**8  # 1.6 GB of weights
    rewrite(small_keras, replace={"config.json": json.dumps(config)})
    with pytest.raises(InvalidSaveFileError, match="as many as the file holds"):
        load_model(small_keras)


def forge_huge(f):
    """A dataset that declares 2**40 floats and stores none (chunked, never written)."""
    del f["layers/dense/vars/0"]
    f["layers/dense/vars"].create_dataset("0", shape=(2**40,), dtype="f4", chunks=(1024,))


@pytest.mark.parametrize("edit,message", [
    (forge_huge, r"shape \(4, 3\).*received shape \(1099511627776,\)"),
    (lambda f: (f["layers/dense/vars"].__delitem__("1"),
                f["layers/dense/vars"].create_dataset("1", data=np.zeros(3, np.int32))),
     "float dtype, received shape .* and dtype int32"),
    (lambda f: (f["layers/dense/vars"].__delitem__("1"),
                f["layers/dense/vars"].create_dataset("1", data=["a", "b", "c"],
                                                      dtype=h5py.string_dtype())),
     "float dtype"),
    (lambda f: (f["layers/dense/vars"].__delitem__("1"),
                f["layers/dense/vars"].__setitem__("1", h5py.SoftLink("/layers/dense/vars/0"))),
     "no soft or external links"),
    (lambda f: f["layers/dense/vars"].create_dataset("2", data=np.zeros(3, np.float32)),
     r"Expected the 2 weights of layer 'dense\w*' \(Dense\) under 'layers/dense/vars'"),
    (lambda f: f.create_dataset("layers/dense_9/vars/0", data=np.zeros(3, np.float32)),
     r"datasets no layer of it has: \['layers/dense_9/vars/0'\]"),
])
def test_hostile_weights_are_refused_before_they_are_read(small_keras, edit, message):
    edit_h5(small_keras, edit)
    with pytest.raises(InvalidSaveFileError, match=message):
        load_model(small_keras)
    weights = small_keras.parent / "model.weights.h5"
    edit_h5(weights, edit)
    model = fastcnn.Sequential([fastcnn.Input((4,)), layers.Dense(3)])
    before = [w.copy() for w in model.weights]
    with pytest.raises(InvalidSaveFileError, match=message):
        model.load_weights(weights)
    assert all(np.array_equal(a, b) for a, b in zip(model.weights, before))


@pytest.mark.parametrize("attribute", [np.bytes_(b"[" * (JSON_LIMIT + 1)), "[]"],
                         ids=["huge", "variable_length"])
def test_a_huge_or_variable_length_build_config_is_refused(tmp_path, attribute):
    """The attribute is read only to build a model that is not built: its size first."""
    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w", libver="latest") as f:  # the latest layout holds large attributes
        f.attrs["fastcnn_build_config"] = attribute
    with pytest.raises(InvalidSaveFileError, match=f"fastcnn_build_config' to be a string of "
                                                   f"at most {JSON_LIMIT} bytes"):
        fastcnn.Sequential([layers.Dense(3)]).load_weights(path)


def test_too_many_hdf5_objects_are_refused(tmp_path):
    path = tmp_path / "many.weights.h5"
    with h5py.File(path, "w") as f:
        group = f.create_group("optimizer")
        for k in range(MEMBER_LIMIT + 1):
            group.create_group(str(k))
    with pytest.raises(InvalidSaveFileError, match=f"at most {MEMBER_LIMIT} groups"):
        fastcnn.Sequential([fastcnn.Input((4,)), layers.Dense(3)]).load_weights(path)


def test_an_hdf5_file_is_no_model(small_keras):
    with pytest.raises(InvalidSaveFileError, match="HDF5 file holds Keras's weights alone"):
        load_model(small_keras.parent / "model.weights.h5")


# -- fastcnn's own files, and h5py missing ---------------------------------------------------
def test_fastcnn_files_of_any_name_still_load(tmp_path):
    model = randomize_fastcnn(fastcnn.Sequential([fastcnn.Input((4,)), layers.Dense(3)]))
    model.save_weights(tmp_path / "w.npz")
    os.replace(tmp_path / "w.npz", tmp_path / "old.weights.h5")  # fastcnn's zip, Keras's name
    fresh = fastcnn.Sequential([fastcnn.Input((4,)), layers.Dense(3)])
    fresh.load_weights(tmp_path / "old.weights.h5")
    model.save(tmp_path / "model.fastcnn")
    model.save(tmp_path / "model.keras", format="fastcnn")
    x = data((4,))
    for loaded in (fresh, load_model(tmp_path / "model.fastcnn"),
                   load_model(tmp_path / "model.keras")):
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_without_h5py_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    model = fastcnn.Sequential([fastcnn.Input((4,)), layers.Dense(3)])
    with pytest.raises(ImportError, match=r"pip install fastcnn\[keras\]"):
        model.save_weights(tmp_path / "model.weights.h5")
    with pytest.raises(ImportError, match=r"pip install fastcnn\[keras\]"):
        model.save(tmp_path / "model.keras", format="keras")
    assert list(tmp_path.iterdir()) == []
