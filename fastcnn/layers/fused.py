"""Steps that run two adjacent layers of a model as one, through fused kernels.

The model builds these when it compiles; the layers themselves keep their own behaviour (and
their weights and gradients), so calling a layer on its own never sees a fusion.
"""
from .._ops import conv as conv_ops
from .._ops.workspace import Workspace
from .conv import Conv2D
from .core import Dropout, Flatten
from .pooling import MaxPooling2D


class Conv2DMaxPooling2D:
    """A Conv2D (linear or relu) and the "valid" MaxPooling2D after it.

    Each image's conv output stays in per-thread scratch and only its pooling is stored, and the
    conv rows and columns that no window reads are never computed (conv2 of the MNIST net: 10x10
    of its 11x11 outputs). Backward rebuilds each image's conv gradient in scratch from the
    argmax, then runs dW and dX on it while it is still in cache.

    ``input_relu`` is set by the model when the layer before ends in relu: dX then also gets that
    relu's backward, in the same pass (the layer's own input is the relu's output).

    ``dropout``, a Dropout layer after the pooling, is applied to each image's pooled output and
    its gradient in the same passes; it draws its masks itself, so they are the ones it would
    apply on its own. This saves a pass over the pooled output each way and the layer's calls.
    """

    input_relu = False

    def __init__(self, conv, pool, dropout=None):
        self.conv, self.pool, self.dropout = conv, pool, dropout
        self.workspace = Workspace()

    @staticmethod
    def applies(conv, pool):
        return (type(conv) is Conv2D and type(pool) is MaxPooling2D
                and conv.activation in ("relu", "linear") and pool.padding == "valid")

    @staticmethod
    def takes(dropout):
        """Whether this step can apply ``dropout``, a layer after its pooling, itself."""
        return type(dropout) is Dropout

    def _args(self):
        conv, pool = self.conv, self.pool
        return dict(strides=conv.strides, padding=conv.padding, pool_size=pool.pool_size,
                    pool_strides=pool.strides, relu=conv.activation == "relu")

    def forward(self, x, training=False):
        self._x = x
        shape = (x.shape[0], *self.pool.output_shape)
        self._y, self._argmax = conv_ops.conv2d_maxpool_forward(
            x, self.conv.kernel, self.conv.bias, **self._args(),
            out=self.workspace.get("y", shape), argmax=self.workspace.get("argmax", shape, "int32"),
            dropout=self.dropout.draw_mask(training) if self.dropout else None)
        return self._y

    def backward(self, dy, need_dx=True):
        conv = self.conv
        _, dx = conv_ops.conv2d_maxpool_backward(
            self._x, dy, self._y, self._argmax, conv.kernel, **self._args(), dw=conv.grads[0],
            db=conv.grads[1] if conv.use_bias else None,
            dx=self.workspace.get("dx", self._x.shape) if need_dx else None, need_dx=need_dx,
            input_relu=self.input_relu, dropout=self.dropout.mask() if self.dropout else None)
        return dx


def plan(layers):
    """The steps that run ``layers`` in order: each layer, or a fused step for a pair, which also
    takes a Dropout right after it, or after a Flatten after it. The Flatten then runs after the
    dropout: both keep each image's values in the same row-major order, so they commute."""
    steps, i = [], 0
    while i < len(layers):
        if i + 1 < len(layers) and Conv2DMaxPooling2D.applies(layers[i], layers[i + 1]):
            after = layers[i + 2:i + 4]
            flatten = after[:1] if after and type(after[0]) is Flatten else []
            dropout = after[len(flatten):len(flatten) + 1]
            if not (dropout and Conv2DMaxPooling2D.takes(dropout[0])):
                flatten, dropout = [], []
            steps.append(Conv2DMaxPooling2D(layers[i], layers[i + 1], *dropout))
            steps.extend(flatten)
            i += 2 + len(flatten) + len(dropout)
        else:
            steps.append(layers[i])
            i += 1
    return steps
