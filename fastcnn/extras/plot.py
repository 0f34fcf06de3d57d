"""Pictures of a network: learning curves, convolution filters and feature maps.

    from fastcnn.extras import plot
    plot.history(model.fit(...), "curves.png")
    plot.filters(model.get_layer("conv2d"), "filters.png")
    plot.feature_maps(model, x_test[0], "conv2d", "maps.png")

matplotlib is an optional extra (``pip install "fastcnn[plot]"``), imported on the first call, so
``import fastcnn`` never pays for it. Figures are drawn on matplotlib's Agg canvas directly,
without pyplot: nothing changes the backend or the figure state of the caller's own plots. The
file format follows the extension of ``path`` (png, svg, pdf, ...). Each function returns the
matplotlib Figure.
"""
import numbers

import numpy as np

from ..engine.tensor import KerasTensor
from ..layers.base import Layer
from ..models import Model


def history(history, path, dpi=100):
    """Loss and metric curves per epoch, training and validation side by side in one panel each.

    ``history`` is the History that ``fit`` returns, or its ``history`` dict
    (``{"loss": [...], "val_loss": [...], "accuracy": [...], ...}``).
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs or not all(
            isinstance(v, (list, tuple, np.ndarray)) and len(v) for v in logs.values()):
        raise ValueError(f"Expected a History or its history dict of per-epoch lists, received "
                         f"{history!r}")
    names = list(dict.fromkeys(k[4:] if k.startswith("val_") else k for k in logs))
    epochs = [e + 1 for e in getattr(history, "epoch", [])]
    fig = _figure((4.5 * len(names), 3.5), dpi)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for key, label in ((name, "training"), ("val_" + name, "validation")):
            if key in logs:
                values = np.asarray(logs[key], dtype=float)
                x = epochs if len(epochs) == len(values) else np.arange(1, len(values) + 1)
                ax.plot(x, values, marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def filters(conv_layer, path, dpi=100):
    """The kernels of a Conv2D layer: one tile per filter when it has one input channel, else a
    grid of input channels (rows) by filters (columns). One colour scale, centred on zero, is
    shared by every tile so their magnitudes compare."""
    kernel = getattr(conv_layer, "kernel", None)
    if not isinstance(conv_layer, Layer) or not isinstance(kernel, np.ndarray) or kernel.ndim != 4:
        raise ValueError(f"Expected a built Conv2D layer (a kernel of shape (kh, kw, c_in, "
                         f"c_out)), received {conv_layer!r}")
    kh, kw, c_in, c_out = kernel.shape
    tiles = kernel.transpose(2, 3, 0, 1).reshape(c_in * c_out, kh, kw)
    cols = c_out if c_in > 1 else _grid_columns(c_out)
    image = _mosaic(tiles, cols)
    fig = _figure(_mosaic_size(image, extra_width=1.0), dpi)
    ax = fig.add_subplot()
    limit = float(np.abs(kernel).max()) or 1.0
    shown = ax.imshow(image, cmap=_with_blank_gaps("RdBu_r"), vmin=-limit, vmax=limit,
                      interpolation="nearest")
    fig.colorbar(shown, ax=ax, shrink=0.8)
    ax.set_title(f"{conv_layer.name}: {c_out} filters of {kh}x{kw}x{c_in}")
    if c_in > 1:
        ax.set_xlabel("filter")
        ax.set_ylabel("input channel")
        _label_tiles(ax, kh, kw, c_in, c_out)
    else:
        ax.set_axis_off()
    return _save(fig, path)


def feature_maps(model, x, layer, path, dpi=100):
    """The activations of one layer for one image, one tile per channel, each scaled to its own
    range. ``x`` is one image (no batch axis) of the model's input shape; ``layer`` is a layer's
    name, its index in ``model.layers``, or the layer itself. The layer must output images
    (height, width, channels)."""
    index = _layer_index(model, layer)
    x = np.asarray(x)
    if not model.built:
        model.build((None, *x.shape))
    expected = tuple(model.inputs[0].shape[1:])
    if len(model.inputs) != 1 or len(x.shape) != len(expected) or any(
            e is not None and e != d for e, d in zip(expected, x.shape)):
        raise ValueError(f"Expected x to be one image of shape {expected}, received shape "
                         f"{x.shape}")
    target = model.layers[index]
    output = target.output
    if not isinstance(output, KerasTensor) or len(output.shape) != 4:
        raise ValueError(f"Expected a layer that outputs (height, width, channels), received "
                         f"{target.name!r} with output shape {getattr(output, 'shape', None)}")
    out = Model(model.inputs, output).predict(x[None], verbose=0)
    maps = np.moveaxis(out[0], -1, 0).astype(np.float64)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    maps = np.divide(maps - low, span, out=np.zeros_like(maps), where=span > 0)
    image = _mosaic(maps, _grid_columns(len(maps)))
    fig = _figure(_mosaic_size(image), dpi)
    ax = fig.add_subplot()
    ax.imshow(image, cmap=_with_blank_gaps("viridis"), vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(f"{target.name}: {len(maps)} maps of {maps.shape[1]}x{maps.shape[2]}")
    ax.set_axis_off()
    return _save(fig, path)


# ---- helpers ---------------------------------------------------------------------------------

def _matplotlib():
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError('fastcnn.extras.plot needs matplotlib, an optional extra: '
                          'pip install "fastcnn[plot]"') from err
    return matplotlib


def _figure(size, dpi):
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    fig.savefig(path, dpi=fig.dpi)
    return fig


def _with_blank_gaps(name):
    """The colormap ``name``, painting NaN (the gaps between tiles) white."""
    return _matplotlib().colormaps[name].with_extremes(bad="white")


def _grid_columns(count):
    return int(np.ceil(np.sqrt(count)))


def _mosaic(tiles, cols):
    """(count, h, w) tiles laid out row by row, ``cols`` per row, one NaN pixel between them."""
    count, h, w = tiles.shape
    rows = -(-count // cols)
    image = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for t in range(count):
        r, c = divmod(t, cols)
        image[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = tiles[t]
    return image


def _mosaic_size(image, extra_width=0.0):
    """Figure inches that show the mosaic's pixels large enough to see, within screen sizes."""
    height, width = image.shape
    scale = float(np.clip(8.0 / max(height, width), 0.02, 0.5))
    return (max(width * scale, 3.0) + extra_width, max(height * scale, 2.0) + 0.8)


def _label_tiles(ax, kh, kw, rows, cols):
    """Ticks at tile centres, thinned so that the labels never crowd."""
    for axis, n, size in ((ax.xaxis, cols, kw), (ax.yaxis, rows, kh)):
        step = max(1, -(-n // 16))
        index = np.arange(0, n, step)
        axis.set_ticks(index * (size + 1) + (size - 1) / 2, [str(i) for i in index])


def _layer_index(model, layer):
    layers = getattr(model, "layers", None)
    if layers is None:
        raise ValueError(f"Expected a Sequential model, received {model!r}")
    if isinstance(layer, str):
        names = [l.name for l in layers]
        if layer not in names:
            raise ValueError(f"Expected layer to name one of the model's layers {names}, "
                             f"received layer={layer!r}")
        return names.index(layer)
    if isinstance(layer, numbers.Integral) and not isinstance(layer, bool):
        if not -len(layers) <= layer < len(layers):
            raise ValueError(f"Expected layer index in [{-len(layers)}, {len(layers)}), "
                             f"received layer={layer}")
        return int(layer) % len(layers)
    for i, candidate in enumerate(layers):
        if candidate is layer:
            return i
    raise ValueError(f"Expected layer to be a name, an index or a layer of the model, "
                     f"received layer={layer!r}")
