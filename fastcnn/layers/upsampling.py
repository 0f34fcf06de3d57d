"""UpSampling2D: images enlarged by whole factors through the resize kernel."""
from .._ops import resize
from .._ops.checks import choice_arg
from .arguments import normalize_tuple
from .base import Layer


class UpSampling2D(Layer):
    """Repeat each row ``size[0]`` times and each column ``size[1]`` times ("nearest"), or
    interpolate bilinearly with half-pixel centres ("bilinear"), as Keras does (its resize with
    antialias=False). Keras's bicubic and lanczos interpolations are not implemented."""

    per_sample = True

    def __init__(self, size=(2, 2), interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = normalize_tuple(size, "size")
        self.interpolation = choice_arg(
            interpolation.lower() if isinstance(interpolation, str) else interpolation,
            resize.INTERPOLATIONS, "interpolation")

    def compute_output_shape(self, input_shape):
        self._check_image_input(input_shape)
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.size[0],
                None if w is None else w * self.size[1], c)

    def forward(self, x, ctx, training):
        ctx.x_shape = x.shape
        shape = self.compute_output_shape(x.shape)
        return resize.resize2d_forward(x, shape[1:3], self.interpolation,
                                       out=ctx.buffer("y", shape))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return resize.resize2d_backward(dy, ctx.x_shape, dy.shape[1:3], self.interpolation,
                                        out=ctx.buffer("dx", ctx.x_shape))

    def get_config(self):
        return {**super().get_config(), "size": self.size, "interpolation": self.interpolation}
