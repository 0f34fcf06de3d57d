"""Image ops: ``resize`` (Keras's ``keras.ops.image.resize``) on the resize kernels."""
import numpy as np

from .._ops import resize as resize_ops
from ..arguments import one_of
from .core import Op, Spec, float_dtype, floating, recordable, spec_of
from .shape import expand_dims, squeeze


class _Resize(Op):
    def __init__(self, size, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio,
                 fill_value):
        self.size, self.interpolation = size, interpolation
        self.crop, self.pad, self.fill_value = crop_to_aspect_ratio, pad_to_aspect_ratio, fill_value

    def _args(self):
        return {"interpolation": self.interpolation, "crop_to_aspect_ratio": self.crop,
                "pad_to_aspect_ratio": self.pad}

    def compute(self, images):
        return resize_ops.resize2d_forward(floating(images), self.size,
                                           fill_value=self.fill_value, **self._args())

    def spec(self, images):
        if len(images.shape) != 4 or None in images.shape[1:]:
            raise ValueError(f"Expected images of shape (batch, height, width, channels) with "
                             f"the sizes but the batch known, received shape {images.shape}")
        rows, cols = resize_ops.resize_maps(images.shape[1:3], self.size, self.interpolation,
                                            self.crop, self.pad)
        return Spec((images.shape[0], len(rows.taps), len(cols.taps), images.shape[3]),
                    float_dtype(images.dtype))

    def gradients(self, dy, xs, y, needed):
        return [resize_ops.resize2d_backward(dy, np.shape(xs[0]), self.size, **self._args())]


@recordable
def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None):
    """NHWC ``images`` resized to ``size`` (height, width), as Keras's image.resize with
    antialias=False; a single image (rank 3) is resized as a batch of one."""
    if antialias:
        raise ValueError("Expected antialias=False: fastcnn resizes without antialiasing")
    one_of(data_format, (None, "channels_last"), "data_format")
    one_of(fill_mode, ("constant",), "fill_mode")
    size = tuple(size) if isinstance(size, (list, tuple)) else size
    op = _Resize(size, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio, fill_value)
    if len(spec_of(images).shape) == 3:
        return squeeze(op(expand_dims(images, 0)), 0)
    return op(images)
