"""Random image augmentation: RandomFlip and RandomTranslation, active only during training.

Both draw a per-image index map (which input row and column each output pixel reads) and run
it through the remap kernel. At inference they are the identity. Their backward pass is the
adjoint of the transform they applied, so they may sit anywhere in a model, not only first.

Like Dropout, each layer draws from its call's ``ctx.rng`` (see RandomTransformLayer).
"""
import numbers

import numpy as np

from .._ops import remap
from ..arguments import finite_float
from .._ops.checks import INDEX_LIMIT
from .base import RandomTransformLayer


FILL_MODES = ("constant", "nearest", "reflect", "wrap")


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


class _RandomRemap(RandomTransformLayer):
    fill_value = 0.0  # what pixels that the map leaves uncovered get; flips cover every pixel

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        return input_shape

    def _draw_maps(self, rng, n, h, w):
        """The (n, h) row map and (n, w) column map of this batch's transforms."""
        raise NotImplementedError

    def forward(self, x, ctx, training):
        ctx.active = bool(training)
        if not training:
            return x
        n, h, w, _ = x.shape
        ctx.rows, ctx.cols = self._draw_maps(ctx.rng, n, h, w)
        return remap.remap2d_forward(x, ctx.rows, ctx.cols, self.fill_value,
                                     out=ctx.buffer("y", x.shape))

    def _transform_backward(self, dy, ctx):
        return remap.remap2d_backward(dy, ctx.rows, ctx.cols, dy.shape,
                                      out=ctx.buffer("dx", dy.shape))

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class RandomFlip(_RandomRemap):
    """Flip each image left-right ("horizontal"), up-down ("vertical") or independently both,
    each with probability 1/2."""

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if mode not in self.MODES:
            raise ValueError(f"Expected mode in {self.MODES}, received mode={mode!r}")
        self.mode = mode

    def _draw_maps(self, rng, n, h, w):
        flip = rng.random((n, 2)) < 0.5
        flip[:, 0] &= self.mode != "horizontal"  # column 0: up-down, column 1: left-right
        flip[:, 1] &= self.mode != "vertical"
        rows, cols = np.arange(h, dtype=np.int32), np.arange(w, dtype=np.int32)
        return (np.where(flip[:, :1], rows[::-1], rows).astype(np.int32),
                np.where(flip[:, 1:], cols[::-1], cols).astype(np.int32))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _factor_range(factor, name):
    """Keras's factor: f means [-f, f], a pair (lo, hi) means [lo, hi]; within [-1, 1]."""
    pair = tuple(factor) if isinstance(factor, (tuple, list)) else (-factor, factor)
    if (len(pair) != 2 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                  for v in pair)
            or not -1 <= pair[0] <= pair[1] <= 1):  # written so that NaN fails too
        raise ValueError(f"Expected {name} to be a float f in [0, 1] or a pair (lo, hi) with "
                         f"-1 <= lo <= hi <= 1, received {name}={factor!r}")
    return float(pair[0]), float(pair[1])


class RandomTranslation(_RandomRemap):
    """Shift each image by a random whole number of pixels: up to ``height_factor`` of its
    height (positive moves the content down) and ``width_factor`` of its width (positive moves
    it right). Uncovered pixels follow ``fill_mode``: "constant" (``fill_value``), "nearest",
    "reflect" or "wrap".

    Keras defaults to bilinear interpolation of fractional shifts; fastcnn supports only
    ``interpolation="nearest"``, which rounds each shift to a whole pixel, so every output pixel
    is a copy of an input pixel.
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="nearest",
                 seed=None, fill_value=0.0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if interpolation != "nearest":
            raise ValueError('Expected interpolation="nearest" (the only mode fastcnn implements), '
                             f"received interpolation={interpolation!r}")
        self._height_range = _factor_range(height_factor, "height_factor")
        self._width_range = _factor_range(width_factor, "width_factor")
        if fill_mode not in FILL_MODES:
            raise ValueError(f"Expected fill_mode in {FILL_MODES}, received fill_mode={fill_mode!r}")
        if finite_float(fill_value) is None:
            raise ValueError(f"Expected fill_value to be a number, received fill_value={fill_value!r}")
        self.height_factor = height_factor
        self.width_factor = width_factor
        self.fill_mode = fill_mode
        self.fill_value = float(fill_value)

    def _draw_maps(self, rng, n, h, w):
        maps = []
        for (lo, hi), size in ((self._height_range, h), (self._width_range, w)):
            shift = np.rint(rng.uniform(lo, hi, n) * size).astype(np.int64)
            maps.append(source_index(np.arange(size) - shift[:, None], size, self.fill_mode))
        return tuple(maps)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor, "fill_mode": self.fill_mode,
                "interpolation": "nearest",
                "fill_value": self.fill_value}
