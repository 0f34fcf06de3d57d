"""Export of fastcnn models to ONNX, for inference in other runtimes (onnxruntime, TensorRT,
OpenVINO...). Needs the ``onnx`` package: ``pip install fastcnn[onnx]``.

    fastcnn.onnx.export(model, "model.onnx")       # or model.export("model.onnx")

The ONNX graph computes what ``model.predict`` computes: it takes the model's inputs,
channels-last as fastcnn's (NHWC images), under the model's input names with the batch axis
free, and returns its outputs, channels-last, under ``model.output_names``. Inside, images are
transposed to channels-first once, where the first convolution needs them, and back only where
a layer needs Keras's order (see ``builder``).

Modules: ``builder`` (the graph under construction and the order each tensor's axes are held
in), ``walk`` (the model's graph, nested models inlined, into nodes; the refusals), and the
converters by family: ``windows`` (convolutions, poolings), ``activations``, ``normalization``,
``structure`` (Dense, reshaping, padding, cropping, merges) and ``images`` (resizing).
"""
import numbers

from .. import saving
from ..layers.base import Layer

MIN_OPSET = 13  # Softmax over one axis, Squeeze and Unsqueeze taking axes as inputs
PROTOBUF_LIMIT = 2**31  # bytes in one protobuf message, hence in one ONNX file


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("Exporting to ONNX needs the onnx package: pip install fastcnn[onnx]"
                          ) from None
    return onnx


def export(model, path, opset=17):
    """Write ``model`` (a built fastcnn Model: functional, Sequential or subclassed) to
    ``path`` as an ONNX file of operator set ``opset`` (13 to the newest the installed onnx
    package knows), atomically: a failed export leaves any file at ``path`` as it was.

    Every layer maps to standard ONNX operators, at inference: Dropout, the noise layers and
    the random augmentations are the identity, BatchNormalization uses its moving statistics.
    A layer without an ONNX form (a custom layer with its own forward, a subclass of a
    built-in layer, a ``fastcnn.ops`` call in the graph) raises a ValueError naming it, as
    does a layer called with training=True where that changes what it computes.
    """
    onnx = _onnx()
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral) or not (
            MIN_OPSET <= opset <= newest):
        raise ValueError(f"Expected opset to be an int in [{MIN_OPSET}, {newest}], received "
                         f"opset={opset!r}")
    if not (isinstance(model, Layer) and hasattr(model, "_built_graph")):
        raise TypeError(f"Expected a fastcnn Model to export, received {model!r:.100}")
    from .walk import model_proto
    proto, constant_bytes = model_proto(model, int(opset))
    if constant_bytes >= PROTOBUF_LIMIT:
        raise ValueError(f"Model {model.name!r} has {constant_bytes:,} bytes of weights: more "
                         f"than the {PROTOBUF_LIMIT:,} one ONNX file can hold")
    onnx.checker.check_model(proto)
    with saving.atomic_write(path) as f:
        f.write(proto.SerializeToString())


__all__ = ["export"]
