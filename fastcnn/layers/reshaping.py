"""ZeroPadding2D: zeros around each image, through the same index-map kernel as augmentation."""
import numpy as np

from .._ops import remap
from .arguments import normalize_tuple
from .base import Layer
from .preprocessing import source_index


def normalize_padding2d(padding):
    """1, (ph, pw) or ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
    try:
        if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
                isinstance(p, (tuple, list)) for p in padding):
            return tuple(normalize_tuple(p, "padding", allow_zero=True) for p in padding)
        ph, pw = normalize_tuple(padding, "padding", allow_zero=True)
        return (ph, ph), (pw, pw)
    except ValueError:
        raise ValueError("Expected padding to be an int, a pair of ints or a pair of pairs of "
                         f"ints, all >= 0, received padding={padding!r}") from None


class ZeroPadding2D(Layer):
    """Pad NHWC images with zero rows at the top and bottom and zero columns left and right."""

    def __init__(self, padding=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.padding = normalize_padding2d(padding)

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        (top, bottom), (left, right) = self.padding
        n, h, w, c = input_shape
        return (n, None if h is None else h + top + bottom,
                None if w is None else w + left + right, c)

    def _maps(self, x_shape):
        """The row and column index maps, one for every image: each batch passes a broadcast
        view of them."""
        (top, _), (left, _) = self.padding
        n, h, w, _ = x_shape
        _, oh, ow, _ = self.compute_output_shape(x_shape)
        rows = source_index(np.arange(oh) - top, h, "constant")[None]
        cols = source_index(np.arange(ow) - left, w, "constant")[None]
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

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
