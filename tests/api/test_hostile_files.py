"""Hostile model files: loading refuses, with InvalidSaveFileError, whatever would take more than
linear time or more memory than the file holds; and the temporary files of saves."""
import json
import os
import subprocess
import sys
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import fastcnn
from fastcnn import initializers, layers, saving
from fastcnn.models import load_model
from fastcnn.saving import InvalidSaveFileError
from conftest import child_env


def small_model():
    fastcnn.utils.set_random_seed(0)
    model = fastcnn.Sequential([fastcnn.Input(shape=(4,)), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.keras"
    small_model().save(path)
    return path


def members_of(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_members(path, members):
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns on the duplicate names written on purpose
        for name, data in members:
            zf.writestr(name, data)


def edit_config(path, change):
    members = members_of(path)
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    write_members(path, members.items())


# -- linear time ---------------------------------------------------------------------------
def test_too_many_members_are_refused(saved):
    extra = [(f"optimizer/x/{k:05d}.npy", b"") for k in range(saving.MEMBER_LIMIT)]
    write_members(saved, list(members_of(saved).items()) + extra)
    with pytest.raises(InvalidSaveFileError, match=f"at most {saving.MEMBER_LIMIT} members, "
                                                   f"received {saving.MEMBER_LIMIT + 4}"):
        load_model(saved)


def test_duplicates_and_unexpected_members_are_named_briefly(saved):
    members = list(members_of(saved).items())
    write_members(saved, members + [("weights/0000.npy", b"")] * 3 + [("weights/0001.npy", b"")])
    with pytest.raises(InvalidSaveFileError,
                       match=r"duplicates of \['weights/0000.npy', 'weights/0001.npy'\]$"):
        load_model(saved)
    write_members(saved, members + [(f"weights/{k:04d}.npy", b"") for k in range(2, 1002)])
    with pytest.raises(InvalidSaveFileError, match=r"'weights/0006.npy'\] and 995 more are "
                                                   r"unexpected$"):
        load_model(saved)


def test_a_stack_of_many_layers_is_built_once(tmp_path, monkeypatch):
    """Each layer added to a Sequential model rebuilt the whole stack, quadratic in the number
    of layers that a loaded (or constructed) model has."""
    rebuilds = []
    rebuild = fastcnn.Sequential._rebuild
    monkeypatch.setattr(fastcnn.Sequential, "_rebuild",
                        lambda self: rebuilds.append(self) or rebuild(self))
    stack = [layers.ReLU() for _ in range(300)] + [layers.Dense(2)]
    model = fastcnn.Sequential([fastcnn.Input(shape=(4,)), *stack])
    assert len(rebuilds) == 1 and model.layers == stack
    model.save(tmp_path / "deep.keras")
    rebuilds.clear()
    clone = load_model(tmp_path / "deep.keras")
    assert len(rebuilds) == 1 and len(clone.layers) == 301
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_refused_layer_adds_none_of_the_stack():
    model = fastcnn.Sequential([fastcnn.Input(shape=(4,)), layers.Dense(2, name="a")])
    with pytest.raises(ValueError, match="'a' is already in the model"):
        model._extend([layers.Dense(3, name="b"), layers.Dense(3, name="a")])
    with pytest.raises(ValueError):
        model._extend([layers.Dense(3), layers.Conv2D(2, 3)])
    assert [layer.name for layer in model.layers] == ["a"] and model.output_shape == (None, 2)


# -- memory bounded by the file ------------------------------------------------------------
@pytest.mark.parametrize("change", [
    # Both fit the kernels' 32-bit indices (add_weight refuses larger ones outright), so the
    # refusal comes from the file's budget.
    lambda c: c["config"].update(input_shape=[100], layers=[
        {"class_name": "Dense", "config": {"units": 3_000_000}}]),
    lambda c: c["config"].update(input_shape=[4, 4, 1], layers=[
        {"class_name": "ZeroPadding2D", "config": {"padding": [[100_000_000, 0], [0, 0]]}},
        {"class_name": "Flatten", "config": {}},
        {"class_name": "Dense", "config": {"units": 2}}]),
], ids=["dense-3e6-units", "zero-padding-1e8-rows"])
def test_declared_weights_beyond_the_file_are_refused_before_allocation(saved, no_large_weights,
                                                                        change):
    edit_config(saved, change)
    with pytest.raises(InvalidSaveFileError, match="as many as the file holds, received a weight "
                                                   "of shape"):
        load_model(saved)


@pytest.fixture
def no_large_weights(monkeypatch):
    """Fail a test that allocates a weight of more than a million values."""
    initialize = initializers.initialize

    def guarded(initializer, shape):
        assert np.prod(shape) <= 10**6, f"allocating a weight of shape {shape}"
        return initialize(initializer, shape)

    monkeypatch.setattr(initializers, "initialize", guarded)


def test_constant_scale_and_offset_are_made_after_the_weights_are_counted(saved):
    """BatchNormalization without scale and center holds constant ones and zeros of the
    channel count, made only once the moving statistics have been counted."""
    edit_config(saved, lambda c: c["config"].update(input_shape=[10**8], layers=[
        {"class_name": "BatchNormalization", "config": {"scale": False, "center": False}}]))
    tracemalloc.start()
    try:
        with pytest.raises(InvalidSaveFileError, match="as many as the file holds"):
            load_model(saved)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


@saving.register_keras_serializable("test_hostile_files")
class Wide(fastcnn.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(1000)

    def call(self, x, training=False):
        return self.dense(x)


def test_load_weights_builds_for_no_more_than_the_file_holds(tmp_path, no_large_weights):
    model = Wide()
    model.build((None, 4))
    path = tmp_path / "wide.weights"
    model.save_weights(path)
    members = members_of(path)
    metadata = json.loads(members["metadata.json"])
    metadata["build_config"]["input_shape"] = [None, 10**6]
    members["metadata.json"] = json.dumps(metadata).encode()
    write_members(path, members.items())
    fresh = Wide()
    with pytest.raises(InvalidSaveFileError, match="as many as the file holds"):
        fresh.load_weights(path)
    assert not fresh.built
    metadata["build_config"]["input_shape"] = [None, 4]
    members["metadata.json"] = json.dumps(metadata).encode()
    write_members(path, members.items())
    fresh.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), model.get_weights()))


def test_the_weight_budget_is_that_of_the_stored_arrays(saved):
    """Dense(units) on 4 features declares 5 * units values: more than the weight members hold
    (4 bytes each, headers included) is refused; as many passes the count and then fails the
    exact shape check."""
    held = sum(len(data) for name, data in members_of(saved).items()
               if name.startswith("weights/")) // 4
    for units, message in ((held // 5 + 1, "as many as the file holds"),
                           (held // 5, "Expected member 'weights/0000.npy'")):
        edit_config(saved, lambda c: c["config"]["layers"][0]["config"].update(units=units))
        with pytest.raises(InvalidSaveFileError, match=message):
            load_model(saved)


# -- malformed JSON ------------------------------------------------------------------------
@pytest.mark.parametrize("member", ["config.json", "metadata.json"])
@pytest.mark.parametrize("document, message", [
    ("[" * 100_000 + "]" * 100_000, "nested at most 100 deep.*received 100000 levels"),
    ('{"a": ' + "[" * 101 + "]" * 101 + "}", "nested at most 100 deep.*received 102 levels"),
    ('{"seed": ' + "9" * 5000 + "}", "integers of at most 30 digits, received one of 5000"),
    ('{"seed": -' + "9" * 30 + "}", "integers of at most 30 digits, received one of 31"),
], ids=["deep", "just-too-deep", "5000-digits", "31-chars"])
def test_deep_json_and_long_integers_are_invalid_files(saved, member, document, message):
    members = members_of(saved)
    members[member] = document.encode()
    write_members(saved, members.items())
    with pytest.raises(InvalidSaveFileError, match=message):
        load_model(saved)


def test_brackets_inside_json_strings_do_not_nest(saved):
    members = members_of(saved)
    metadata = json.loads(members["metadata.json"])
    metadata["note"] = '"[{\\' * 1000
    members["metadata.json"] = json.dumps(metadata).encode()
    write_members(saved, members.items())
    assert load_model(saved).count_params() == 10


def test_an_oversized_config_is_refused(saved):
    members = members_of(saved)
    members["config.json"] += b" " * saving.JSON_LIMIT
    write_members(saved, members.items())
    with pytest.raises(InvalidSaveFileError, match=f"at most {saving.JSON_LIMIT} bytes"):
        load_model(saved)


# -- counters ------------------------------------------------------------------------------
def test_a_step_counter_that_training_could_not_continue_is_refused(saved):
    edit_config(saved, lambda c: c["compile_config"]["optimizer"].update(iterations=2**63 - 1))
    with pytest.raises(InvalidSaveFileError, match=r"iterations to be an int in \[0, "
                                                   r"4611686018427387904\)"):
        load_model(saved)
    edit_config(saved, lambda c: c["compile_config"]["optimizer"].update(
        iterations=saving.ITERATIONS_LIMIT - 1))
    model = load_model(saved)
    model.fit(np.ones((4, 4), np.float32), np.ones((4, 2), np.float32), batch_size=2, verbose=0)
    assert model.optimizer.iterations == saving.ITERATIONS_LIMIT + 1


# -- temporary files -----------------------------------------------------------------------
def test_a_long_utf8_name_saves(tmp_path):
    """246 bytes of UTF-8 (123 characters): a legal name, whose temporary file must be cut by
    bytes to stay legal too."""
    path = tmp_path / ("é" * 123)
    small_model().save(path)
    assert load_model(path).count_params() == 10
    assert os.listdir(tmp_path) == [path.name]


def test_orphans_of_killed_saves_are_removed_by_the_next_save(tmp_path):
    path = tmp_path / "model.keras"
    killed = ("import os, sys; from fastcnn.saving import atomic_write\n"
              "with atomic_write(sys.argv[1]) as f:\n    f.write(b'part'); os._exit(0)")
    for _ in range(2):  # the second removes the orphan of the first
        subprocess.run([sys.executable, "-c", killed, str(path)], env=child_env(), check=True)
        orphans = os.listdir(tmp_path)
        assert len(orphans) == 1 and orphans[0].startswith(".model.keras.")
    others = [".model.keras.notrandom.tmp", ".other.keras.0123abcd.tmp", "model.keras.0123abcd.tmp"]
    for name in others:
        (tmp_path / name).write_bytes(b"")
    small_model().save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(others + ["model.keras"])


def test_the_temporary_file_of_a_running_save_is_kept(tmp_path):
    path = tmp_path / "model.keras"
    with saving.atomic_write(path) as first:
        first.write(b"first")
        small_model().save(path)  # another save to the same place, meanwhile
        assert len([n for n in os.listdir(tmp_path) if n.endswith(".tmp")]) == 1
    assert path.read_bytes() == b"first" and os.listdir(tmp_path) == ["model.keras"]
