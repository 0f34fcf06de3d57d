"""utils.load_img, img_to_array, array_to_img and save_img, with Keras's semantics: load_img
converts to the colour mode and resizes with Pillow (keep_aspect_ratio: the centred window of
the target's aspect ratio first); img_to_array gives float32 (H, W, C); array_to_img scales the
array's range to 0-255 unless scale=False; save_img writes by the file's extension."""
import io

import numpy as np
import pytest
from conftest import write_images

from fastcnn import utils

Image = pytest.importorskip("PIL.Image")


@pytest.fixture
def rgb(rng):
    return rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)


def test_save_then_load_png_round_trips(tmp_path, rgb):
    path = tmp_path / "a.png"
    utils.save_img(path, rgb, scale=False)
    x = utils.img_to_array(utils.load_img(path))
    assert x.dtype == np.float32 and x.shape == (6, 10, 3)
    np.testing.assert_array_equal(x, rgb)
    # From a file object too, as Keras accepts io.BytesIO.
    np.testing.assert_array_equal(utils.img_to_array(utils.load_img(io.BytesIO(path.read_bytes()))),
                                  rgb)


def test_color_modes(tmp_path, rgb):
    write_images(tmp_path, {"a.png": rgb})
    gray = utils.img_to_array(utils.load_img(tmp_path / "a.png", color_mode="grayscale"))
    want = np.asarray(Image.fromarray(rgb).convert("L"), np.float32)[:, :, None]
    np.testing.assert_array_equal(gray, want)
    rgba = utils.img_to_array(utils.load_img(tmp_path / "a.png", color_mode="rgba"))
    np.testing.assert_array_equal(rgba[:, :, :3], rgb)
    np.testing.assert_array_equal(rgba[:, :, 3], 255)
    with pytest.raises(ValueError, match="color_mode"):
        utils.load_img(tmp_path / "a.png", color_mode="cmyk")


def test_target_size_and_keep_aspect_ratio(tmp_path, rgb):
    write_images(tmp_path, {"a.png": rgb})
    img = utils.load_img(tmp_path / "a.png", target_size=(3, 4))
    assert img.size == (4, 3)  # Pillow's (width, height)
    want = Image.fromarray(rgb).resize((4, 3), Image.Resampling.NEAREST)  # Keras's default
    np.testing.assert_array_equal(np.asarray(img), np.asarray(want))
    # keep_aspect_ratio: a 6x10 image to 4x4 first takes the centred 6x6 window (columns 2-7).
    kept = utils.load_img(tmp_path / "a.png", target_size=(4, 4), keep_aspect_ratio=True)
    want = Image.fromarray(np.ascontiguousarray(rgb[:, 2:8])).resize((4, 4),
                                                                      Image.Resampling.NEAREST)
    np.testing.assert_array_equal(np.asarray(kept), np.asarray(want))
    with pytest.raises(ValueError, match="interpolation"):
        utils.load_img(tmp_path / "a.png", target_size=(4, 4), interpolation="area")
    with pytest.raises(ValueError, match="target_size"):
        utils.load_img(tmp_path / "a.png", target_size=(4,))


def test_img_to_array_layouts():
    img = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert utils.img_to_array(img).shape == (3, 4, 1)
    assert utils.img_to_array(img, data_format="channels_first").shape == (1, 3, 4)
    assert utils.img_to_array(img, dtype="float64").dtype == np.float64
    with pytest.raises(ValueError, match="data_format"):
        utils.img_to_array(img, data_format="nchw")


def test_array_to_img_scales_the_range_to_0_255():
    x = np.array([[[-1.0], [0.0]], [[1.0], [3.0]]])
    img = utils.array_to_img(x)
    assert img.mode == "L"
    np.testing.assert_array_equal(np.asarray(img), (np.array([[0, 1], [2, 4]]) * 255 / 4)
                                  .astype(np.uint8))
    unscaled = utils.array_to_img(np.full((2, 2, 3), 7.9), scale=False)
    assert unscaled.mode == "RGB" and np.all(np.asarray(unscaled) == 7)
    assert utils.array_to_img(np.full((2, 2, 1), 300.0), scale=False).mode == "I"
    assert utils.array_to_img(np.zeros((3, 2, 2)), data_format="channels_first").size == (2, 2)
    with pytest.raises(ValueError, match="rank 3"):
        utils.array_to_img(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        utils.array_to_img(np.zeros((2, 2, 2)))


def test_save_img_jpeg_drops_alpha_with_a_warning(tmp_path, rng):
    rgba = rng.integers(0, 256, (4, 4, 4)).astype(np.float32)
    with pytest.warns(UserWarning, match="alpha"):
        utils.save_img(tmp_path / "a.jpg", rgba)
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"
    buffer = io.BytesIO()
    utils.save_img(buffer, rgba, file_format="png")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode == "RGBA"


def test_unreadable_files_are_named(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(Exception, match="bad.png|cannot identify"):
        utils.load_img(tmp_path / "bad.png")
    with pytest.raises(TypeError, match="path"):
        utils.load_img(42)


def test_bad_values_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="file_format"):
        utils.save_img(tmp_path / "a.png", np.zeros((2, 2, 3)), file_format="bogus")
    with pytest.raises(ValueError, match="x"):
        utils.array_to_img([[[10**400]]])
