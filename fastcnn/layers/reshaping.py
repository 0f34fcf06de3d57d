"""The shape layers: ZeroPadding2D and Cropping2D (through the same index-map kernel as
augmentation, each the other's gradient), Reshape (a view) and Permute (a transpose kernel)."""
import math
import numbers

import numpy as np

from .._ops import merge, remap
from .arguments import normalize_tuple
from .base import Layer
from .preprocessing import source_index


def normalize_padding2d(padding, name="padding"):
    """1, (ph, pw) or ((top, bottom), (left, right)) -> ((top, bottom), (left, right)); ``name``
    is the argument's, for the error."""
    try:
        if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
                isinstance(p, (tuple, list)) for p in padding):
            return tuple(normalize_tuple(p, name, allow_zero=True) for p in padding)
        ph, pw = normalize_tuple(padding, name, allow_zero=True)
        return (ph, ph), (pw, pw)
    except ValueError:
        raise ValueError(f"Expected {name} to be an int, a pair of ints or a pair of pairs of "
                         f"ints, all >= 0, received {name}={padding!r}") from None


class _Shift2D(Layer):
    """A layer whose output pixel (i, j) is input pixel (i + row_shift, j + col_shift), or zero
    where that lies outside the image: padding (negative shifts) or cropping (positive ones).
    Forward and backward are the remap kernel's gather and its adjoint."""

    def _shifts(self):
        """(row_shift, col_shift)."""
        raise NotImplementedError

    def _maps(self, x_shape):
        """The row and column index maps, one for every image: each batch passes a broadcast
        view of them."""
        row_shift, col_shift = self._shifts()
        n, h, w, _ = x_shape
        _, oh, ow, _ = self.compute_output_shape(x_shape)
        rows = source_index(np.arange(oh) + row_shift, h, "constant")[None]
        cols = source_index(np.arange(ow) + col_shift, w, "constant")[None]
        return np.broadcast_to(rows, (n, oh)), np.broadcast_to(cols, (n, ow))

    def forward(self, x, ctx, training):
        ctx.x_shape = x.shape
        return remap.remap2d_forward(x, *self._maps(x.shape), 0.0,
                                     out=ctx.buffer("y", self.compute_output_shape(x.shape)))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return remap.remap2d_backward(dy, *self._maps(ctx.x_shape), ctx.x_shape,
                                      out=ctx.buffer("dx", ctx.x_shape))


class ZeroPadding2D(_Shift2D):
    """Pad NHWC images with zero rows at the top and bottom and zero columns left and right."""

    per_sample = True

    def __init__(self, padding=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.padding = normalize_padding2d(padding)

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        (top, bottom), (left, right) = self.padding
        n, h, w, c = input_shape
        return (n, None if h is None else h + top + bottom,
                None if w is None else w + left + right, c)

    def _shifts(self):
        (top, _), (left, _) = self.padding
        return -top, -left

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def _channels_last(data_format):
    """Keras's data_format argument: only channels_last (NHWC) images are supported."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f'Expected data_format "channels_last" (or None): fastcnn runs NHWC '
                         f"images only, received data_format={data_format!r}")
    return "channels_last"


class Cropping2D(_Shift2D):
    """Cut rows off the top and bottom and columns off the left and right of NHWC images."""

    per_sample = True

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = normalize_padding2d(cropping, "cropping")
        self.data_format = _channels_last(data_format)

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        n, h, w, c = input_shape
        (top, bottom), (left, right) = self.cropping
        if (h is not None and top + bottom >= h) or (w is not None and left + right >= w):
            raise ValueError(f"Cropping2D {self.name!r}: expected cropping smaller than the "
                             f"image, received cropping={self.cropping} for input shape "
                             f"{tuple(input_shape)}")
        return (n, None if h is None else h - top - bottom,
                None if w is None else w - left - right, c)

    def _shifts(self):
        (top, _), (left, _) = self.cropping
        return top, left

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping,
                "data_format": self.data_format}


def _int_tuple(value, name):
    """``value`` as a non-empty tuple of ints (not bools), or a ValueError naming ``name``."""
    try:
        dims = tuple(value)
    except TypeError:
        dims = ()
    if not dims or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                           for d in dims):
        raise ValueError(f"Expected {name} to be a tuple of ints, received {name}={value!r}")
    return tuple(int(d) for d in dims)


class Reshape(Layer):
    """Give each sample the shape ``target_shape`` (batch axis left out), in C order; one entry
    may be -1, inferred from the sample's size. A view of the input."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target_shape = _int_tuple(target_shape, "target_shape")
        if target_shape.count(-1) > 1 or any(d < 1 and d != -1 for d in target_shape):
            raise ValueError(f"Expected target_shape of positive ints with at most one -1, "
                             f"received target_shape={target_shape}")
        self.target_shape = target_shape

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if None in rest else math.prod(rest)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 not in self.target_shape:
            if size is not None and size != known:
                raise ValueError(f"Reshape {self.name!r}: expected inputs of "
                                 f"{known} values per sample for target_shape "
                                 f"{self.target_shape}, received input shape "
                                 f"{tuple(input_shape)}")
            return (input_shape[0], *self.target_shape)
        if size is not None and size % known:
            raise ValueError(f"Reshape {self.name!r}: expected inputs whose values per sample "
                             f"divide by {known} for target_shape {self.target_shape}, "
                             f"received input shape {tuple(input_shape)}")
        inferred = None if size is None else size // known
        return (input_shape[0], *(inferred if d == -1 else d for d in self.target_shape))

    def forward(self, x, ctx, training):
        ctx.x_shape = x.shape
        return x.reshape(self.compute_output_shape(x.shape))

    def backward(self, dy, ctx, need_dx):
        return dy.reshape(ctx.x_shape) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Permute(Layer):
    """Reorder the axes after the batch axis: ``dims`` numbers them from 1, as in Keras, so
    Permute((2, 1)) swaps the two axes of (batch, a, b) inputs."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = _int_tuple(dims, "dims")
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Expected dims to be a permutation of 1, ..., {len(dims)} (the "
                             f"axes after the batch axis), received dims={dims}")
        self.dims = dims

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise ValueError(f"Permute {self.name!r} with dims={self.dims} expects inputs of "
                             f"rank {len(self.dims) + 1}, received input shape "
                             f"{tuple(input_shape)}")
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def forward(self, x, ctx, training):
        shape = self.compute_output_shape(x.shape)
        return merge.transpose(x, (0, *self.dims), out=ctx.buffer("y", shape))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        inverse = tuple(int(a) for a in np.argsort((0, *self.dims)))
        return merge.transpose(dy, inverse,
                               out=ctx.buffer("dx", tuple(dy.shape[a] for a in inverse)))

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}
