"""Keras's image file utilities: load_img, img_to_array, array_to_img and save_img, and the
decoding of one file that image_dataset_from_directory runs on its worker threads.

Pillow and simplejpeg (``pip install fastcnn[images]``) are imported only by the functions that
need them, so the rest of fastcnn runs without them. Arrays are (height, width, channels) unless
``data_format="channels_first"``.

decode_file reads JPEGs with simplejpeg: libjpeg-turbo straight from the file's bytes to a NumPy
array, releasing the GIL, without the per-image Python objects of a Pillow image, which cost
several times the decoding of a small image. Both use libjpeg-turbo with the same settings
(accurate integer IDCT, smooth chroma upsampling, no DCT-domain scaling), so the pixels are
Pillow's. Pillow reads every other format, and the JPEGs that simplejpeg leaves to it: CMYK and
YCCK ones (whose conversion to RGB Pillow does its own way) and any that libjpeg-turbo warns
about (Pillow decodes those despite the warning, or raises the error that names the file).
"""
import functools
import io
import os
import warnings

import numpy as np

from .._ops.checks import check_memory, positive_int
from .._ops.checks import choice_arg

COLOR_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
# simplejpeg's output colour space for each colour mode: libjpeg-turbo gives a colour JPEG's
# luma plane as grayscale, repeats a grayscale one into RGB, and fills alpha with 255.
JPEG_COLORSPACES = {"grayscale": "GRAY", "rgb": "RGB", "rgba": "RGBA"}
JPEG_SIGNATURE = b"\xff\xd8\xff"
DATA_FORMATS = ("channels_last", "channels_first")
# Pillow's resampling filters, by Keras's names for them (load_img).
PIL_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")


def _pil_image():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("Reading and writing image files needs Pillow: pip install "
                          "fastcnn[images] (or pip install Pillow)") from None
    return Image


def data_format_arg(data_format):
    """None (the default, channels_last) or one of DATA_FORMATS."""
    return "channels_last" if data_format is None else choice_arg(data_format, DATA_FORMATS,
                                                                   "data_format")


def _as_array(x, dtype, name):
    """``x`` as a NumPy array of ``dtype`` (float32 for None), or a ValueError/TypeError."""
    dtype = np.float32 if dtype is None else dtype
    if isinstance(x, np.ndarray):  # a broadcast view's copy can be far larger than it
        check_memory([(f"{name} as an array", x.size * np.dtype(dtype).itemsize)], name)
    try:
        return np.array(x, dtype=dtype)
    except OverflowError:
        raise ValueError(f"Expected {name} to hold values that fit the dtype, received "
                         f"{x!r:.100}") from None


def _convert(img, color_mode):
    """``img`` in the Pillow mode of ``color_mode``; grayscale keeps 16- and 32-bit integer
    images as they are, as Keras does."""
    mode = COLOR_MODES[color_mode]
    if img.mode == mode or (color_mode == "grayscale" and img.mode in ("I;16", "I")):
        return img
    return img.convert(mode)


@functools.cache
def _simplejpeg():
    """The simplejpeg module, or None where it is not installed (Pillow then reads JPEGs)."""
    try:
        import simplejpeg
    except ImportError:
        return None
    return simplejpeg


def _read(path):
    with open(path, "rb", buffering=0) as f:  # one read of the whole file: no buffer to fill
        return f.read()


def _open(path, jpeg_mode=None):
    """A Pillow image of ``path`` (a path or a binary file object), decoded in full; a JPEG in
    ``jpeg_mode`` ("L": its luma plane) when given."""
    Image = _pil_image()
    if isinstance(path, (io.IOBase, io.BytesIO)):
        img = Image.open(path)
    elif isinstance(path, (str, bytes, os.PathLike)):
        img = Image.open(io.BytesIO(_read(path)))
    else:
        raise TypeError(f"Expected path to be a path or a binary file object, received "
                        f"{type(path).__name__}")
    if jpeg_mode is not None and img.format == "JPEG":
        img.draft(jpeg_mode, img.size)
    img.load()
    return img


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest",
             keep_aspect_ratio=False):
    """The image file at ``path`` as a Pillow image in ``color_mode`` ("grayscale", "rgb" or
    "rgba"), resized by Pillow to ``target_size`` = (height, width) when given and different,
    with one of Pillow's filters (PIL_INTERPOLATIONS). ``keep_aspect_ratio`` resizes the largest
    centred window of the target's aspect ratio (integer arithmetic, as Keras)."""
    choice_arg(color_mode, tuple(COLOR_MODES), "color_mode")
    if target_size is not None:
        if not isinstance(target_size, (tuple, list)) or len(target_size) != 2:
            raise ValueError(f"Expected target_size to be None or (height, width), received "
                             f"target_size={target_size!r}")
        target_h = positive_int(target_size[0], "target_size[0]")
        target_w = positive_int(target_size[1], "target_size[1]")
    choice_arg(interpolation, PIL_INTERPOLATIONS, "interpolation")
    img = _convert(_open(path), color_mode)
    if target_size is None or img.size == (target_w, target_h):
        return img
    Image = _pil_image()
    resample = getattr(Image.Resampling, interpolation.upper())
    box = None
    if keep_aspect_ratio:
        width, height = img.size
        crop_h = min(height, width * target_h // target_w)
        crop_w = min(width, height * target_w // target_h)
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        box = (left, top, left + crop_w, top + crop_h)
    return img.resize((target_w, target_h), resample, box=box)


def img_to_array(img, data_format=None, dtype=None):
    """A Pillow image as a float32 (or ``dtype``) array (height, width, channels); a
    single-channel image gets a channel axis of 1."""
    data_format = data_format_arg(data_format)
    x = _as_array(img, dtype, "img")
    if x.ndim == 2:
        x = x[:, :, None]
    elif x.ndim != 3:
        raise ValueError(f"Expected an image of rank 2 or 3, received shape {x.shape}")
    return x.transpose(2, 0, 1) if data_format == "channels_first" else x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A Pillow image of a (height, width, channels) array of 1, 3 or 4 channels. ``scale``
    first maps the array's minimum to 0 and maximum to 255; without it the values are cast to
    uint8 as they are. A single channel above 255 gives a 32-bit integer image (mode "I")."""
    Image = _pil_image()
    data_format = data_format_arg(data_format)
    x = _as_array(x, dtype, "x")
    if x.ndim != 3:
        raise ValueError(f"Expected an image array of rank 3 (one image), received shape "
                         f"{x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        top = np.max(x)
        if top != 0:
            x = x / top
        x = x * 255
    channels = x.shape[2]
    if channels in (3, 4):
        return Image.fromarray(x.astype(np.uint8), "RGB" if channels == 3 else "RGBA")
    if channels == 1:
        if np.max(x) > 255:
            return Image.fromarray(x[:, :, 0].astype(np.int32), "I")
        return Image.fromarray(x[:, :, 0].astype(np.uint8), "L")
    raise ValueError(f"Expected an image of 1, 3 or 4 channels, received {channels}")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Write the array ``x`` (see array_to_img) to ``path`` with Pillow, in ``file_format`` or
    the format of the file name's extension; an RGBA image saved as JPEG loses its alpha channel
    (with a warning). ``kwargs`` go to Pillow's save."""
    if file_format is not None:
        Image = _pil_image()
        Image.init()
        if not isinstance(file_format, str) or file_format.upper().replace("JPG", "JPEG") \
                not in Image.SAVE:
            raise ValueError(f"Expected file_format to be None or a format Pillow writes "
                             f"({', '.join(sorted(Image.SAVE))}), received "
                             f"file_format={file_format!r:.100}")
        if file_format.lower() == "jpg":
            file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    is_jpeg = (file_format or "").lower() == "jpeg" or (
        file_format is None and isinstance(path, (str, os.PathLike))
        and os.fspath(path).lower().endswith((".jpg", ".jpeg")))
    if img.mode == "RGBA" and is_jpeg:
        warnings.warn("JPEG holds no alpha channel: saving the image as RGB", stacklevel=2)
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)


def _decode_jpeg(data, color_mode):
    """The JPEG ``data`` decoded by simplejpeg, or None for Pillow to decode (see the module
    docstring)."""
    simplejpeg = _simplejpeg()
    if simplejpeg is None:
        return None
    try:
        if simplejpeg.decode_jpeg_header(data)[2] in ("CMYK", "YCCK"):
            return None
        return simplejpeg.decode_jpeg(data, colorspace=JPEG_COLORSPACES[color_mode])
    except ValueError:
        return None


def _decode_pillow(data, color_mode):
    img = _open(io.BytesIO(data), "L" if color_mode == "grayscale" else None)
    if img.mode.startswith("I;16"):
        img = _pil_image().fromarray((np.asarray(img) >> 8).astype(np.uint8), "L")
    x = np.asarray(_convert(img, color_mode))
    return x[:, :, None] if x.ndim == 2 else x


def decode_file(path, color_mode):
    """The image file at ``path`` as a uint8 (or, for 16/32-bit grayscale, integer) array
    (height, width, channels), the first frame of an animation; a ValueError naming the file
    when it cannot be read or decoded. As TensorFlow's decoders (and so Keras's
    image_dataset_from_directory) give them, a JPEG in grayscale is its luma plane, decoded
    without colour, and a 16-bit image keeps the high byte of each value (Pillow's own
    conversion would clip values above 255)."""
    try:
        data = _read(path)
        x = _decode_jpeg(data, color_mode) if data.startswith(JPEG_SIGNATURE) else None
        return _decode_pillow(data, color_mode) if x is None else x
    except ImportError:
        raise
    except Exception as error:
        raise ValueError(f"Could not decode the image file {os.fspath(path)!r}: "
                         f"{type(error).__name__}: {error}") from error
