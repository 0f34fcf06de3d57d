"""The ops room: checked calls of the kernels in ``fastcnn._ext``.

Each wrapper module here has the name of the ``_ext`` module it calls (conv, dense, pool,
activation, dropout, loss, metrics, normalization, optim, regularization, remap, distance, merge,
program). A wrapper
checks its arguments (``checks``), makes every array a kernel reads C-contiguous in one floating
dtype (copying once, never reinterpreting), allocates or checks the output buffers the kernel
writes (refusing one that overlaps an input, unless the kernel works in place: ``check_apart``),
resolves the thread count once (``threads``) and passes it to the kernel. Every wrapped
kernel has a NumPy twin with the same signature in ``fastcnn._reference``. ``workspace`` holds the
buffer pool the layers reuse across batches. Two helpers serve a kernel's operands without calling
one: ``normalization.batchnorm_partial_shape`` (the scratch a batchnorm layer keeps) and
``optim.UpdateOperands`` (the checked operands an optimizer keeps from step to step). ``partials``
says how the kernels sum weight gradients over a batch (fixed chunks, one fixed tree), and cuts
batches into the shares of data-parallel processes to match (``fastcnn.distributed``).

Private: the public name ``fastcnn.ops`` is kept for Keras's ``keras.ops`` API. The API modules
import the wrapper modules they use, e.g. ``from .._ops import conv, pool``.
"""
