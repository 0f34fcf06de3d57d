"""Keras's global settings (``keras.config``), which fastcnn holds fixed: float32 values, NHWC
images ("channels_last") and an epsilon of 1e-7, the one its kernels use. The setters accept
those values, so that common Keras boilerplate runs, and refuse any other clearly."""

FLOATX = "float32"
IMAGE_DATA_FORMAT = "channels_last"
EPSILON = 1e-7

__all__ = ["backend", "epsilon", "floatx", "image_data_format", "set_epsilon", "set_floatx",
           "set_image_data_format"]


def backend():
    """The name of the backend: "fastcnn"."""
    return "fastcnn"


def floatx():
    """The dtype of weights and activations: "float32"."""
    return FLOATX


def _only(value, fixed, what, why):
    if not (isinstance(value, type(fixed)) and value == fixed):  # no elementwise comparison
        raise ValueError(f"Expected {what} {fixed!r} ({why}), received {value!r:.200}")


def set_floatx(value):
    _only(value, FLOATX, "floatx", "fastcnn computes in float32 only")


def image_data_format():
    """The layout of images: "channels_last", (batch, height, width, channels)."""
    return IMAGE_DATA_FORMAT


def set_image_data_format(data_format):
    _only(data_format, IMAGE_DATA_FORMAT, "image data format", "fastcnn lays images out NHWC only")


def epsilon():
    """The fuzz factor of the losses' clips and guards: 1e-7."""
    return EPSILON


def set_epsilon(value):
    _only(value, EPSILON, "epsilon", "the value fastcnn's kernels use")
