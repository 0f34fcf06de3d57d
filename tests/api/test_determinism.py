"""Bitwise determinism: seeded fits repeat, thread counts agree, and a fit resumed from a saved
file (optimizer slots, step count and the per-epoch shuffling/dropout RNG included) continues
exactly as if it had never stopped."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, optimizers
from fastcnn.models import load_model
from conftest import child_env

OPTIMIZERS = {"adam": lambda: optimizers.Adam(0.01),
              "sgd-momentum": lambda: optimizers.SGD(0.05, momentum=0.9)}


def make_model(optimizer, seed=3):
    fastcnn.utils.set_random_seed(seed)
    model = fastcnn.Sequential([
        fastcnn.Input(shape=(10, 10, 1)),
        layers.Conv2D(6, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(8, (2, 3), padding="same", activation="relu"),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(4, activation="softmax"),
    ])
    model.compile(optimizer=OPTIMIZERS[optimizer](), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def fit(model, epochs, initial_epoch=0):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 80)
    x = rng.standard_normal((80, 10, 10, 1)).astype(np.float32)
    x[np.arange(80), labels * 2, labels * 2, 0] += 2
    model.fit(x, fastcnn.utils.to_categorical(labels, 4), batch_size=16, epochs=epochs,
              initial_epoch=initial_epoch, validation_split=0.2, verbose=0)


def state(model):
    """Everything that decides how training goes on: weights, optimizer slots and step, seed."""
    slots = [a for values in model.optimizer.slots_for(model.trainable_weights) for a in values]
    return model.get_weights() + slots + [np.array(model.optimizer.iterations), np.array(model.seed)]


def identical(a, b):
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(params=sorted(OPTIMIZERS))
def optimizer(request):
    return request.param


def test_seeded_fits_are_bitwise_identical(optimizer):
    runs = []
    for seed in (3, 3, 4):
        model = make_model(optimizer, seed)
        fit(model, 2)
        runs.append(state(model))
    assert identical(runs[0], runs[1])
    assert not identical(runs[0], runs[2])


def test_one_and_two_threads_are_bitwise_identical(optimizer):
    runs = []
    try:
        for threads in (1, 2):
            fastcnn.set_num_threads(threads)
            model = make_model(optimizer)
            fit(model, 2)
            runs.append(state(model))
    finally:
        fastcnn.set_num_threads(None)
    assert identical(*runs)


def test_resuming_from_a_saved_file_matches_an_uninterrupted_fit(optimizer, tmp_path):
    straight = make_model(optimizer)
    fit(straight, 4)

    first_half = make_model(optimizer)
    fit(first_half, 2)
    path = tmp_path / "half.keras"
    first_half.save(path)
    fastcnn.utils.set_random_seed(12345)  # the global RNG must not matter after loading
    resumed = load_model(path)
    fit(resumed, 4, initial_epoch=2)
    assert identical(state(resumed), state(straight))

    # The same in a fresh process, which shares no state with this one but the file.
    child = textwrap.dedent("""
        import sys
        from fastcnn.models import load_model
        from test_determinism import fit
        model = load_model(sys.argv[1])
        fit(model, 4, initial_epoch=2)
        model.save(sys.argv[2])
    """)
    result = subprocess.run([sys.executable, "-c", child, str(path), str(tmp_path / "full.keras")],
                            env=child_env(Path(__file__).parent), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert identical(state(load_model(tmp_path / "full.keras")), state(straight))

    # The comparison notices a lost shuffling seed or lost optimizer slots.
    for spoil in (lambda m: setattr(m, "seed", m.seed + 1),
                  lambda m: m.optimizer.set_slots(m.trainable_weights, [
                      [np.zeros_like(w) for w in m.trainable_weights] for _ in m.optimizer.slot_names])):
        spoilt = load_model(path)
        spoil(spoilt)
        fit(spoilt, 4, initial_epoch=2)
        assert not identical(spoilt.get_weights(), straight.get_weights())
