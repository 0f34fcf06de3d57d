"""model.save / load_model and save_weights / load_weights: round trips, the atomic writer, and
every file the loader must refuse (pickles, object arrays, unknown classes, damage, odd names)."""
import io
import json
import os
import pickle
import stat
import warnings
import zipfile

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, saving
from fastcnn.models import load_model
from fastcnn.saving import InvalidSaveFileError
from conftest import CodeOnUnpickle, toy_data


def make_model(optimizer="adam", seed=0):
    fastcnn.utils.set_random_seed(seed)
    model = fastcnn.Sequential([
        fastcnn.Input(shape=(8, 8, 1)),
        layers.Conv2D(4, (3, 2), activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def trained_once():
    model = make_model()
    x, y = toy_data(48)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return model


@pytest.fixture
def trained(trained_once, tmp_path):
    """A trained model (not to be changed) and a fresh file it was saved to."""
    path = tmp_path / "model.keras"
    trained_once.save(path)
    return trained_once, path


def assert_same_weights(a, b):
    assert len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def rewrite(path, drop=(), replace=None, add=None, compression=zipfile.ZIP_STORED):
    """Rewrite the zip at ``path`` without ``drop``, with members replaced and added."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist() if name not in drop}
    members.update(replace or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on the duplicate names written on purpose
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in list(members.items()) + list((add or {}).items()):
                zf.writestr(name, data)


def npy_bytes(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def edit_config(path, change):
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
    change(config)
    rewrite(path, replace={"config.json": json.dumps(config)})


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", fastcnn.optimizers.SGD(0.05, momentum=0.9, nesterov=True)],
                         ids=["adam", "sgd-momentum"])
def test_round_trip_predicts_bitwise_and_resumes_training(tmp_path, optimizer):
    model = make_model(optimizer)
    x, y = toy_data(48)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    fastcnn.utils.set_random_seed(99)  # loading must not depend on the global RNG
    clone = load_model(path)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    assert json.dumps(clone.get_config()) == json.dumps(model.get_config())
    assert clone.seed == model.seed
    assert clone.metrics == ["accuracy"] and type(clone.loss) is type(model.loss)
    assert clone.optimizer.get_config() == model.optimizer.get_config()
    assert clone.optimizer.iterations == model.optimizer.iterations == 6
    for mine, theirs in zip(model.optimizer.slots_for(model.trainable_weights),
                            clone.optimizer.slots_for(clone.trainable_weights)):
        assert_same_weights(mine, theirs)
    for m in (model, clone):
        m.fit(x, y, batch_size=16, epochs=3, initial_epoch=2, verbose=0)
    assert_same_weights(clone.get_weights(), model.get_weights())


def test_saving_the_same_state_twice_gives_the_same_bytes(trained, tmp_path):
    model, path = trained
    again = tmp_path / "again.keras"
    model.save(again)
    assert path.read_bytes() == again.read_bytes()


def test_uncompiled_unbuilt_and_untrained_models_round_trip(tmp_path):
    fresh = make_model()  # compiled, never trained: no optimizer slots yet
    fresh.save(tmp_path / "fresh.keras")
    clone = load_model(tmp_path / "fresh.keras")
    assert not clone.optimizer.has_slots(clone.trainable_weights)
    assert clone.optimizer.iterations == 0
    assert_same_weights(clone.get_weights(), fresh.get_weights())

    plain = fastcnn.Sequential([fastcnn.Input(shape=(4,)), layers.Dense(2)])
    plain.save(tmp_path / "plain")  # any name, no extension needed
    clone = load_model(tmp_path / "plain")
    assert clone.loss is None and clone.optimizer is None
    assert_same_weights(clone.get_weights(), plain.get_weights())

    unbuilt = fastcnn.Sequential([layers.Flatten(), layers.Dense(2)])
    unbuilt.save(tmp_path / "unbuilt.bin")
    clone = load_model(tmp_path / "unbuilt.bin")
    assert not clone.built and [type(l).__name__ for l in clone.layers] == ["Flatten", "Dense"]


def test_load_model_without_compile(trained):
    model, path = trained
    clone = load_model(path, compile=False)
    assert clone.loss is None and clone.seed == model.seed
    assert_same_weights(clone.get_weights(), model.get_weights())


def test_save_weights_and_load_weights(trained, tmp_path):
    model, model_path = trained
    path = tmp_path / "model.weights.npz"
    model.save_weights(path)
    with np.load(path, allow_pickle=False) as npz:  # a weights file is a plain .npz too
        np.testing.assert_array_equal(npz["weights/0000"], model.weights[0])
    for source in (path, model_path):  # as in Keras, a model file also provides weights
        other = make_model(seed=7)
        other.load_weights(source)
        assert_same_weights(other.get_weights(), model.get_weights())
    with pytest.raises(InvalidSaveFileError, match="received a weights file"):
        load_model(path)


def test_load_weights_refuses_another_architecture_and_changes_nothing(trained, tmp_path):
    model, path = trained
    other = fastcnn.Sequential([fastcnn.Input(shape=(8, 8, 1)), layers.Conv2D(4, (3, 2)),
                                layers.Flatten(), layers.Dense(3)])
    before = other.get_weights()
    with pytest.raises(InvalidSaveFileError, match=r"weights/0002.npy.*weight 'kernel' of layer "
                                                    r"'dense.*'\) of shape \(168, 3\).*\(36, 3\)"):
        other.load_weights(path)
    assert_same_weights(other.get_weights(), before)
    smaller = fastcnn.Sequential([fastcnn.Input(shape=(4,)), layers.Dense(2)])
    with pytest.raises(InvalidSaveFileError, match="Expected 2 weight arrays.*received 4"):
        smaller.load_weights(path)
    with pytest.raises(ValueError, match="Expected a built model"):
        fastcnn.Sequential([layers.Dense(2)]).load_weights(path)


def test_overwrite_false_refuses_an_existing_file(trained):
    model, path = trained
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save(path, overwrite=False)


def test_saving_a_callable_learning_rate_is_refused(tmp_path):
    model = make_model(fastcnn.optimizers.Adam(lambda step: 0.01))
    with pytest.raises(ValueError, match="learning_rate"):
        model.save(tmp_path / "m.keras")
    assert os.listdir(tmp_path) == []
    model.save_weights(tmp_path / "w.npz")


# -- the atomic writer ---------------------------------------------------------------------
def test_atomic_write_fsyncs_file_and_directory_then_renames(tmp_path, monkeypatch):
    synced, replaced = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)),
                                                 real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((a, b)), real_replace(a, b)))
    target = tmp_path / "out.keras"
    with saving.atomic_write(target) as f:
        f.write(b"payload")
        assert not target.exists()
    assert target.read_bytes() == b"payload"
    assert synced == [False, True]  # the file, then the directory that holds the rename
    (temp, final), = replaced
    assert final == str(target) and os.path.dirname(temp) == str(tmp_path)
    assert os.path.basename(temp).startswith(".out.keras.") and temp.endswith(".tmp")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temp(trained, monkeypatch):
    model, path = trained
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


# -- files the loader refuses --------------------------------------------------------------
def test_refuses_a_pickle_without_running_it(tmp_path):
    marker = str(tmp_path / "pwned")
    path = tmp_path / "model.keras"
    path.write_bytes(pickle.dumps({"weights": CodeOnUnpickle(os.mkdir, marker)}))
    with pytest.raises(InvalidSaveFileError, match="expected a fastcnn zip file"):
        load_model(path)
    with pytest.raises(InvalidSaveFileError):
        make_model().load_weights(path)
    assert not os.path.exists(marker)


def test_refuses_object_arrays_and_pickled_members_without_running_them(trained, tmp_path):
    _, path = trained
    marker = str(tmp_path / "pwned")
    payload = npy_bytes(np.array([CodeOnUnpickle(os.mkdir, marker), 1], dtype=object), allow_pickle=True)
    original = path.read_bytes()
    for replace, message in [({"weights/0000.npy": payload}, "dtype object"),
                             ({"optimizer/m/0001.npy": payload}, "dtype object"),
                             ({"weights/0001.npy": pickle.dumps(CodeOnUnpickle(os.mkdir, marker))}, "to be a .npy array")]:
        path.write_bytes(original)
        rewrite(path, replace=replace)
        with pytest.raises(InvalidSaveFileError, match=message):
            load_model(path)
        if "weights/0000.npy" in replace:
            with pytest.raises(InvalidSaveFileError, match=message):
                make_model().load_weights(path)
    path.write_bytes(original)
    rewrite(path, add={"model.pkl": pickle.dumps(CodeOnUnpickle(os.mkdir, marker))})
    with pytest.raises(InvalidSaveFileError, match="model.pkl"):
        load_model(path)
    assert not os.path.exists(marker)


@pytest.mark.parametrize("change,message", [
    (lambda c: c["config"]["layers"][0].update(class_name="Lambda"), "Unknown class 'Lambda'"),
    (lambda c: c.update(class_name="Functional"), "Unknown class 'Functional'"),
    (lambda c: c["compile_config"]["optimizer"].update(class_name="Evil"), "received class_name='Evil'"),
    (lambda c: c["compile_config"]["loss"].update(class_name="os.system"), "received class_name='os.system'"),
    (lambda c: c["config"]["layers"][0]["config"].update(filters=-3), "filters=-3"),
    (lambda c: c["config"]["layers"][0]["config"].update(code="print(1)"), "unexpected keyword"),
    (lambda c: c["config"].update(layers="conv"), "valid model config"),
    (lambda c: c["compile_config"].update(metrics=["__import__"]), "Unknown metric"),
    (lambda c: c["compile_config"]["optimizer"].update(iterations=-1), "iterations=-1"),
    (lambda c: c["compile_config"]["optimizer"].update(has_slots="yes"), "has_slots"),
    (lambda c: c.update(seed="0"), "seed='0'"),
    (lambda c: c.update(config=[]), "config to be a JSON object"),
])
def test_refuses_invalid_configs(trained, change, message):
    _, path = trained
    edit_config(path, change)
    with pytest.raises(InvalidSaveFileError, match=message):
        load_model(path)


@pytest.mark.parametrize("edit,message", [
    (dict(drop=["weights/0001.npy"]), r"\['weights/0001.npy'\] are missing"),
    (dict(drop=["optimizer/v/0003.npy"]), r"\['optimizer/v/0003.npy'\] are missing"),
    (dict(drop=["config.json"]), "Expected a member 'config.json'"),
    (dict(drop=["metadata.json"]), "Expected a member 'metadata.json'"),
    (dict(add={"weights/0009.npy": npy_bytes(np.zeros(3, np.float32))}), "are unexpected"),
    (dict(replace={"weights/0001.npy": npy_bytes(np.zeros(5, np.float32))}),
     r"shape \(4,\) and dtype float32, received shape \(5,\)"),
    (dict(replace={"weights/0001.npy": npy_bytes(np.zeros(4, np.float64))}),
     "received shape .* and dtype float64"),
    (dict(replace={"optimizer/m/0000.npy": npy_bytes(np.zeros((2, 3, 4), np.float32))}),
     r"optimizer slot 'm'.*received shape \(2, 3, 4\)"),
    (dict(replace={"weights/0001.npy": npy_bytes(np.zeros(4, np.float32))[:-3]}), "to be a .npy array"),
    (dict(replace={"config.json": b"{not json"}), "Expected JSON"),
    (dict(replace={"metadata.json": b'{"format": "fastcnn", "kind": "model", "format_version": 99}'}),
     "format version 1"),
    (dict(add={"../evil.npy": b"x"}), r"received \['../evil.npy'\]"),
    (dict(add={"/etc/evil.npy": b"x"}), "/etc/evil.npy"),
    (dict(add={"weights/../../evil.npy": b"x"}), "evil.npy"),
    (dict(add={"weights\\0000.npy": b"x"}), "weights"),
    (dict(add={"weights/0000.npy": npy_bytes(np.zeros(1, np.float32))}), "duplicates of"),
])
def test_refuses_missing_odd_and_mismatched_members(trained, edit, message):
    _, path = trained
    rewrite(path, **edit)
    with pytest.raises(InvalidSaveFileError, match=message):
        load_model(path)


def test_refuses_a_forged_huge_shape_without_allocating_it(trained):
    _, path = trained
    forged = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        forged, {"descr": "<f4", "fortran_order": False, "shape": (2**40,)})
    rewrite(path, replace={"weights/0001.npy": forged.getvalue() + bytes(16)})
    with pytest.raises(InvalidSaveFileError, match=r"received shape \(1099511627776,\)"):
        load_model(path)


def test_every_truncation_is_refused(trained):
    _, path = trained
    data = path.read_bytes()
    for size in sorted({0, 1, 21, 22, 100, len(data) - 1, len(data) - 22, len(data) - 23}
                       | set(range(0, len(data), max(len(data) // 60, 1)))):
        path.write_bytes(data[:size])
        with pytest.raises(InvalidSaveFileError):
            load_model(path)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED],
                         ids=["stored", "deflated"])
def test_corrupt_bytes_are_refused_or_harmless(trained, compression):
    """A flipped bit is refused, or lies where it changes nothing (a timestamp, say). Files we
    write are stored; deflated ones (as np.savez_compressed writes) load too."""
    model, path = trained
    rewrite(path, compression=compression)
    data = path.read_bytes()
    x, _ = toy_data(8)
    expected = model.predict(x, verbose=0)
    rng = np.random.default_rng(0)
    refused = 0
    for position in rng.choice(len(data), 120, replace=False):
        damaged = bytearray(data)
        damaged[position] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(damaged))
        try:
            clone = load_model(path)
        except InvalidSaveFileError:
            refused += 1
            continue
        np.testing.assert_array_equal(clone.predict(x, verbose=0), expected)
    assert refused > 80
    path.write_bytes(data)
    np.testing.assert_array_equal(load_model(path).predict(x, verbose=0), expected)
