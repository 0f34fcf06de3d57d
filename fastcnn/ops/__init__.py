"""Keras 3's ``keras.ops`` for fastcnn: functions that run at once on NumPy arrays (the tensors
here) and record differentiable graph nodes on symbolic tensors, so that custom layers, losses
and functional models written with them train without a hand-written backward.

- ``core``: the op machinery (eager or recorded), tracing, ``Variable``, conversions;
- ``arithmetic``: broadcasting elementwise arithmetic and comparisons;
- ``reductions``: sum, mean, max, min, var, std, logsumexp, argmax...;
- ``shape``: reshape, transpose, concatenate, slicing, take...;
- ``matrix``: matmul, dot, einsum, tensordot;
- ``nn``: activations, convolutions, pooling, normalisation, cross-entropies;
- ``image``: resize.

docs/ops.md lists what is supported and what cannot be traced.
"""
from ..engine.tensor import OPERATORS
from . import image, nn
from . import loss_function  # noqa: F401 - registers the wrapper that losses.get gives functions
from .arithmetic import (
                         OPERATOR_UFUNCS,
                         abs,
                         absolute,
                         add,
                         clip,
                         divide,
                         equal,
                         exp,
                         floor,
                         greater,
                         greater_equal,
                         less,
                         less_equal,
                         log,
                         log1p,
                         logical_and,
                         logical_not,
                         logical_or,
                         maximum,
                         minimum,
                         multiply,
                         negative,
                         not_equal,
                         power,
                         round,
                         sign,
                         sqrt,
                         square,
                         subtract,
                         true_divide,
                         where,
)
from .core import Variable, convert_to_numpy, convert_to_tensor, is_tensor
from .matrix import dot, einsum, matmul, tensordot
from .nn import (
                         average_pool,
                         batch_normalization,
                         binary_crossentropy,
                         categorical_crossentropy,
                         conv,
                         conv_transpose,
                         depthwise_conv,
                         elu,
                         gelu,
                         leaky_relu,
                         log_softmax,
                         max_pool,
                         moments,
                         one_hot,
                         relu,
                         relu6,
                         sigmoid,
                         silu,
                         softmax,
                         softplus,
                         sparse_categorical_crossentropy,
                         tanh,
)
from .reductions import (
                         all,
                         amax,
                         amin,
                         any,
                         argmax,
                         argmin,
                         logsumexp,
                         max,
                         mean,
                         min,
                         prod,
                         std,
                         sum,
                         var,
)
from .shape import (
                         cast,
                         concatenate,
                         expand_dims,
                         full_like,
                         getitem,
                         ndim,
                         ones_like,
                         pad,
                         repeat,
                         reshape,
                         shape,
                         size,
                         split,
                         squeeze,
                         stack,
                         swapaxes,
                         take,
                         take_along_axis,
                         tile,
                         transpose,
                         zeros_like,
)

OPERATORS.update(OPERATOR_UFUNCS, matmul=matmul, getitem=getitem, cast=cast, absolute=abs)

__all__ = ["Variable", "abs", "absolute", "add", "all", "amax", "amin", "any", "argmax",
           "argmin", "average_pool", "batch_normalization", "binary_crossentropy", "cast",
           "categorical_crossentropy", "clip", "concatenate", "conv", "conv_transpose",
           "convert_to_numpy", "convert_to_tensor", "depthwise_conv", "divide", "dot", "einsum",
           "elu", "equal", "exp", "expand_dims", "floor", "full_like", "gelu", "greater",
           "greater_equal", "image", "is_tensor", "leaky_relu", "less", "less_equal", "log",
           "log1p", "log_softmax", "logical_and", "logical_not", "logical_or", "logsumexp",
           "matmul", "max", "max_pool", "maximum", "mean", "min", "minimum", "moments",
           "multiply", "ndim", "negative", "nn", "not_equal", "one_hot", "ones_like", "pad",
           "power", "prod", "relu", "relu6", "repeat", "reshape", "round", "shape", "sigmoid",
           "sign", "silu", "size", "softmax", "softplus", "sparse_categorical_crossentropy",
           "split", "sqrt", "square", "squeeze", "stack", "std", "subtract", "sum", "swapaxes",
           "take", "take_along_axis", "tanh", "tensordot", "tile", "transpose", "true_divide",
           "var", "where", "zeros_like"]
