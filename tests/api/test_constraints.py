"""Weight constraints: Keras's formulas (restated: a slice's L2 norm n along ``axis`` is moved
to its target t by w * t / (1e-7 + n)), names and configs, and their application after every
optimizer step of fit."""
import numpy as np
import pytest

import fastcnn
from fastcnn import constraints, layers

EPS = 1e-7


def _norms(w, axis):
    return np.sqrt((w.astype(np.float64) ** 2).sum(axis=axis, keepdims=True))


def test_formulas(rng):
    w = (rng.standard_normal((5, 4)) * 2).astype(np.float32)
    n0 = _norms(w, 0)
    np.testing.assert_allclose(constraints.MaxNorm(2.0)(w), w * np.minimum(n0, 2) / (EPS + n0),
                               rtol=1e-6)
    np.testing.assert_allclose(constraints.UnitNorm(axis=1)(w), w / (EPS + _norms(w, 1)),
                               rtol=1e-6)
    target = 0.5 * np.clip(n0, 1.0, 2.0) + 0.5 * n0
    np.testing.assert_allclose(constraints.MinMaxNorm(1.0, 2.0, rate=0.5)(w),
                               w * target / (EPS + n0), rtol=1e-6)
    np.testing.assert_array_equal(constraints.NonNeg()(w), np.maximum(w, 0))
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    norms = np.sqrt((constraints.MaxNorm(1.0, axis=[0, 1, 2])(kernel) ** 2).sum(axis=(0, 1, 2)))
    assert np.all(norms <= 1.0 + 1e-6)
    assert constraints.MaxNorm(1.0)(w).dtype == np.float32


def test_names_and_configs():
    for name, cls in [("max_norm", constraints.MaxNorm), ("NonNeg", constraints.NonNeg),
                      ("unit_norm", constraints.UnitNorm), ("min_max_norm", constraints.MinMaxNorm)]:
        assert type(constraints.get(name)) is cls
    for c in (constraints.MaxNorm(3, axis=[0, 1]), constraints.UnitNorm(1), constraints.NonNeg(),
              constraints.MinMaxNorm(0.5, 2.0, 0.3)):
        again = constraints.get(constraints.serialize(c))
        assert type(again) is type(c) and again.get_config() == c.get_config()
    with pytest.raises(ValueError, match="Unknown constraint"):
        constraints.get("max_value")
    with pytest.raises(ValueError, match="min_value <= max_value"):
        constraints.MinMaxNorm(2, 1)


def test_applied_after_each_step(rng):
    """After every step the kernel's columns have norm <= 0.5 and the bias is >= 0; one SGD step
    from known weights gives exactly the constraint of the plain step."""
    fastcnn.utils.set_random_seed(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 3)) * 3 - 2).astype(np.float32)

    def model_with(**kwargs):
        fastcnn.utils.set_random_seed(0)
        model = fastcnn.Sequential([fastcnn.Input(shape=(4,)), layers.Dense(3, **kwargs)])
        model.compile(optimizer=fastcnn.optimizers.SGD(0.5), loss="mse")
        return model

    plain = model_with()
    bounded = model_with(kernel_constraint=constraints.MaxNorm(0.5),
                         bias_constraint=constraints.NonNeg())
    plain.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    bounded.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(bounded.layers[0].kernel,
                               constraints.MaxNorm(0.5)(plain.layers[0].kernel), rtol=1e-6)
    np.testing.assert_array_equal(bounded.layers[0].bias, np.maximum(plain.layers[0].bias, 0))

    class Record(fastcnn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            kernel, bias = self.model.layers[0].kernel, self.model.layers[0].bias
            assert np.all(np.sqrt((kernel.astype(np.float64) ** 2).sum(axis=0)) <= 0.5 + 1e-6)
            assert np.all(bias >= 0)

    bounded.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[Record()])


def test_conv_kernel_constraint_and_save(rng, tmp_path):
    model = fastcnn.Sequential([
        fastcnn.Input(shape=(5, 5, 2)),
        layers.Conv2D(3, 3, kernel_constraint=constraints.UnitNorm(axis=[0, 1, 2])),
        layers.Flatten(), layers.Dense(2)])
    model.compile("sgd", loss="mse")
    model.fit(rng.standard_normal((8, 5, 5, 2)), rng.standard_normal((8, 2)), verbose=0)
    kernel = model.layers[0].kernel.astype(np.float64)
    np.testing.assert_allclose(np.sqrt((kernel ** 2).sum(axis=(0, 1, 2))), 1, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = fastcnn.models.load_model(tmp_path / "m.keras")
    assert loaded.layers[0].kernel_constraint.get_config() == {"axis": [0, 1, 2]}
