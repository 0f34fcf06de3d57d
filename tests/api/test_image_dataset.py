"""utils.image_dataset_from_directory against Keras 3's documented semantics, on folders written
at test time (PNG and JPEG of several sizes, a corrupt file, an empty class, nested and linked
folders):

- classes are the sorted subfolder names (hidden ones left out, empty ones kept), or
  class_names in its order; labels "inferred", None, or a list in the sorted walk's order;
- with shuffle, the file list is permuted once by NumPy's RandomState(seed) (Keras's
  index_directory), and the validation subset is its last int(validation_split * n) files;
- images are float32 in 0-255, resized by half-pixel bilinear interpolation without
  antialiasing (checked against a NumPy reference written from the formula, and torch);
  crop_to_aspect_ratio takes the centred window, pad_to_aspect_ratio is
  tf.image.resize_with_pad's fit-then-centre;
- JPEG pixels are Pillow's decode of the file in each colour mode (a JPEG in grayscale its luma
  plane), whether simplejpeg decodes them or leaves them to Pillow (CMYK, libjpeg warnings, or
  simplejpeg not installed); a file that neither decodes is named.
"""
import importlib.util
import os

import numpy as np
import pytest
from conftest import bilinear_reference, write_images

from fastcnn import utils
from fastcnn.utils import image_utils

pytest.importorskip("PIL")


def _pixels(seed, h, w, c=3):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    """a_cat: 4 PNGs (one in a subfolder), b_dog: 3 JPEGs (and a text file), c_empty: none."""
    files = {"a_cat/0.png": _pixels(0, 7, 9), "a_cat/1.png": _pixels(1, 5, 5),
             "a_cat/2.PNG": _pixels(2, 12, 6), "a_cat/sub/3.png": _pixels(3, 4, 8),
             "b_dog/0.jpg": _pixels(4, 8, 8), "b_dog/1.jpeg": _pixels(5, 10, 6),
             "b_dog/2.jpg": _pixels(6, 6, 11)}
    root = write_images(tmp_path / "data", files)
    (root / "c_empty").mkdir()
    (root / "b_dog" / "notes.txt").write_text("not an image")
    return root


def _load(folder, **kwargs):
    kwargs = {"image_size": (4, 4), "verbose": False, **kwargs}
    return utils.image_dataset_from_directory(folder, **kwargs)


def _sorted_files(folder):
    return [str(folder / p) for p in ("a_cat/0.png", "a_cat/1.png", "a_cat/2.PNG",
                                      "a_cat/sub/3.png", "b_dog/0.jpg", "b_dog/1.jpeg",
                                      "b_dog/2.jpg")]


def test_classes_are_sorted_folders_and_an_empty_one_is_kept(folder):
    ds = _load(folder, shuffle=False)
    assert ds.class_names == ["a_cat", "b_dog", "c_empty"]
    assert ds.file_paths == _sorted_files(folder)
    x, y = next(iter(ds))
    assert x.dtype == np.float32 and x.shape == (7, 4, 4, 3)
    assert y.dtype == np.int32 and y.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert len(ds) == 1 and len(_load(folder, batch_size=3)) == 3


def test_class_names_choose_and_order_the_classes(folder):
    ds = _load(folder, shuffle=False, class_names=["b_dog", "a_cat"])
    assert ds.class_names == ["b_dog", "a_cat"]
    assert next(iter(ds))[1].tolist() == [0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="class_names"):
        _load(folder, class_names=["a_cat", "horse"])


def test_file_order_is_keras_seeded_permutation(folder):
    order = np.arange(7)
    np.random.RandomState(11).shuffle(order)
    want = [_sorted_files(folder)[i] for i in order]
    assert _load(folder, seed=11).file_paths == want
    assert _load(folder, seed=11).file_paths == want
    assert _load(folder, seed=12).file_paths != want


def _file_of(folder):
    """{image digest: file} of the folder's images at image_size (4, 4), and the digest."""
    def digest(x):
        return round(float(np.mean(x * np.arange(1, 49).reshape(4, 4, 3))), 3)
    plain = _load(folder, shuffle=False, batch_size=None, label_mode=None)
    return {digest(x): path for x, path in zip(plain, plain.file_paths)}, digest


def test_each_epoch_serves_every_file_in_its_own_seeded_order(folder):
    ds = _load(folder, seed=3, batch_size=None, label_mode=None, image_size=(2, 2))
    means = [np.array([x.mean() for x in ds]) for _ in range(2)]  # each pass ends an epoch
    assert ds.epoch == 2
    assert sorted(means[0]) == pytest.approx(sorted(means[1]))
    assert not np.array_equal(means[0], means[1])
    again = _load(folder, seed=3, batch_size=None, label_mode=None, image_size=(2, 2))
    again.set_epoch(1)
    np.testing.assert_array_equal([x.mean() for x in again], means[1])


def test_training_and_validation_partition_the_files(folder):
    train, val = _load(folder, seed=5, validation_split=0.3, subset="both")
    assert len(val.file_paths) == int(0.3 * 7)
    assert sorted(train.file_paths + val.file_paths) == sorted(_sorted_files(folder))
    shuffled = _load(folder, seed=5).file_paths
    assert train.file_paths == shuffled[:-2] and val.file_paths == shuffled[-2:]
    assert _load(folder, seed=5, validation_split=0.3, subset="training").file_paths == \
        train.file_paths
    assert _load(folder, seed=5, validation_split=0.3, subset="validation").file_paths == \
        val.file_paths
    other = _load(folder, seed=6, validation_split=0.3, subset="validation").file_paths
    assert other != val.file_paths
    _, labels = next(iter(val))
    assert labels.tolist() == [0 if "a_cat" in p else 1 for p in val.file_paths]


@pytest.mark.parametrize("kwargs, message", [
    ({"validation_split": 0.3, "subset": "training"}, "seed"),
    ({"validation_split": 0.3, "seed": 1}, "subset"),
    ({"subset": "training", "seed": 1}, "subset"),
    ({"validation_split": 1.5, "subset": "training", "seed": 1}, "validation_split"),
    ({"validation_split": 0.3, "subset": "test", "seed": 1}, "subset"),
    ({"validation_split": 0.01, "subset": "training", "seed": 1}, "both subsets"),
    ({"label_mode": "sparse"}, "label_mode"),
    ({"label_mode": "binary"}, "2 classes"),
    ({"color_mode": "cmyk"}, "color_mode"),
    ({"interpolation": "bicubic"}, "interpolation"),
    ({"image_size": (4,)}, "image_size"),
    ({"image_size": (0, 4)}, "image_size"),
    ({"batch_size": 0}, "batch_size"),
    ({"crop_to_aspect_ratio": True, "pad_to_aspect_ratio": True}, "at most one"),
    ({"labels": "folders"}, "labels"),
    ({"labels": [0, 1]}, "one label per image"),
    ({"labels": [0] * 7, "class_names": ["a"]}, "class_names"),
])
def test_bad_arguments_are_refused(folder, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _load(folder, **kwargs)


def test_label_modes(folder):
    _, y = next(iter(_load(folder, shuffle=False, label_mode="categorical")))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.eye(3)[[0, 0, 0, 0, 1, 1, 1]])
    _, y = next(iter(_load(folder, shuffle=False, label_mode="binary",
                           class_names=["a_cat", "b_dog"])))
    assert y.dtype == np.float32 and y.shape == (7, 1)
    np.testing.assert_array_equal(y[:, 0], [0, 0, 0, 0, 1, 1, 1])
    for no_labels in ({"label_mode": None}, {"labels": None}):
        x = next(iter(_load(folder, shuffle=False, **no_labels)))
        assert isinstance(x, np.ndarray) and x.shape == (7, 4, 4, 3)


def test_hidden_folders_are_no_class_but_are_walked_without_labels(folder):
    write_images(folder, {".hidden/0.png": _pixels(7, 4, 4)})
    assert _load(folder).class_names == ["a_cat", "b_dog", "c_empty"]
    assert len(_load(folder).file_paths) == 7
    # Without labels the whole tree is walked (Keras's os.walk from the top).
    assert len(_load(folder, label_mode=None).file_paths) == 8


def test_labels_given_as_a_list_follow_the_sorted_walk(folder):
    given = [3, 1, 3, 0, 1, 1, 3]
    ds = _load(folder, labels=given, shuffle=False, label_mode="int")
    assert ds.class_names == ["0", "1", "3"]
    assert next(iter(ds))[1].tolist() == given
    # The labels travel with their files through the seeded shuffles.
    by_file = dict(zip(_sorted_files(folder), given))
    file_of, digest = _file_of(folder)
    for x, y in _load(folder, labels=given, seed=2, batch_size=None):
        assert y == by_file[file_of[digest(x)]]


def test_color_modes_and_channels_first(folder):
    from PIL import Image
    kw = {"shuffle": False, "image_size": (5, 5), "batch_size": None, "label_mode": None}
    exact = _pixels(1, 5, 5)  # a_cat/1.png, already 5x5: no resize
    gray = _load(folder, color_mode="grayscale", **kw)[1]
    np.testing.assert_array_equal(gray[:, :, 0], np.asarray(Image.fromarray(exact).convert("L")))
    rgba = _load(folder, color_mode="rgba", **kw)[1]
    np.testing.assert_array_equal(rgba[:, :, :3], exact)
    np.testing.assert_array_equal(rgba[:, :, 3], 255)
    first = _load(folder, data_format="channels_first", **kw)[1]
    np.testing.assert_array_equal(first, exact.transpose(2, 0, 1))
    # A JPEG in grayscale is its luma plane (as TensorFlow's decoder gives it), not a
    # conversion of its RGB decode: the Y of its undecoded-colour YCbCr planes.
    jpeg = _load(folder, color_mode="grayscale", **{**kw, "image_size": (8, 8)})[4]
    planes = Image.open(folder / "b_dog" / "0.jpg")
    planes.draft("YCbCr", planes.size)
    assert planes.mode == "YCbCr"
    np.testing.assert_array_equal(jpeg[:, :, 0], np.asarray(planes)[:, :, 0])


@pytest.mark.parametrize("size", [(4, 5), (9, 14), (3, 3)])
def test_resize_is_half_pixel_bilinear(folder, size):
    ds = _load(folder, shuffle=False, image_size=size, batch_size=None, label_mode=None)
    source = _pixels(0, 7, 9)  # a_cat/0.png
    np.testing.assert_allclose(ds[0], bilinear_reference(source, size), atol=2e-3)
    nearest = _load(folder, shuffle=False, image_size=(14, 18), batch_size=None,
                    label_mode=None, interpolation="nearest")[0]
    np.testing.assert_array_equal(nearest, source.repeat(2, 0).repeat(2, 1))


def test_resize_matches_torch(folder):
    torch = pytest.importorskip("torch")
    ds = _load(folder, shuffle=False, image_size=(5, 13), batch_size=None, label_mode=None)
    for index, seed, shape in ((0, 0, (7, 9)), (2, 2, (12, 6))):
        source = torch.tensor(_pixels(seed, *shape).transpose(2, 0, 1)[None], dtype=torch.float64)
        want = torch.nn.functional.interpolate(source, size=(5, 13), mode="bilinear",
                                               align_corners=False, antialias=False)
        np.testing.assert_allclose(ds[index], want[0].numpy().transpose(1, 2, 0), atol=2e-3)


def test_crop_and_pad_to_aspect_ratio(folder):
    kw = {"shuffle": False, "image_size": (4, 6), "batch_size": None, "label_mode": None}
    source = _pixels(2, 12, 6)  # a_cat/2.PNG: 12x6 to a 2:3 target
    # crop: the centred 4x6 window of the same 2:3 ratio, rows 4-7, then resized.
    cropped = _load(folder, crop_to_aspect_ratio=True, **kw)[2]
    np.testing.assert_allclose(cropped, bilinear_reference(source[4:8], (4, 6)), atol=2e-3)
    # pad: resized to fit (ratio max(6/6, 12/4) = 3: 4x2), centred in zeros at column 2.
    padded = _load(folder, pad_to_aspect_ratio=True, **kw)[2]
    want = np.zeros((4, 6, 3))
    want[:, 2:4] = bilinear_reference(source, (4, 2))
    np.testing.assert_allclose(padded, want, atol=2e-3)


def test_a_corrupt_file_is_named_when_decoded(folder):
    (folder / "a_cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    ds = _load(folder, shuffle=False, batch_size=2)
    assert ds.file_paths[3].endswith("broken.png")
    ds[0]  # the batch without it decodes
    with pytest.raises(ValueError, match="broken.png"):
        ds[1]


def test_a_folder_without_images_is_named(tmp_path, folder):
    (tmp_path / "empty" / "only_text").mkdir(parents=True)
    (tmp_path / "empty" / "only_text" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="No images found in directory .*empty"):
        _load(tmp_path / "empty")
    with pytest.raises(ValueError, match="folder"):
        _load(tmp_path / "missing")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_linked_folders_are_followed_only_with_follow_links(folder, tmp_path):
    outside = write_images(tmp_path / "outside", {"deep/x.png": _pixels(9, 4, 4),
                                                  "deep/y.png": _pixels(10, 4, 4)})
    os.symlink(outside / "deep", folder / "a_cat" / "linked")
    os.symlink(outside, folder / "d_link")  # a linked class folder is a class
    plain = _load(folder, shuffle=False)
    assert plain.class_names == ["a_cat", "b_dog", "c_empty", "d_link"]
    assert len(plain.file_paths) == 9  # the linked class's own subfolders are walked
    followed = _load(folder, shuffle=False, follow_links=True)
    assert len(followed.file_paths) == 11
    assert str(folder / "a_cat" / "linked" / "x.png") in followed.file_paths
    assert next(iter(followed))[1].tolist() == [0] * 6 + [1] * 3 + [3] * 2


def test_unbatched_and_batched_serve_the_same_images(folder):
    batched = _load(folder, seed=4, batch_size=3, image_size=(6, 6))
    single = _load(folder, seed=4, batch_size=None, image_size=(6, 6))
    assert len(single) == 7 and single[0][0].shape == (6, 6, 3)
    x, y = batched[1]  # decoded together on the worker threads
    for k in range(3):
        xs, ys = single[3 + k]
        np.testing.assert_array_equal(x[k], xs)
        assert y[k] == ys


def test_fit_evaluate_and_predict_take_it_in_its_own_epoch_order(folder):
    import fastcnn
    from fastcnn import layers

    def model():
        fastcnn.utils.set_random_seed(0)
        net = fastcnn.Sequential([fastcnn.Input((4, 4, 3)), layers.Rescaling(1 / 255),
                                  layers.Flatten(), layers.Dense(3, activation="softmax")])
        net.compile("sgd", "sparse_categorical_crossentropy", metrics=["acc"])
        return net

    ds = _load(folder, seed=9, batch_size=3)
    fitted = model()
    history = fitted.fit(ds.prefetch(2), epochs=2, verbose=0, validation_data=ds.take(1))
    assert set(history.history) == {"acc", "loss", "val_acc", "val_loss"}
    # The same batches, epoch by epoch, in the dataset's order (fit's shuffle leaves a
    # Dataset's order to it, as Keras does with tf.data), give the same weights.
    stepped = model()
    replay = _load(folder, seed=9, batch_size=3)
    for epoch in range(2):
        replay.set_epoch(epoch)
        for x, y in [replay[i] for i in range(len(replay))]:
            stepped.train_on_batch(x, y)
    for got, want in zip(fitted.get_weights(), stepped.get_weights()):
        np.testing.assert_array_equal(got, want)
    loss, acc = fitted.evaluate(ds, verbose=0)
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert fitted.predict(ds.map(lambda x, y: x), verbose=0).shape == (7, 3)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_decodes_with_threads_of_its_own(folder):
    import multiprocessing
    ds = _load(folder, seed=1, batch_size=4)
    want = ds[0][0]  # the parent's decoding threads exist now
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        got = pool.apply_async(ds.__getitem__, (0,)).get(timeout=60)[0]
    np.testing.assert_array_equal(got, want)


def test_other_formats_and_16_bit_images(tmp_path):
    from PIL import Image
    root = tmp_path / "formats"
    frames = [Image.fromarray(np.full((3, 4, 3), v, np.uint8)) for v in (40, 200)]
    (root / "c").mkdir(parents=True)
    frames[0].save(root / "c" / "a.gif", save_all=True, append_images=frames[1:])
    write_images(root, {"c/b.bmp": np.full((3, 4, 3), 90)})
    # 16-bit grey keeps the high byte of each value, as TensorFlow's decoder gives it.
    Image.fromarray(np.array([[0, 1000, 65535, 300]] * 3, np.uint16)).save(root / "c" / "d.png")
    kw = {"shuffle": False, "image_size": (3, 4), "batch_size": None, "label_mode": None}
    rgb = _load(root, **kw)
    np.testing.assert_array_equal(rgb[0], 40)  # an animation's first frame
    np.testing.assert_array_equal(rgb[1], 90)
    np.testing.assert_array_equal(rgb[2][0, :, 0], [0, 3, 255, 1])
    gray = _load(root, color_mode="grayscale", **kw)
    np.testing.assert_array_equal(gray[2][0, :, 0], [0, 3, 255, 1])


def _pillow_decode(path, color_mode):
    """The oracle: Pillow's decode of ``path`` in ``color_mode``, a JPEG in grayscale as its
    luma plane (libjpeg asked for one channel)."""
    from PIL import Image
    img = Image.open(path)
    if color_mode == "grayscale":
        img.draft("L", img.size)
    x = np.asarray(img.convert({"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}[color_mode]))
    return x[:, :, None] if x.ndim == 2 else x


def _jpeg_kinds(root):
    """JPEGs of every chroma subsampling, grayscale, progressive, low quality and odd sizes."""
    from PIL import Image
    kinds = {"420.jpg": ((13, 17, 3), {}), "422.jpg": ((9, 20, 3), {"subsampling": 1}),
             "444.jpg": ((16, 16, 3), {"subsampling": 0}), "gray.jpg": ((11, 7), {}),
             "progressive.jpeg": ((21, 10, 3), {"progressive": True}),
             "q40.jpg": ((33, 31, 3), {"quality": 40})}
    (root / "c").mkdir(parents=True)
    for k, (name, (shape, options)) in enumerate(kinds.items()):
        smooth = np.random.default_rng(k).integers(0, 256, (4, 4) + shape[2:], dtype=np.uint8)
        Image.fromarray(smooth.squeeze()).resize(shape[1::-1], Image.Resampling.BICUBIC).save(
            root / "c" / name, quality=options.pop("quality", 90), **options)
    return sorted((root / "c").iterdir())


@pytest.mark.parametrize("color_mode", ["grayscale", "rgb", "rgba"])
def test_jpegs_decode_to_pillows_pixels(tmp_path, color_mode):
    pytest.importorskip("simplejpeg")
    for path in _jpeg_kinds(tmp_path):
        want = _pillow_decode(path, color_mode)
        got = image_utils.decode_file(path, color_mode)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want, err_msg=path.name)
        # ... through simplejpeg, not a fallback to Pillow.
        assert image_utils._decode_jpeg(path.read_bytes(), color_mode) is not None
    ds = _load(tmp_path, image_size=(13, 17), color_mode=color_mode, shuffle=False,
               batch_size=None, label_mode=None)
    np.testing.assert_array_equal(ds[0], _pillow_decode(tmp_path / "c" / "420.jpg", color_mode))


def test_jpegs_simplejpeg_leaves_to_pillow_decode_as_pillow_does(tmp_path):
    from PIL import Image
    (tmp_path / "c").mkdir()
    smooth = Image.fromarray(_pixels(0, 3, 3)).resize((12, 10), Image.Resampling.BICUBIC)
    # CMYK: Pillow's conversion to RGB, not libjpeg-turbo's (they differ by a level).
    smooth.convert("CMYK").save(tmp_path / "c" / "cmyk.jpg", quality=90)
    # Bytes between two markers: libjpeg-turbo warns, Pillow decodes all the same.
    smooth.save(tmp_path / "c" / "warned.jpg", quality=90)
    data = (tmp_path / "c" / "warned.jpg").read_bytes()
    scan = data.index(b"\xff\xda")
    (tmp_path / "c" / "warned.jpg").write_bytes(data[:scan] + b"\0\0" + data[scan:])
    # A PNG named .jpg is read by what it holds.
    smooth.save(tmp_path / "c" / "png_inside.jpg", format="PNG")
    for color_mode in ("grayscale", "rgb", "rgba"):
        for name in ("cmyk.jpg", "warned.jpg", "png_inside.jpg"):
            path = tmp_path / "c" / name
            np.testing.assert_array_equal(image_utils.decode_file(path, color_mode),
                                          _pillow_decode(path, color_mode), err_msg=name)
    if importlib.util.find_spec("simplejpeg"):
        for name in ("cmyk.jpg", "warned.jpg"):
            assert image_utils._decode_jpeg((tmp_path / "c" / name).read_bytes(), "rgb") is None


def test_without_simplejpeg_pillow_gives_the_same_batches(tmp_path, monkeypatch):
    _jpeg_kinds(tmp_path)
    kw = {"image_size": (9, 12), "seed": 3, "batch_size": 4}
    for color_mode in ("grayscale", "rgb", "rgba"):
        fast = [x for x, _ in _load(tmp_path, color_mode=color_mode, **kw)]
        with monkeypatch.context() as patched:
            patched.setattr(image_utils, "_simplejpeg", lambda: None)
            slow = [x for x, _ in _load(tmp_path, color_mode=color_mode, **kw)]
        assert len(fast) == len(slow) == 2
        for a, b in zip(fast, slow):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("content", [b"\xff\xd8\xff\xe0" + b"\0" * 40, "truncated"],
                         ids=["garbage", "truncated"])
def test_a_corrupt_jpeg_is_named_when_decoded(folder, content):
    if content == "truncated":
        content = (folder / "b_dog" / "0.jpg").read_bytes()[:150]
    (folder / "b_dog" / "broken.jpg").write_bytes(content)
    ds = _load(folder, shuffle=False, batch_size=None)
    assert ds.file_paths[7].endswith("broken.jpg")
    with pytest.raises(ValueError, match="Could not decode the image file .*broken.jpg"):
        ds[7]
