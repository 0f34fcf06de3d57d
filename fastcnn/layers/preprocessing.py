"""Image preprocessing (Resizing, CenterCrop, Rescaling) and random augmentation (RandomFlip,
RandomTranslation, RandomRotation, RandomZoom, RandomCrop, RandomContrast, RandomBrightness),
with Keras 3's arguments and, where Keras runs on TensorFlow, its arithmetic.

The augmentation layers transform only during training and are the identity otherwise (but
RandomCrop, which crops or resizes at inference too). Each draws from its call's ``ctx.rng``
(see RandomTransformLayer), so a seeded fit draws the same transforms. Every layer's backward
pass is the gradient of what it applied, so they may sit anywhere in a model, not only first:
- RandomFlip draws per-image index maps for the remap kernel;
- RandomTranslation, RandomRotation and RandomZoom draw per-image affine maps for the affine
  kernel (TensorFlow's ImageProjectiveTransformV3: its fill modes and interpolations);
- Resizing, CenterCrop and RandomCrop resize or crop through the resize kernel;
- Rescaling, RandomBrightness and RandomContrast map pixel values through the intensity kernel.
"""
import numbers

import numpy as np

from .._ops import intensity, remap, resize
from .._ops.checks import INDEX_LIMIT
from .._ops.checks import choice_arg
from .._ops.remap import FILL_MODES
from ..arguments import finite_float
from .arguments import normalize_tuple
from .base import Layer, RandomTransformLayer


def source_index(coords, size, fill_mode):
    """The input index along an axis of ``size`` cells that each output coordinate reads, for
    Keras's fill modes; -1 marks the cells that "constant" fills. Beyond the edges "nearest"
    repeats the edge (a a | a b c d | d d), "reflect" mirrors across it (b a | a b c d | d c)
    and "wrap" tiles (c d | a b c d | a b). The remap kernel reads the result as an index map."""
    coords = np.asarray(coords)
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or not 1 <= size <= INDEX_LIMIT:
        raise ValueError(f"Expected size in [1, {INDEX_LIMIT}], received size={size!r}")
    if fill_mode == "constant":
        index = np.where((coords >= 0) & (coords < size), coords, -1)
    elif fill_mode == "nearest":
        index = np.clip(coords, 0, size - 1)
    elif fill_mode == "reflect":
        folded = np.mod(coords, 2 * size)
        index = np.where(folded < size, folded, 2 * size - 1 - folded)
    elif fill_mode == "wrap":
        index = np.mod(coords, size)
    else:
        raise ValueError(f"Expected fill_mode in {FILL_MODES}, received fill_mode={fill_mode!r}")
    return index.astype(np.int32)


class _RandomImageLayer(RandomTransformLayer):
    """Images in, images of the same shape out, transformed at random in training only: forward
    keeps x and this batch's draw on ctx (ctx.x, ctx.draw) for the backward pass."""

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        return input_shape

    def _draw(self, rng, shape):
        """This batch's random parameters, for images of ``shape``."""
        raise NotImplementedError

    def _apply(self, x, ctx, out):
        """x transformed by ctx.draw, written into out."""
        raise NotImplementedError

    def forward(self, x, ctx, training):
        ctx.active = bool(training)
        if not training:
            return x
        ctx.x, ctx.draw = x, self._draw(ctx.rng, x.shape)
        return self._apply(x, ctx, ctx.buffer("y", x.shape))

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class RandomFlip(_RandomImageLayer):
    """Flip each image left-right ("horizontal"), up-down ("vertical") or independently both,
    each with probability 1/2."""

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if mode not in self.MODES:
            raise ValueError(f"Expected mode in {self.MODES}, received mode={mode!r}")
        self.mode = mode

    def _draw(self, rng, shape):
        n, h, w, _ = shape
        flip = rng.random((n, 2)) < 0.5
        flip[:, 0] &= self.mode != "horizontal"  # column 0: up-down, column 1: left-right
        flip[:, 1] &= self.mode != "vertical"
        rows, cols = np.arange(h, dtype=np.int32), np.arange(w, dtype=np.int32)
        return (np.where(flip[:, :1], rows[::-1], rows).astype(np.int32),
                np.where(flip[:, 1:], cols[::-1], cols).astype(np.int32))

    def _apply(self, x, ctx, out):  # ctx.draw: the (n, h) row and (n, w) column index maps
        return remap.remap2d_forward(x, *ctx.draw, 0.0, out=out)

    def _transform_backward(self, dy, ctx):
        return remap.remap2d_backward(dy, *ctx.draw, dy.shape, out=ctx.buffer("dx", dy.shape))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _factor_range(factor, name, low=-1.0, single_low=None):
    """Keras's factor: f means [-f, f] (or [single_low, f]), a pair (lo, hi) means [lo, hi];
    within [low, 1]. A number must be in [0, 1]."""
    if isinstance(factor, (tuple, list)):
        pair = tuple(factor)
    elif isinstance(factor, numbers.Real) and not isinstance(factor, bool) and factor >= 0:
        pair = (-factor if single_low is None else single_low, factor)
    else:
        pair = ()
    if (len(pair) != 2 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                  for v in pair)
            or not low <= pair[0] <= pair[1] <= 1):  # written so that NaN fails too
        raise ValueError(f"Expected {name} to be a float f in [0, 1] or a pair (lo, hi) with "
                         f"{low:g} <= lo <= hi <= 1, received {name}={factor!r}")
    return float(pair[0]), float(pair[1])


def _number(value, name):
    if finite_float(value) is None:
        raise ValueError(f"Expected {name} to be a number, received {name}={value!r}")
    return float(value)


def _value_range(value_range):
    """Keras's value_range: a pair (low, high) of numbers, low < high."""
    pair = tuple(value_range) if isinstance(value_range, (tuple, list)) else ()
    if len(pair) != 2 or any(finite_float(v) is None for v in pair) or not pair[0] < pair[1]:
        raise ValueError("Expected value_range to be a pair (low, high) of numbers with "
                         f"low < high, received value_range={value_range!r}")
    return float(pair[0]), float(pair[1])


class _RandomAffine(_RandomImageLayer):
    """Resample each image through a random affine map, as Keras's affine_transform does.
    Outside the image, ``fill_mode`` "reflect" mirrors (d c b a | a b c d | d c b a), "wrap"
    tiles, "nearest" repeats the edge and "constant" reads ``fill_value``."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.fill_mode = choice_arg(fill_mode, FILL_MODES, "fill_mode")
        self.interpolation = choice_arg(interpolation, remap.AFFINE_INTERPOLATIONS,
                                        "interpolation")
        self.fill_value = _number(fill_value, "fill_value")

    def _apply(self, x, ctx, out):  # ctx.draw: (n, 6), each image's map a0 a1 a2 b0 b1 b2
        # from output (row i, column j) to input column a0*j + a1*i + a2, row b0*j + b1*i + b2
        return remap.affine2d_forward(x, ctx.draw, self.fill_mode, self.interpolation,
                                      self.fill_value, out=out)

    def _transform_backward(self, dy, ctx):
        return remap.affine2d_backward(dy, ctx.draw, self.fill_mode, self.interpolation,
                                       out=ctx.buffer("dx", dy.shape))

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


class RandomTranslation(_RandomAffine):
    """Shift each image by up to ``height_factor`` of its height (positive moves the content
    down) and ``width_factor`` of its width (positive moves it right), by fractions of a pixel
    with bilinear interpolation or rounded with "nearest"."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear",
                 seed=None, fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self._height_range = _factor_range(height_factor, "height_factor")
        self._width_range = _factor_range(width_factor, "width_factor")
        self.height_factor = height_factor
        self.width_factor = width_factor

    def _draw(self, rng, shape):
        n, h, w, _ = shape
        dy = rng.uniform(*self._height_range, n) * h
        dx = rng.uniform(*self._width_range, n) * w
        one, zero = np.ones(n), np.zeros(n)
        return np.stack([one, zero, -dx, zero, one, -dy], axis=1)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


class RandomRotation(_RandomAffine):
    """Rotate each image about its centre by a random angle of up to ``factor`` turns (0.1:
    36 degrees either way; a pair (lo, hi) draws from [lo, hi]), counter-clockwise for positive
    angles as Keras draws it."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self._range = _factor_range(factor, "factor")
        self.factor = factor

    def _draw(self, rng, shape):
        n, h, w, _ = shape
        theta = np.deg2rad(rng.uniform(self._range[0] * 360.0, self._range[1] * 360.0, n))
        cos, sin = np.cos(theta), np.sin(theta)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        return np.stack([cos, -sin, cx - cx * cos + cy * sin,
                         sin, cos, cy - cx * sin - cy * cos], axis=1)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomZoom(_RandomAffine):
    """Zoom each image about its centre: its height by 1 + a draw from ``height_factor``
    (positive zooms out, negative in; f means [-f, f]) and its width by one from
    ``width_factor``, or by the same as the height when that is None."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self._height_range = _factor_range(height_factor, "height_factor")
        self._width_range = (None if width_factor is None else
                             _factor_range(width_factor, "width_factor"))
        for name, bounds in (("height_factor", self._height_range),
                             ("width_factor", self._width_range)):
            if bounds is not None and bounds[0] <= -1:
                raise ValueError(f"Expected {name} within (-1, 1]: a zoom of 1 + -1 leaves no "
                                 f"image, received {name}={bounds}")
        self.height_factor = height_factor
        self.width_factor = width_factor

    def _draw(self, rng, shape):
        n, h, w, _ = shape
        zy = 1.0 + rng.uniform(*self._height_range, n)
        zx = zy if self._width_range is None else 1.0 + rng.uniform(*self._width_range, n)
        zero = np.zeros(n)
        return np.stack([zx, zero, (w - 1) / 2 * (1 - zx), zero, zy, (h - 1) / 2 * (1 - zy)],
                        axis=1)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


def _size(height, width):
    return normalize_tuple((height, width), "(height, width)")


def _sized_shape(layer, input_shape):
    """The output shape of a layer that makes images of (layer.height, layer.width)."""
    layer._check_image_input(input_shape)
    return (input_shape[0], layer.height, layer.width, input_shape[3])


class Resizing(Layer):
    """Resize images to (height, width) as keras.layers.Resizing does (antialias=False), first
    cropping to the target's aspect ratio (``crop_to_aspect_ratio``) or padding to it with
    ``fill_value`` (``pad_to_aspect_ratio``) when asked. Gradients flow through the resize."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, antialias=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = _size(height, width)
        self.interpolation = choice_arg(interpolation, resize.INTERPOLATIONS, "interpolation")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError("Expected at most one of crop_to_aspect_ratio and pad_to_aspect_ratio "
                             "to be True, received crop_to_aspect_ratio=True, "
                             "pad_to_aspect_ratio=True")
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = choice_arg(fill_mode, ("constant",), "fill_mode")
        self.fill_value = _number(fill_value, "fill_value")
        if antialias:
            raise ValueError("Expected antialias=False (fastcnn resizes without an antialiasing "
                             f"filter), received antialias={antialias!r}")

    def compute_output_shape(self, input_shape):
        return _sized_shape(self, input_shape)

    def _resize_args(self):
        return ((self.height, self.width), self.interpolation, self.crop_to_aspect_ratio,
                self.pad_to_aspect_ratio)

    def forward(self, x, ctx, training):
        ctx.x_shape = x.shape
        return resize.resize2d_forward(x, *self._resize_args(), fill_value=self.fill_value,
                                       out=ctx.buffer("y", self.compute_output_shape(x.shape)))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return resize.resize2d_backward(dy, ctx.x_shape, *self._resize_args(),
                                        out=ctx.buffer("dx", ctx.x_shape))

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": False}


class _CropOrResize:
    """What CenterCrop and RandomCrop do to a batch: a crop of (height, width) from (top, left),
    through broadcast index maps, or Keras's smart_resize (the centred window of the target's
    aspect ratio, resized bilinearly) when ``top`` is None."""

    def __init__(self, x_shape, height, width, top=None, left=None):
        self.x_shape, self.size = x_shape, (height, width)
        self.maps = None if top is None else (
            np.broadcast_to(np.arange(top, top + height, dtype=np.int32), (x_shape[0], height)),
            np.broadcast_to(np.arange(left, left + width, dtype=np.int32), (x_shape[0], width)))

    def forward(self, x, out):
        if self.maps is None:
            return resize.resize2d_forward(x, self.size, "bilinear", True, out=out)
        return remap.remap2d_forward(x, *self.maps, out=out)

    def backward(self, dy, out):
        if self.maps is None:
            return resize.resize2d_backward(dy, self.x_shape, self.size, "bilinear", True, out=out)
        return remap.remap2d_backward(dy, *self.maps, self.x_shape, out=out)


class CenterCrop(Layer):
    """Crop the centred (height, width) window of each image, as Keras does; an image smaller
    than that on either axis is instead resized to it (Keras's smart_resize: the largest centred
    window of the target's aspect ratio, resized bilinearly)."""

    def __init__(self, height, width, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = _size(height, width)

    def compute_output_shape(self, input_shape):
        return _sized_shape(self, input_shape)

    def forward(self, x, ctx, training):
        n, h, w, _ = x.shape
        crops = h >= self.height and w >= self.width
        ctx.op = _CropOrResize(x.shape, self.height, self.width,
                               (h - self.height) // 2 if crops else None, (w - self.width) // 2)
        return ctx.op.forward(x, ctx.buffer("y", self.compute_output_shape(x.shape)))

    def backward(self, dy, ctx, need_dx):
        return ctx.op.backward(dy, ctx.buffer("dx", ctx.op.x_shape)) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


class RandomCrop(RandomTransformLayer):
    """In training, crop one random (height, width) window, at the same place in every image of
    the batch, as Keras does. At inference, and in training when an image is not larger than
    the target on both axes, Keras's documented behaviour: smart_resize (the largest centred
    window of the target's aspect ratio, resized bilinearly). (Keras 3.15's code returns the
    input unchanged at inference, unlike its documentation and its output shape.)"""

    def __init__(self, height, width, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.height, self.width = _size(height, width)

    def compute_output_shape(self, input_shape):
        return _sized_shape(self, input_shape)

    def forward(self, x, ctx, training):
        n, h, w, _ = x.shape
        ctx.active = True  # it transforms its input in both modes
        if training and h > self.height and w > self.width:
            top = int(ctx.rng.integers(0, h - self.height + 1))
            left = int(ctx.rng.integers(0, w - self.width + 1))
            ctx.op = _CropOrResize(x.shape, self.height, self.width, top, left)
        else:
            ctx.op = _CropOrResize(x.shape, self.height, self.width)
        return ctx.op.forward(x, ctx.buffer("y", self.compute_output_shape(x.shape)))

    def _transform_backward(self, dy, ctx):
        return ctx.op.backward(dy, ctx.buffer("dx", ctx.op.x_shape))

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "seed": self.seed}


def _scale_values(value, name):
    """A number, or one number per channel (a list), for Rescaling."""
    if finite_float(value) is not None:
        return float(value)
    values = (np.asarray(value, dtype=object).ravel()
              if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray)
                                                     and value.size <= INDEX_LIMIT)
              else np.array([]))
    if values.size == 0 or any(finite_float(v) is None for v in values):
        raise ValueError(f"Expected {name} to be a number or a list of numbers (one per channel), "
                         f"received {name}={value!r}")
    return [float(v) for v in values]


class Rescaling(Layer):
    """y = x * scale + offset, with scale and offset numbers or one value per channel (the last
    axis); any input rank."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _scale_values(scale, "scale")
        self.offset = _scale_values(offset, "offset")

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"Rescaling {self.name!r} expects inputs of shape (batch, ..., "
                             f"channels), received {tuple(input_shape)}")
        for name, value in (("scale", self.scale), ("offset", self.offset)):
            if isinstance(value, list) and len(value) not in (1, input_shape[-1]):
                raise ValueError(f"Expected {name} to have one value per channel of inputs of "
                                 f"shape {tuple(input_shape)}, received {len(value)} values")
        return input_shape

    def forward(self, x, ctx, training):
        return intensity.intensity_forward(x, self.scale, self.offset, out=ctx.buffer("y", x.shape))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return intensity.intensity_forward(dy, self.scale, 0.0, out=ctx.buffer("dx", dy.shape))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


class _RandomIntensity(_RandomImageLayer):
    """Per-image random pixel-value maps x * scale + shift clipped to ``value_range``."""

    def __init__(self, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self._bounds = _value_range(value_range)
        self.value_range = value_range

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range}


class RandomBrightness(_RandomIntensity):
    """Add to each image a random delta, the same for all its pixels and channels: a draw from
    ``factor`` (f means [-f, f]) times the width of ``value_range``; then clip to value_range."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(value_range, seed, **kwargs)
        self._range = _factor_range(factor, "factor")
        self.factor = factor

    def _draw(self, rng, shape):
        """(n, 1): each image's delta."""
        low, high = self._bounds
        return (rng.uniform(*self._range, shape[0]) * (high - low))[:, None]

    def _apply(self, x, ctx, out):
        return intensity.intensity_forward(x, 1.0, ctx.draw, *self._bounds, out=out)

    def _transform_backward(self, dy, ctx):
        return intensity.intensity_backward(dy, ctx.x, 1.0, ctx.draw, *self._bounds,
                                            out=ctx.buffer("dx", dy.shape))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomContrast(_RandomIntensity):
    """Scale each image's deviations from its channel means by a random contrast factor c, the
    same for all its channels: (x - mean) * c + mean, clipped to ``value_range``. As Keras 3.15
    draws it, a number f gives c in [1, 1 + f] and a pair (lo, hi) gives c in [1 - lo, 1 + hi]."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(value_range, seed, **kwargs)
        lo, hi = _factor_range(factor, "factor", low=0.0, single_low=0.0)
        self._range = (1.0 - lo, 1.0 + hi)
        self.factor = factor

    def _draw(self, rng, shape):
        """(n, 1): each image's contrast factor."""
        return rng.uniform(*self._range, shape[0])[:, None]

    def _apply(self, x, ctx, out):
        means = intensity.channel_means(x, out=ctx.buffer("means", (x.shape[0], x.shape[-1])))
        ctx.shift = means * (1.0 - ctx.draw)
        return intensity.intensity_forward(x, ctx.draw, ctx.shift, *self._bounds, out=out)

    def _transform_backward(self, dy, ctx):
        # y = c * x + (1 - c) * mean(x) where not clipped: with g the unclipped part of dy,
        # dx = c * g + (1 - c) * mean(g), the means taken per image and channel.
        g = intensity.intensity_backward(dy, ctx.x, ctx.draw, ctx.shift, *self._bounds,
                                         gain=1.0, out=ctx.buffer("unclipped", dy.shape))
        g_means = intensity.channel_means(g, out=ctx.buffer("means", (dy.shape[0], dy.shape[-1])))
        return intensity.intensity_forward(g, ctx.draw, g_means * (1.0 - ctx.draw),
                                           out=ctx.buffer("dx", dy.shape))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
