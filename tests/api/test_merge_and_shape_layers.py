"""The merging layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate and their
functional forms) and the shape layers (Cropping2D, Reshape, Permute): Keras's output shapes and
broadcasting, values against NumPy, gradients against central differences through small models,
the layer contract, refusals naming the argument, and saving."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from fastcnn.engine.execution import CallContext
from conftest import call_layer, check_layer, check_weight_gradients, reloaded

ELEMENTWISE = {"Add": np.add, "Subtract": np.subtract, "Multiply": np.multiply,
               "Average": None, "Maximum": np.maximum, "Minimum": np.minimum}
FUNCTIONAL = {"Add": layers.add, "Subtract": layers.subtract, "Multiply": layers.multiply,
              "Average": layers.average, "Maximum": layers.maximum, "Minimum": layers.minimum}


def merge_call(layer, xs, dy):
    """(y, [dx per input]) of one call of a merging layer through the engine's contract."""
    ctx = CallContext()
    y = np.array(layer.forward(xs, ctx, True))
    return y, [np.array(dx) for dx in layer.backward(dy, ctx, True)]


def keras_merge(name, xs):
    """Keras's merge of arrays: lower ranks get axes of size 1 after the batch axis, then the
    inputs are folded left to right (Average: the sum over the count)."""
    rank = max(x.ndim for x in xs)
    xs = [x.reshape(x.shape[0], *(1,) * (rank - x.ndim), *x.shape[1:]) for x in xs]
    if name == "Average":
        return sum(xs[1:], xs[0]) / len(xs)
    total = xs[0]
    for x in xs[1:]:
        total = ELEMENTWISE[name](total, x)
    return total


# ---- output shapes: Keras's _compute_elemwise_op_output_shape ---------------------------------

@pytest.mark.parametrize("shapes, want", [
    ([(None, 4), (None, 4)], (None, 4)),
    ([(None, 4), (None, 3, 4)], (None, 3, 4)),  # the lower rank gains axes after the batch
    ([(None, 1, 5), (None, 3, 1)], (None, 3, 5)),
    ([(None, 1), (None, 5), (None, 2, 1)], (None, 2, 5)),
    ([(None, None, 4), (None, 3, 4)], (None, None, 4)),  # an unknown size stays unknown
    ([(8, 2, 3), (None, 2, 3)], (8, 2, 3)),  # the known batch size
])
@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if n != "Subtract"])
def test_output_shapes_follow_keras_broadcasting(name, shapes, want):
    layer = getattr(layers, name)()
    assert layer.compute_output_shape(shapes) == want
    tensors = [fastcnn.Input(batch_shape=s) for s in shapes]
    assert getattr(layers, name)()(tensors).shape == want


@pytest.mark.parametrize("shapes", [[(None, 3), (None, 4)], [(2, 3), (3, 3)],
                                    [(None, 2, 3), (None, 3, 3)]], ids=str)
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_shapes_that_do_not_broadcast_are_refused(name, shapes):
    with pytest.raises(ValueError, match="broadcast"):
        getattr(layers, name)().compute_output_shape(shapes)


@pytest.mark.parametrize("name", list(ELEMENTWISE) + ["Concatenate"])
def test_a_merge_needs_a_list_of_inputs(name):
    x = fastcnn.Input((3,))
    with pytest.raises(ValueError, match="list"):
        getattr(layers, name)()(x)
    with pytest.raises(ValueError, match="list"):
        getattr(layers, name)()([x])


def test_subtract_takes_exactly_two_inputs():
    xs = [fastcnn.Input((3,)) for _ in range(3)]
    with pytest.raises(ValueError, match="exactly two inputs"):
        layers.Subtract()(xs)
    with pytest.raises(ValueError, match="exactly two inputs"):
        layers.subtract(xs)


# ---- values and gradients -------------------------------------------------------------------

@pytest.mark.parametrize("shapes", [[(4, 3), (4, 3), (4, 3)], [(4, 2, 3), (4, 3)],
                                    [(4, 1, 3), (4, 5, 1)]], ids=str)
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_values_are_keras_merges(name, shapes, rng):
    shapes = shapes[:2] if name == "Subtract" else shapes
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    want = keras_merge(name, xs)
    np.testing.assert_array_equal(getattr(layers, name)()(xs), want)
    np.testing.assert_array_equal(FUNCTIONAL[name](xs), want)


@pytest.mark.parametrize("name", ["Maximum", "Minimum"])
def test_ties_send_the_gradient_to_the_first_input(name, rng):
    """As TensorFlow's gradient of Keras's fold: maximum(x, y) passes it to x where x >= y."""
    a = rng.standard_normal((3, 4)).astype(np.float32)
    dy = rng.standard_normal((3, 4)).astype(np.float32)
    y, dxs = merge_call(getattr(layers, name)(), [a, a.copy(), a.copy()], dy)
    np.testing.assert_array_equal(y, a)
    np.testing.assert_array_equal(dxs[0], dy)
    np.testing.assert_array_equal(dxs[1], 0)
    np.testing.assert_array_equal(dxs[2], 0)


def test_broadcast_inputs_get_gradients_of_their_own_shapes(rng):
    a = rng.standard_normal((4, 2, 3)).astype(np.float32)
    b = rng.standard_normal((4, 3)).astype(np.float32)  # (4, 1, 3) in Keras's alignment
    dy = rng.standard_normal((4, 2, 3)).astype(np.float32)
    _, (da, db) = merge_call(layers.Multiply(), [a, b], dy)
    np.testing.assert_allclose(da, dy * b[:, None, :], rtol=1e-6)
    np.testing.assert_allclose(db, (dy * a).sum(axis=1), rtol=1e-5)
    _, (da, db) = merge_call(layers.Add(), [a, b], dy)
    np.testing.assert_array_equal(da, dy)
    np.testing.assert_allclose(db, dy.sum(axis=1), rtol=1e-6)


def branches(merge, second_units=3, second_shape=None):
    """Two inputs, each through a Dense branch, merged, then a Dense head."""
    fastcnn.utils.set_random_seed(4)
    a, b = fastcnn.Input((2,), name="a"), fastcnn.Input((3,), name="b")
    left = layers.Dense(3, activation="tanh")(a)
    right = layers.Dense(second_units, activation="sigmoid")(b)
    if second_shape is not None:
        right = layers.Reshape(second_shape)(right)
    merged = merge([left, right])
    if len(merged.shape) > 2:
        merged = layers.Flatten()(merged)
    return fastcnn.Model([a, b], layers.Dense(2)(merged))


def branch_data(rng, n=6):
    return [rng.standard_normal((n, 2)).astype(np.float32),
            rng.standard_normal((n, 3)).astype(np.float32)]


@pytest.mark.parametrize("variant", ["same", "size_1", "lower_rank"])
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_weight_gradients_through_each_merge_match_central_differences(name, variant, rng):
    units, shape = {"same": (3, None), "size_1": (1, None), "lower_rank": (6, (2, 3))}[variant]
    model = branches(getattr(layers, name)(), units, shape)
    xs = branch_data(rng)
    upstream = rng.standard_normal((6, 2)).astype(np.float32)
    # the branches' kernels: their gradients pass through the merge's backward
    branch_weights = [layer.kernel for layer in model.layers[:-1] if hasattr(layer, "kernel")]
    check_weight_gradients(model, xs, [upstream], branch_weights)


@pytest.mark.parametrize("name", list(ELEMENTWISE) + ["Concatenate"])
def test_merge_contract(name, rng, tmp_path):
    """The contract of check_layer for layers of two inputs: symbolic output shape, config round
    trip, one training step lowering the loss, and saving."""
    layer = getattr(layers, name)()
    out = layer([fastcnn.Input((3,)), fastcnn.Input((3,))])
    assert out.shape == ((None, 6) if name == "Concatenate" else (None, 3))
    assert layer.count_params() == 0
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    model = branches(getattr(layers, name)())
    model.compile(optimizer=fastcnn.optimizers.SGD(0.1), loss="mse")
    xs, y = branch_data(rng), rng.standard_normal((6, 2)).astype(np.float32)
    before = model.evaluate(xs, y, verbose=0)
    model.fit(xs, y, batch_size=6, epochs=1, verbose=0, shuffle=False)
    assert model.evaluate(xs, y, verbose=0) < before
    reloaded(model, xs, tmp_path)


def test_functional_concatenate_takes_axis_and_layer_arguments():
    a, b = fastcnn.Input((2, 3)), fastcnn.Input((4, 3))
    out = layers.concatenate([a, b], axis=1, name="joined")
    assert out.shape == (None, 6, 3)
    assert out.node.operation.name == "joined" and out.node.operation.axis == 1


# ---- shape layers ---------------------------------------------------------------------------

SHAPE_CASES = {
    "cropping_pairs": (lambda: layers.Cropping2D(((1, 2), (0, 3))), (7, 6, 2), (4, 3, 2), 0),
    "cropping_int": (lambda: layers.Cropping2D(1), (5, 6, 3), (3, 4, 3), 0),
    "cropping_symmetric": (lambda: layers.Cropping2D((2, 1)), (7, 6, 2), (3, 4, 2), 0),
    "reshape": (lambda: layers.Reshape((6, 4)), (4, 3, 2), (6, 4), 0),
    "reshape_inferred": (lambda: layers.Reshape((3, -1)), (4, 3, 2), (3, 8), 0),
    "permute": (lambda: layers.Permute((3, 1, 2)), (4, 5, 2), (2, 4, 5), 0),
    "permute_2d": (lambda: layers.Permute((2, 1)), (6, 3), (3, 6), 0),
}


@pytest.mark.parametrize("name", sorted(SHAPE_CASES))
def test_shape_layer_contract(name):
    check_layer(*SHAPE_CASES[name])


def test_shape_layer_values_are_numpys(rng):
    x = rng.standard_normal((3, 7, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(layers.Cropping2D(((1, 2), (0, 3)))(x), x[:, 1:5, 0:3])
    np.testing.assert_array_equal(layers.Cropping2D(((0, 0), (0, 0)))(x), x)
    np.testing.assert_array_equal(layers.Permute((3, 1, 2))(x), x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(layers.Permute((2, 1, 3))(x), x.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(layers.Reshape((-1, 4))(x), x.reshape(3, -1, 4))


def test_shape_layer_gradients_route_each_value_back(rng):
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    _, dx, _ = call_layer(layers.Cropping2D(((1, 2), (2, 1))), x, dy)
    want = np.zeros_like(x)
    want[:, 1:3, 2:5] = dy
    np.testing.assert_array_equal(dx, want)
    dy = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    _, dx, _ = call_layer(layers.Permute((3, 1, 2)), x, dy)
    np.testing.assert_array_equal(dx, dy.transpose(0, 2, 3, 1))
    _, dx, _ = call_layer(layers.Reshape((15, 6)), x, dy.reshape(2, 15, 6))
    np.testing.assert_array_equal(dx, dy.reshape(x.shape))


def test_shape_layers_weight_gradients_match_central_differences(rng):
    fastcnn.utils.set_random_seed(5)
    inputs = fastcnn.Input((6, 5, 2))
    h = layers.Conv2D(3, 2, activation="tanh")(inputs)  # (5, 4, 3)
    h = layers.Cropping2D(((1, 0), (1, 1)))(h)  # (4, 2, 3)
    h = layers.Permute((3, 1, 2))(h)  # (3, 4, 2)
    h = layers.Reshape((4, -1))(h)  # (4, 6)
    model = fastcnn.Model(inputs, layers.Dense(2)(h))
    x = rng.standard_normal((3, 6, 5, 2)).astype(np.float32)
    upstream = rng.standard_normal((3, 4, 2)).astype(np.float32)
    check_weight_gradients(model, [x], [upstream], model.trainable_weights)


@pytest.mark.parametrize("make, message", [
    (lambda: layers.Cropping2D(-1), "cropping"),
    (lambda: layers.Cropping2D((1, 2, 3)), "cropping"),
    (lambda: layers.Cropping2D("1"), "cropping"),
    (lambda: layers.Cropping2D(1, data_format="channels_first"), "data_format"),
    (lambda: layers.Reshape((-1, -1)), "target_shape"),
    (lambda: layers.Reshape((0, 3)), "target_shape"),
    (lambda: layers.Reshape(3.5), "target_shape"),
    (lambda: layers.Permute((1, 3)), "dims"),
    (lambda: layers.Permute((0, 1)), "dims"),
    (lambda: layers.Permute((1, 1)), "dims"),
])
def test_bad_constructor_arguments_are_refused_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("layer, shape, message", [
    (lambda: layers.Cropping2D(((2, 3), (0, 0))), (5, 6, 1), "cropping"),
    (lambda: layers.Cropping2D(((0, 0), (3, 3))), (5, 6, 1), "cropping"),
    (lambda: layers.Cropping2D(1), (5, 6), "height, width"),
    (lambda: layers.Reshape((5, 3)), (4, 4), "target_shape"),
    (lambda: layers.Reshape((-1, 5)), (4, 4), "target_shape"),
    (lambda: layers.Permute((2, 1)), (3, 4, 5), "rank"),
])
def test_inputs_a_shape_layer_cannot_take_are_refused(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer()(fastcnn.Input(shape))


def test_unknown_sizes_pass_through_shape_layers():
    assert layers.Reshape((-1, 2))(fastcnn.Input((None, 4))).shape == (None, None, 2)
    assert layers.Cropping2D(1)(fastcnn.Input((None, 6, 2))).shape == (None, None, 4, 2)
    assert layers.Permute((2, 1))(fastcnn.Input((None, 3))).shape == (None, 3, None)


def test_a_model_of_every_merge_and_shape_layer_saves_and_loads(rng, tmp_path):
    fastcnn.utils.set_random_seed(6)
    image, vector = fastcnn.Input((6, 6, 2)), fastcnn.Input((4,))
    cropped = layers.Cropping2D(((1, 1), (0, 2)))(layers.Conv2D(4, 1)(image))  # (4, 4, 4)
    permuted = layers.Permute((2, 1, 3))(cropped)
    flat = layers.Reshape((-1,))(permuted)  # (64,)
    v = layers.Dense(64)(vector)
    merged = [f([flat, v]) for f in (layers.add, layers.subtract, layers.multiply,
                                     layers.average, layers.maximum, layers.minimum)]
    model = fastcnn.Model([image, vector], layers.Dense(3)(layers.concatenate(merged)))
    xs = [rng.standard_normal((5, 6, 6, 2)).astype(np.float32),
          rng.standard_normal((5, 4)).astype(np.float32)]
    copy = reloaded(model, xs, tmp_path)
    assert [type(layer).__name__ for layer in copy.layers] == \
        [type(layer).__name__ for layer in model.layers]
    for layer in model.layers:
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def test_training_is_bitwise_the_same_at_one_and_two_threads(rng):
    """Large enough that the kernels split their work: every merge, broadcast, and the shape
    layers, trained a few steps at each thread count from the same start."""
    x = rng.standard_normal((32, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 3, 32)

    def trained(threads):
        fastcnn.utils.set_random_seed(7)
        image = fastcnn.Input((16, 16, 3))
        h = layers.Conv2D(8, 1, activation="tanh")(image)
        cropped = layers.Cropping2D(((1, 1), (2, 0)))(h)  # (14, 14, 8)
        gate = layers.Dense(8, activation="sigmoid")(layers.GlobalAveragePooling2D()(h))
        scaled = layers.multiply([cropped, layers.Reshape((1, 1, 8))(gate)])  # broadcast
        merged = [f([scaled, cropped]) for f in (layers.add, layers.subtract, layers.average,
                                                 layers.maximum, layers.minimum)]
        joined = layers.Permute((3, 1, 2))(layers.concatenate(merged))
        model = fastcnn.Model(image, layers.Dense(3, activation="softmax")(
            layers.Flatten()(joined)))
        model.compile(optimizer=fastcnn.optimizers.SGD(0.05),
                      loss="sparse_categorical_crossentropy")
        fastcnn.set_num_threads(threads)
        try:
            model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        finally:
            fastcnn.set_num_threads(None)
        return model.get_weights()

    for got, want in zip(trained(2), trained(1), strict=True):
        np.testing.assert_array_equal(got, want)
