"""fastcnn.extras.plot writes real PNGs of the expected size, and needs matplotlib only when called."""
import subprocess
import sys

import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from fastcnn.extras import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def small_model():
    model = fastcnn.Sequential([
        fastcnn.Input(shape=(12, 12, 1)),
        layers.Conv2D(6, kernel_size=(3, 3), activation="relu", name="c1"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(5, kernel_size=(3, 2), activation="relu", name="c2"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax", name="out"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def check_png(path, figure):
    image_module = pytest.importorskip("matplotlib.image")
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5000
    width, height = (figure.get_size_inches() * figure.dpi).round().astype(int)
    assert image_module.imread(path).shape[:2] == (height, width)


def test_history_from_fit_and_from_dict(tmp_path, rng):
    pytest.importorskip("matplotlib")
    model = small_model()
    x = rng.random((40, 12, 12, 1)).astype(np.float32)
    y = fastcnn.utils.to_categorical(rng.integers(0, 3, 40), 3)
    hist = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.25, verbose=0)
    fig = plot.history(hist, tmp_path / "fit.png")
    check_png(tmp_path / "fit.png", fig)
    assert len(fig.axes) == 2  # loss and accuracy, each with its validation curve
    assert all(len(ax.lines) == 2 for ax in fig.axes)

    fig = plot.history({"loss": [1.0, 0.5, 0.4, 0.3], "accuracy": [0.5, 0.7, 0.8, 0.85]},
                       tmp_path / "dict.png", dpi=80)
    check_png(tmp_path / "dict.png", fig)
    with pytest.raises(ValueError, match="Expected a History"):
        plot.history({}, tmp_path / "empty.png")


def test_filters_single_and_multi_channel(tmp_path):
    pytest.importorskip("matplotlib")
    model = small_model()
    fig = plot.filters(model.get_layer("c1"), tmp_path / "c1.png")
    check_png(tmp_path / "c1.png", fig)
    fig = plot.filters(model.get_layer("c2"), tmp_path / "c2.png", dpi=120)
    check_png(tmp_path / "c2.png", fig)
    assert fig.axes[0].get_images()[0].get_array().shape == (6 * 4 - 1, 5 * 3 - 1)
    with pytest.raises(ValueError, match="Expected a built Conv2D layer"):
        plot.filters(model.get_layer("out"), tmp_path / "dense.png")


@pytest.mark.parametrize("which", ["c2", 2, "layer"])
def test_feature_maps_by_name_index_or_layer(which, tmp_path, rng):
    pytest.importorskip("matplotlib")
    model = small_model()
    layer = model.get_layer("c2") if which == "layer" else which
    x = rng.random((12, 12, 1)).astype(np.float32)
    fig = plot.feature_maps(model, x, layer, tmp_path / "maps.png")
    check_png(tmp_path / "maps.png", fig)
    # c2 gives 5 maps of 3x4 (12 -> 10 -> 5 -> 3x4): two rows of three tiles
    assert fig.axes[0].get_images()[0].get_array().shape == (2 * 4 - 1, 3 * 5 - 1)


def test_feature_maps_validation(tmp_path):
    pytest.importorskip("matplotlib")
    model = small_model()
    with pytest.raises(ValueError, match="one image of shape"):
        plot.feature_maps(model, np.zeros((1, 12, 12, 1)), "c1", tmp_path / "x.png")
    with pytest.raises(ValueError, match="outputs \\(height, width, channels\\)"):
        plot.feature_maps(model, np.zeros((12, 12, 1)), "out", tmp_path / "x.png")
    with pytest.raises(ValueError, match="received layer='nope'"):
        plot.feature_maps(model, np.zeros((12, 12, 1)), "nope", tmp_path / "x.png")
    with pytest.raises(ValueError, match="received layer=7"):
        plot.feature_maps(model, np.zeros((12, 12, 1)), 7, tmp_path / "x.png")


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "fastcnn\[plot\]"'):
        plot.history({"loss": [1.0]}, tmp_path / "x.png")


def test_import_fastcnn_does_not_import_matplotlib():
    code = "import sys, fastcnn, fastcnn.extras.plot; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
