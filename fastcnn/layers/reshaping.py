"""ZeroPadding2D: zeros around each image, through the same index-map kernel as augmentation."""
import numpy as np

from .._ops import remap
from .base import Layer, normalize_tuple
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
        h, w, c = input_shape
        return (h + top + bottom, w + left + right, c)

    def build(self, input_shape):
        super().build(input_shape)
        (top, _), (left, _) = self.padding
        (oh, ow), (h, w) = self.output_shape[:2], self.input_shape[:2]
        # One map for every image: each batch passes a broadcast view of it.
        self._rows = source_index(np.arange(oh) - top, h, "constant")[None]
        self._cols = source_index(np.arange(ow) - left, w, "constant")[None]

    def _maps(self, n):
        return (np.broadcast_to(self._rows, (n, self._rows.shape[1])),
                np.broadcast_to(self._cols, (n, self._cols.shape[1])))

    def forward(self, x, training=False):
        self._x_shape = x.shape
        return remap.remap2d_forward(x, *self._maps(x.shape[0]), 0.0,
                                     out=self.workspace.get("y", (x.shape[0], *self.output_shape)))

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        return remap.remap2d_backward(dy, *self._maps(dy.shape[0]), self._x_shape,
                                      out=self.workspace.get("dx", self._x_shape))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
