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


def set_floatx(value):
    if value != FLOATX:
        raise ValueError(f'Expected floatx "float32" (fastcnn computes in float32 only), received '
                         f"{value!r:.200}")


def image_data_format():
    """The layout of images: "channels_last", (batch, height, width, channels)."""
    return IMAGE_DATA_FORMAT


def set_image_data_format(data_format):
    if data_format != IMAGE_DATA_FORMAT:
        raise ValueError(f'Expected image data format "channels_last" (fastcnn lays images out '
                         f"NHWC only), received {data_format!r:.200}")


def epsilon():
    """The fuzz factor of the losses' clips and guards: 1e-7."""
    return EPSILON


def set_epsilon(value):
    if value != EPSILON:
        raise ValueError(f"Expected epsilon 1e-07 (the value fastcnn's kernels use), received "
                         f"{value!r:.200}")
