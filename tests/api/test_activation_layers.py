"""The activation layers (ReLU with its options, LeakyReLU, ELU, Softmax, PReLU), every activation
by name as an Activation layer and as a Dense layer's activation, and ``fastcnn.activations``:
the layer contract, Keras's arguments and configs, gradients, and the planner leaving
parameterised activations out of its relu and softmax fusions."""
import functools

import numpy as np
import pytest

import fastcnn
from fastcnn import activations, layers
from fastcnn._ops import activation as activation_ops
from conftest import check_layer, check_weight_gradients, reloaded, training_plan

NAMES = activation_ops.ACTIVATIONS
# Keras 3.15's keras.activations: its functions and its two aliases
KERAS_NAMES = {"relu", "leaky_relu", "relu6", "softmax", "elu", "selu", "softplus", "softsign",
               "silu", "gelu", "tanh", "sigmoid", "exponential", "hard_sigmoid", "hard_silu",
               "linear", "mish", "log_softmax", "swish", "hard_swish"}

LAYER_CASES = {  # name: (make_layer, input_shape, output_shape, n_params)
    "ReLU": (lambda: layers.ReLU(), (4, 5, 3), (4, 5, 3), 0),
    "ReLU-max_value": (lambda: layers.ReLU(max_value=6), (4, 5, 3), (4, 5, 3), 0),
    "ReLU-all-options": (lambda: layers.ReLU(max_value=3.0, negative_slope=0.1, threshold=0.2),
                         (4, 5, 3), (4, 5, 3), 0),
    "LeakyReLU": (lambda: layers.LeakyReLU(), (7,), (7,), 0),
    "LeakyReLU-0.1": (lambda: layers.LeakyReLU(negative_slope=0.1), (4, 5, 3), (4, 5, 3), 0),
    "ELU": (lambda: layers.ELU(), (7,), (7,), 0),
    "ELU-0.5": (lambda: layers.ELU(alpha=0.5), (4, 5, 3), (4, 5, 3), 0),
    "Softmax": (lambda: layers.Softmax(), (4, 5, 3), (4, 5, 3), 0),
    "Softmax-axis-1": (lambda: layers.Softmax(axis=1), (4, 5, 3), (4, 5, 3), 0),
    "Softmax-axes-1-2": (lambda: layers.Softmax(axis=[1, 2]), (4, 5, 3), (4, 5, 3), 0),
    "PReLU": (lambda: layers.PReLU(), (4, 5, 3), (4, 5, 3), 60),
    "PReLU-channels": (lambda: layers.PReLU(alpha_initializer="ones", shared_axes=[1, 2]),
                       (4, 5, 3), (4, 5, 3), 3),
    "PReLU-dense": (lambda: layers.PReLU(alpha_initializer="random_normal"), (7,), (7,), 7),
    **{f"Activation-{name}": (functools.partial(layers.Activation, name), (4, 5, 3), (4, 5, 3), 0)
       for name in NAMES},
    **{f"Dense-{name}": (functools.partial(layers.Dense, 4, activation=name), (6,), (4,), 28)
       for name in NAMES},
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_contract(case):
    check_layer(*LAYER_CASES[case])


def test_every_keras_activation_has_its_name():
    assert set(NAMES) == KERAS_NAMES
    assert set(NAMES) <= set(dir(activations))


@pytest.mark.parametrize("name", NAMES)
def test_activation_layer_and_dense_apply_the_function(name, rng):
    """Activation(name) and Dense(activation=name) compute the function of fastcnn.activations
    of that name; their configs name it as Keras's serialize does (an alias by its function)."""
    x = rng.standard_normal((5, 4, 6)).astype(np.float32)
    function = activations.get(name)
    np.testing.assert_array_equal(layers.Activation(name)(x), function(x))
    dense = layers.Dense(3, activation=name)
    z = layers.Dense(3)
    z.build((None, 4, 6))
    dense.build((None, 4, 6))
    z.set_weights(dense.get_weights())
    np.testing.assert_allclose(dense(x), function(z(x)), rtol=1e-6, atol=1e-6)
    assert dense.get_config()["activation"] == activations.serialize(function)
    assert layers.Activation(function).get_config()["activation"] == activations.serialize(function)


@pytest.mark.parametrize("name", NAMES)
def test_dense_activation_weight_gradients(name, rng):
    """The engine's gradients through each activation against central differences."""
    fastcnn.utils.set_random_seed(1)
    inputs = fastcnn.Input((6,))
    model = fastcnn.Model(inputs, layers.Dense(5, activation=name)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x = rng.standard_normal((4, 6)).astype(np.float32)
    dense = model.layers[-1]
    check_weight_gradients(model, [x], [rng.standard_normal((4, 5)).astype(np.float32)],
                           [dense.kernel, dense.bias])


@pytest.mark.parametrize("make_layer", [
    lambda: layers.ReLU(max_value=1.0, negative_slope=0.2, threshold=0.1),
    lambda: layers.LeakyReLU(0.1), lambda: layers.ELU(0.7), lambda: layers.Softmax(axis=1),
    lambda: layers.PReLU(alpha_initializer="random_normal", shared_axes=[1]),
    lambda: layers.Activation("gelu"), lambda: layers.Activation("mish")],
    ids=["ReLU", "LeakyReLU", "ELU", "Softmax", "PReLU", "gelu", "mish"])
def test_gradients_through_layer(make_layer, rng):
    """Each layer between two Dense layers: the weight gradients of the Dense before it (which
    pass through the layer's backward) and the layer's own, against central differences."""
    fastcnn.utils.set_random_seed(2)
    inputs = fastcnn.Input((3, 4))
    first = layers.Dense(5)
    layer = make_layer()
    outputs = layers.Dense(2)(layer(first(inputs)))
    model = fastcnn.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    x = rng.standard_normal((4, 3, 4)).astype(np.float32)
    check_weight_gradients(model, [x], [rng.standard_normal((4, 3, 2)).astype(np.float32)],
                           [first.kernel, first.bias, *layer._weights])


def test_prelu_trains_its_slopes_like_torch(rng):
    """One PReLU after a conv-free input: the slope gradient of a sum-of-outputs objective is
    torch's."""
    torch = pytest.importorskip("torch")
    layer = layers.PReLU(alpha_initializer="random_normal", shared_axes=[1, 2])
    x = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer.build(x.shape)
    from conftest import call_layer
    y, dx, (dalpha,) = call_layer(layer, x, dy)
    t = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
    w = torch.tensor(layer.alpha.reshape(-1).copy(), requires_grad=True)
    out = torch.nn.functional.prelu(t, w)
    out.backward(torch.tensor(dy).permute(0, 3, 1, 2))
    np.testing.assert_allclose(y, out.detach().permute(0, 2, 3, 1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(dx, t.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(dalpha.reshape(-1), w.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_configs_follow_keras():
    assert layers.ReLU(max_value=6).get_config() | {"name": None} == {
        "name": None, "trainable": True, "dtype": "float32", "max_value": 6,
        "negative_slope": 0.0, "threshold": 0.0}
    assert layers.LeakyReLU().get_config()["negative_slope"] == 0.3
    with pytest.warns(DeprecationWarning, match="negative_slope"):
        assert layers.LeakyReLU(alpha=0.1).get_config()["negative_slope"] == 0.1
    assert activations.leaky_relu(np.array([-1.0]))[0] == pytest.approx(-0.2)
    assert layers.ELU().get_config()["alpha"] == 1.0
    assert layers.Softmax(axis=[1, 2]).get_config()["axis"] == [1, 2]
    config = layers.PReLU().get_config()
    assert {k: config[k] for k in ("alpha_initializer", "alpha_regularizer", "alpha_constraint",
                                   "shared_axes")} == {
        "alpha_initializer": "zeros", "alpha_regularizer": None, "alpha_constraint": None,
        "shared_axes": None}
    assert layers.PReLU(shared_axes=2).get_config()["shared_axes"] == [2]
    assert layers.Dense(2, activation="swish").get_config()["activation"] == "silu"
    assert layers.Dense(2, activation="hard_swish").get_config()["activation"] == "hard_silu"
    assert layers.Activation("GELU").get_config()["activation"] == "gelu"


@pytest.mark.parametrize("call,error,fragments", [
    (lambda: layers.ReLU(max_value=-1.0), ValueError, ["max_value", "-1.0"]),
    (lambda: layers.ReLU(negative_slope=-0.5), ValueError, ["negative_slope", "-0.5"]),
    (lambda: layers.ReLU(threshold=None), ValueError, ["threshold", "None"]),
    (lambda: layers.LeakyReLU(negative_slope=None), ValueError, ["negative_slope", "None"]),
    (lambda: layers.LeakyReLU(negative_slope=-1), ValueError, ["negative_slope", "-1"]),
    (lambda: layers.ELU(alpha=-1.0), ValueError, ["alpha", "-1.0"]),
    (lambda: layers.Softmax(axis="last"), ValueError, ["axis", "'last'"]),
    (lambda: layers.Softmax(axis=3)(fastcnn.Input((4, 5))), ValueError, ["axis", "3"]),
    (lambda: layers.Activation("gelu_tanh"), ValueError, ["'gelu_tanh'"]),
    (lambda: layers.Activation(lambda x: x), ValueError, ["fastcnn.activations"]),
    (lambda: layers.Dense(3, activation=functools.partial(activations.gelu, approximate=True)),
     ValueError, ["fastcnn.activations"]),
    (lambda: layers.PReLU(shared_axes=[0]), ValueError, ["shared_axes", "[0]"]),
    (lambda: layers.PReLU(shared_axes=[3])(fastcnn.Input((4, 5))), ValueError,
     ["shared_axes", "[3]"]),
    (lambda: layers.PReLU(alpha_initializer="nope"), ValueError, ["'nope'"]),
    (lambda: layers.PReLU(alpha_constraint="non_neg"), ValueError, ["alpha_constraint"]),
])
def test_bad_arguments_are_refused(call, error, fragments):
    with pytest.raises(error) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value)


def test_activations_module_get_serialize_deserialize():
    assert activations.get(None) is activations.linear
    assert activations.get("swish") is activations.silu
    assert activations.get("hard_swish") is activations.hard_silu
    assert activations.get(np.tanh) is np.tanh  # any callable, as Keras's get
    for name in NAMES:
        function = activations.deserialize(name)
        assert activations.deserialize(activations.serialize(function)) is function
    assert activations.serialize(activations.swish) == "silu"
    with pytest.raises(ValueError, match="fastcnn.activations"):
        activations.serialize(np.tanh)
    with pytest.raises(ValueError, match="'nope'"):
        activations.get("nope")
    x = np.array([[-2, 0, 3]])
    assert activations.relu(x).dtype == np.float32  # integers become float32, as in a layer
    assert activations.elu(-1.0).shape == () and activations.elu(-1.0) == pytest.approx(-0.632120558)
    assert activations.gelu(x, approximate=True)[0, 2] == pytest.approx(2.9963627, rel=1e-6)
    np.testing.assert_allclose(activations.softmax(x.astype(float), axis=0), np.ones((1, 3)))


def test_parameterised_activations_stay_out_of_the_planners_fusions(rng):
    """A ReLU with a cap before max pooling keeps its own backward (the pooling's relu handoff
    would apply plain relu's), and a softmax over another axis than the last is not fused into
    the cross-entropy over the last: fused and unfused plans train alike."""
    x = rng.standard_normal((8, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    histories = {}
    for fuse in (True, False):
        fastcnn.utils.set_random_seed(4)
        inputs = fastcnn.Input((6, 6, 2))
        h = layers.Conv2D(4, 3)(inputs)
        h = layers.ReLU(max_value=0.3, negative_slope=0.1)(h)
        h = layers.MaxPooling2D()(h)
        h = layers.Dense(3)(layers.Flatten()(h))
        model = fastcnn.Model(inputs, layers.Softmax(axis=0)(h))
        model.compile(optimizer=fastcnn.optimizers.SGD(0.1),
                      loss="sparse_categorical_crossentropy", fuse=fuse)
        if fuse:
            plan = training_plan(model)
            assert not any(plan.logits_outputs)
        histories[fuse] = model.fit(x, y, batch_size=8, epochs=3, verbose=0,
                                    shuffle=False).history["loss"]
    np.testing.assert_allclose(histories[True], histories[False], rtol=1e-5)


def test_saved_models_keep_the_activations(rng, tmp_path):
    inputs = fastcnn.Input((4, 5, 3))
    h = layers.PReLU(alpha_initializer="random_normal", shared_axes=[1, 2])(inputs)
    h = layers.ReLU(max_value=2.0, threshold=0.1)(h)
    h = layers.LeakyReLU(0.1)(layers.ELU(0.5)(h))
    h = layers.Dense(3, activation="selu")(layers.Softmax(axis=[1, 2])(h))
    h = layers.Activation(activations.hard_swish)(h)
    model = fastcnn.Model(inputs, layers.Flatten()(h))
    copy = reloaded(model, rng.standard_normal((2, 4, 5, 3)).astype(np.float32), tmp_path)
    assert [l.get_config() for l in copy.layers] == [l.get_config() for l in model.layers]
