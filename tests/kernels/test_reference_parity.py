"""Every kernel that fastcnn._ext exports against its NumPy twin in fastcnn._reference: the same
parameters, and the same results over a small grid of shapes, options and dtypes.

The kernels are found, not listed: a new public function in an _ext module fails here until it
has a twin of the same signature and a case below (or an entry in EXEMPT, with its reason).
"""
import importlib
import inspect
import itertools
import pkgutil
import zlib

import numpy as np
import pytest

from fastcnn import _ext
from fastcnn import _reference as ref
from conftest import (assert_close, bn_params, every_opcode_program, out_and_pad, program_inputs,
                      random_maps)

# Public functions of _ext that compute on no arrays, so have no twin.
EXEMPT = {
    "openmp_enabled": "reports whether the build has OpenMP",
    "simd_path": "reports the SIMD code path of a module's kernels",
    "can_pin": "reports whether threads can be pinned to CPUs",
    "team_cpus": "reports the CPU each thread of the kernels' team runs on",
    "pin_team": "places the kernels' threads on CPUs (tests/api/test_step_threads.py)",
    "restore_team": "places the kernels' threads on CPUs (tests/api/test_step_threads.py)",
}
# Arguments the kernel uses as scratch and the twin leaves alone.
SCRATCH = {"partial__k2c": "batch normalisation's per-chunk column sums",
           "partial__n2c": "group normalisation's per-sample channel sums",
           "partial__kp": "depthwise dW's per-chunk sums"}
# Kernels without a float64 version.
FLOAT32_ONLY = {
    "conv2d_maxpool_forward": "the fused conv + pool step trains float32 models only",
    "conv2d_maxpool_backward": "the fused conv + pool step trains float32 models only",
}
THREADS = 2


def public_functions():
    """{name: function} of every public function of every _ext module."""
    functions = {}
    for info in pkgutil.iter_modules(_ext.__path__):
        module = importlib.import_module(f"{_ext.__name__}.{info.name}")
        for name, obj in vars(module).items():
            if not name.startswith("_") and callable(obj) and not inspect.isclass(obj):
                assert name not in functions or name in EXEMPT, f"two _ext modules export {name}"
                functions[name] = obj
    return functions


def exported_kernels():
    return {name: f for name, f in public_functions().items() if name not in EXEMPT}


KERNELS = exported_kernels()


def parameters(function):
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]


def test_every_kernel_has_a_twin_with_its_signature():
    kernels = exported_kernels()  # again, to see names added after collection
    missing = sorted(name for name in kernels if not callable(getattr(ref, name, None)))
    assert not missing, f"kernels without a twin in fastcnn._reference: {missing}"
    for name, kernel in kernels.items():
        assert parameters(kernel) == parameters(getattr(ref, name)), name


def test_every_case_and_exemption_names_a_function_of_ext():
    exported = set(public_functions())
    assert set(CASES) | set(FLOAT32_ONLY) | set(EXEMPT) <= exported


# ---- case builders: each yields the argument tuples of a small grid, in signature order ------

def normal(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def unset(shape, dtype):
    """An output that the kernel must write wholly: NaN where it does not."""
    return np.full(shape, np.nan, dtype)


FLAT_SIZES = [1, 7, 1000]


def pointwise_with(*grid):
    """(forward, backward) case builders of a pointwise kernel taking extra arguments after its
    output: one tuple of them per grid point."""
    def forward(rng, dtype):
        for extra in grid:
            for n in FLAT_SIZES:
                yield normal(rng, n, dtype, 4), unset(n, dtype), *extra, THREADS

    def backward(rng, dtype):
        for extra in grid:
            for n in FLAT_SIZES:
                yield (normal(rng, n, dtype, 4), normal(rng, n, dtype), unset(n, dtype), *extra,
                       THREADS)
    return forward, backward


POINTWISE_KERNELS = {  # activation kernel: its extra arguments' grid
    "relu": [()], "sigmoid": [()], "tanh": [()],
    "general_relu": [(0.2, np.inf, 0.0), (0.0, 6.0, 0.0), (0.5, 1.5, 0.7), (0.1, 0.0, 0.0)],
    "elu": [(1.0, 1.0), (0.0, 1.0), (1.6732632423543772, 1.0507009873554805)],
    "gelu": [(False,), (True,)],
    **{name: [()] for name in ("silu", "softplus", "softsign", "hard_sigmoid", "hard_silu",
                               "mish", "exponential")},
}


def prelu_operands(rng, dtype, shape):
    p, q, r, s = shape
    return normal(rng, shape, dtype, 2), normal(rng, (q, s), dtype)


PRELU = [(1, 1, 1, 1), (2, 3, 4, 5), (300, 16, 1, 1), (2, 70, 30, 1)]  # (P, Q, R, S)


def prelu_forward(rng, dtype):
    for shape in PRELU:
        yield *prelu_operands(rng, dtype, shape), unset(shape, dtype), THREADS


def prelu_backward(rng, dtype):
    for shape, need_dx, need_dalpha in zip(PRELU * 2, [True, False] * 4, [True] * 5 + [False] * 3):
        x, alpha = prelu_operands(rng, dtype, shape)
        yield (x, alpha, normal(rng, shape, dtype), unset(shape, dtype) if need_dx else None,
               unset(alpha.shape, dtype) if need_dalpha else None, THREADS)


ROWS = [(1, 1), (5, 3), (33, 10)]  # (N, K)


def softmax_forward(rng, dtype):
    for shape in ROWS:
        yield normal(rng, shape, dtype, 30), unset(shape, dtype), THREADS


def softmax_backward(rng, dtype):
    for shape in ROWS:
        y = np.exp(normal(rng, shape, np.float64))
        y = (y / y.sum(axis=1, keepdims=True)).astype(dtype)
        yield y, normal(rng, shape, dtype), unset(shape, dtype), THREADS


def dropout_pass(rng, dtype):
    for n, first in ((1, 0), (33, 0), (1000, 0), (40, 2**32 + 7)):
        for rate in (0.0, 0.5):
            yield normal(rng, n, dtype), 2**63 + 12345, rate, unset(n, dtype), THREADS, first


def loss_case(predictions, target):
    """A loss kernel's grid: logits, or probabilities with some beyond the clip; targets of the
    kind ``target`` names; the outputs."""
    def build(rng, dtype):
        for n, k in ROWS:
            y_pred = normal(rng, (n, k), dtype, 3)
            if predictions == "probabilities":
                y_pred = rng.random((n, k)).astype(dtype)
                y_pred.flat[::7], y_pred.flat[3::11] = 0, 1
            labels = rng.integers(0, k, n)
            targets = {"labels": lambda: labels, "one_hot": lambda: np.eye(k, dtype=dtype)[labels],
                       "probabilities": lambda: rng.random((n, k)).astype(dtype),
                       "any": lambda: normal(rng, (n, k), dtype)}
            yield y_pred, targets[target](), unset((n, k), dtype), unset(n, dtype), 1 / n, THREADS
    return build


def loss_with_options(predictions, target, *option_sets):
    """loss_case once per set of options, which the kernel takes after its outputs."""
    def build(rng, dtype):
        for y_pred, y_true, grad, loss, scale, threads in loss_case(predictions, target)(rng, dtype):
            for options in option_sets:
                yield y_pred, y_true, grad, loss, *options, scale, threads
    return build


def categorical_focal_crossentropy(rng, dtype):
    """Probabilities (some clipped) and logits; one alpha for all classes or one per class;
    no focus (plain cross-entropy), whole and fractional gamma."""
    for from_logits in (False, True):
        case = loss_case("logits" if from_logits else "probabilities", "probabilities")
        for y_pred, y_true, grad, loss, scale, threads in case(rng, dtype):
            k = y_pred.shape[1]
            for alpha, gamma in ((np.ones(k), 0.0), (np.full(k, 0.25), 2.0),
                                 (rng.uniform(0.1, 1, k), 0.5)):
                yield (y_pred, y_true, alpha.astype(dtype), grad, loss, gamma, from_logits, scale,
                       threads)


BN_SHAPES = [(1, 3), (7, 5), (300, 17)]  # (M, C)


# relu, and its cap: none, or one that about a tenth of the normalised values reach
BN_RELUS = [(False, np.inf)] * 3 + [(True, np.inf), (True, 1.5), (True, np.inf)]


def _two_alike(sums):
    """``across`` of two processes with the same share: the total is twice this one's."""
    sums = np.asarray(sums)
    sums *= 2


def batchnorm_forward_training(rng, dtype):
    """The kernel's own statistics, then (moments_given) those summed from each chunk's moments
    in partial, as a conv forward leaves them."""
    for (m, c), residual, relu, across, given in zip(
            BN_SHAPES * 4, [False, True] * 6, BN_RELUS * 2, ([None] * 5 + [_two_alike]) * 2,
            [False] * 6 + [True] * 6):
        x = normal(rng, (m, c), dtype, 2) + 3
        res = normal(rng, (m, c), dtype) if residual else None
        partial = ref.normalization._chunk_moments(x, 3) if given else np.empty((-(-m // 3), 2, c))
        yield (x, res, *bn_params(rng, c, dtype), unset((m, c), dtype), unset(c, dtype),
               unset(c, dtype), partial, 3, given, across, 0.9, 1e-3, *relu, THREADS)


def batchnorm_forward_inference(rng, dtype):
    for (m, c), residual, relu in zip(BN_SHAPES * 2, [False, True] * 3, BN_RELUS):
        res = normal(rng, (m, c), dtype) if residual else None
        yield (normal(rng, (m, c), dtype, 2) + 3, res, *bn_params(rng, c, dtype),
               unset((m, c), dtype), unset(c, dtype), 1e-3, *relu, THREADS)


def batchnorm_apply(rng, dtype):
    for (m, c), residual, relu in zip(BN_SHAPES * 2, [False, True] * 3, BN_RELUS):
        res = normal(rng, (m, c), dtype) if residual else None
        gamma, beta = bn_params(rng, c, dtype)[:2]
        yield (normal(rng, (m, c), dtype, 2) + 3, res, gamma, beta, normal(rng, c, dtype) + 3,
               rng.uniform(0.5, 2, c).astype(dtype), unset((m, c), dtype), *relu, THREADS)


def batchnorm_backward(rng, dtype):
    for (m, c), batch_stats, want_dx, relu in zip(BN_SHAPES * 4, [True] * 6 + [False] * 6,
                                                  [True, False] * 6, [False] * 3 + [True] * 9):
        x = normal(rng, (m, c), dtype, 2) + 3
        mean, inv_std = x.mean(axis=0), rng.uniform(0.5, 2, c).astype(dtype)
        gamma, beta = bn_params(rng, c, dtype)[:2]
        res = normal(rng, (m, c), dtype) if relu and want_dx else None
        dy2 = normal(rng, (m, c), dtype) if batch_stats and relu else None
        dx = unset((m, c), dtype) if want_dx else None
        dres = unset((m, c), dtype) if res is not None else None
        yield (x, normal(rng, (m, c), dtype), dy2, res, gamma, beta, mean, inv_std, dx,
               unset(c, dtype), unset(c, dtype), dres, np.empty((-(-m // 3), 2, c)), 3,
               _two_alike if batch_stats and relu else None, relu,
               1.5 if relu and m % 2 else np.inf, batch_stats, THREADS,
               np.full((2, c), np.nan) if not want_dx else None)  # the means dx is made with


def batchnorm_fold(rng, dtype):
    for (k, c), with_bias in zip([(27, 4), (1, 1), (300, 17)], [True, False, True]):
        bias = normal(rng, c, dtype) if with_bias else None
        yield (normal(rng, (k, c), dtype), bias, *bn_params(rng, c, dtype), unset((k, c), dtype),
               unset(c, dtype), 1e-3, THREADS)


LN_SHAPES = [(1, 1), (7, 5), (300, 17)]  # (R, K)


def layernorm_forward(rng, dtype):
    for r, k in LN_SHAPES:
        gamma, beta = bn_params(rng, k, dtype)[:2]
        yield (normal(rng, (r, k), dtype, 2) + 3, gamma, beta, unset((r, k), dtype),
               unset(r, dtype), unset(r, dtype), 1e-3, THREADS)


def layernorm_backward(rng, dtype):
    for (r, k), want_dx in zip(LN_SHAPES * 2, [True, False] * 3):
        x = normal(rng, (r, k), dtype, 2) + 3
        mean, inv_std = x.mean(axis=1), rng.uniform(0.5, 2, r).astype(dtype)
        dx = unset((r, k), dtype) if want_dx else None
        yield (x, normal(rng, (r, k), dtype), bn_params(rng, k, dtype)[0], mean, inv_std, dx,
               unset(k, dtype), unset(k, dtype), np.empty((3, 2, k)), THREADS)


GN_SHAPES = [((1, 1, 1), 1), ((2, 6, 4), 2), ((3, 20, 12), 4), ((2, 5, 6), 6)]  # (N, S, C), G


def groupnorm_forward(rng, dtype):
    for (n, s, c), g in GN_SHAPES:
        gamma, beta = bn_params(rng, c, dtype)[:2]
        yield (normal(rng, (n, s, c), dtype, 2) + 3, gamma, beta, unset((n, s, c), dtype),
               unset((n, g), dtype), unset((n, g), dtype), np.empty((n, 2, c)), g, 1e-3, THREADS)


def groupnorm_backward(rng, dtype):
    for ((n, s, c), g), want_dx in zip(GN_SHAPES * 2, [True, False] * 4):
        x = normal(rng, (n, s, c), dtype, 2) + 3
        mean = x.reshape(n, s, g, c // g).mean(axis=(1, 3)).astype(dtype)
        dx = unset((n, s, c), dtype) if want_dx else None
        yield (x, normal(rng, (n, s, c), dtype), bn_params(rng, c, dtype)[0], mean,
               rng.uniform(0.5, 2, (n, g)).astype(dtype), dx, unset(c, dtype), unset(c, dtype),
               np.empty((n, 2, c)), g, THREADS)


SPATIAL = [(1, 1, 1), (2, 5, 3), (4, 30, 33)]  # (N, S, C)


def spatial_dropout_forward(rng, dtype):
    for shape in SPATIAL:
        for rate in (0.0, 0.5):
            yield (normal(rng, shape, dtype), 2**63 + 99, rate, unset(shape, dtype),
                   unset((shape[0], shape[2]), dtype), THREADS)


def spatial_dropout_backward(rng, dtype):
    for n, s, c in SPATIAL:
        keep = np.where(rng.random((n, c)) < 0.5, 2.0, 0.0).astype(dtype)
        yield normal(rng, (n, s, c), dtype), keep, unset((n, s, c), dtype), THREADS


def gaussian_pass(rng, dtype):
    for n in (1, 33, 5000):
        for stddev in (0.0, 0.7):
            yield normal(rng, n, dtype), 2**64 - 5, stddev, unset(n, dtype), THREADS


UPDATE_SIZES = [4097, 0, 1, 10]  # a model's tensors, updated in one call


def tensors(rng, dtype, scale=1.0, shift=0.0):
    return [(rng.random(n) * scale + shift).astype(dtype) for n in UPDATE_SIZES]


# The gradient transforms every update kernel takes: none; a scale per tensor (the clipping
# norms'), clipping, and weight decay with one tensor left out.
TRANSFORMS = [(None, 0.0, None),
              (np.array([0.5, 1.0, 2.0, 0.25]), 0.3, np.array([0.01, 0.0, 0.02, 0.01]))]


def sgd_update(rng, dtype):
    for (momentum, nesterov), transforms in zip(((0.0, False), (0.9, False), (0.9, True)),
                                                TRANSFORMS * 2):
        yield (tensors(rng, dtype), tensors(rng, dtype), tensors(rng, dtype, 0.1), 0.1, momentum,
               nesterov, *transforms, THREADS)


def adam_update(rng, dtype):
    none = [None] * len(UPDATE_SIZES)
    for amsgrad, transforms in zip((False, True), TRANSFORMS):
        yield (tensors(rng, dtype), tensors(rng, dtype), tensors(rng, dtype, 0.1),
               tensors(rng, dtype, 0.1), tensors(rng, dtype, 0.1) if amsgrad else none,
               1e-2, 0.9, 0.999, 1e-7, 3, *transforms, THREADS)


def rmsprop_update(rng, dtype):
    none = [None] * len(UPDATE_SIZES)
    for (momentum, centered), transforms in zip(((0.0, False), (0.5, True)), TRANSFORMS):
        # mean_square above mean_grad^2, as it stays in training
        yield (tensors(rng, dtype), tensors(rng, dtype), tensors(rng, dtype, 0.1, 1),
               tensors(rng, dtype, 0.1) if momentum else none,
               tensors(rng, dtype, 0.1) if centered else none,
               0.01, 0.9, momentum, 1e-7, centered, *transforms, THREADS)


def nadam_update(rng, dtype):
    for step, transforms in zip((1, 4), TRANSFORMS):
        u_product = np.prod([0.9 * (1 - 0.5 * 0.96 ** k) for k in range(1, step + 1)])
        yield (tensors(rng, dtype), tensors(rng, dtype), tensors(rng, dtype, 0.1),
               tensors(rng, dtype, 0.1), 1e-2, 0.9, 0.999, 1e-7, step, u_product, *transforms,
               THREADS)


def adagrad_update(rng, dtype):
    for transforms in TRANSFORMS:
        yield (tensors(rng, dtype), tensors(rng, dtype), tensors(rng, dtype, 0.1, 0.1), 0.01,
               1e-7, *transforms, THREADS)


def adadelta_update(rng, dtype):
    for transforms in TRANSFORMS:
        yield (tensors(rng, dtype), tensors(rng, dtype), tensors(rng, dtype, 0.1),
               tensors(rng, dtype, 0.1), 1.0, 0.95, 1e-7, *transforms, THREADS)


def adamax_update(rng, dtype):
    for transforms in TRANSFORMS:
        yield (tensors(rng, dtype), tensors(rng, dtype), tensors(rng, dtype, 0.1),
               tensors(rng, dtype, 0.1), 1e-2, 0.9, 0.999, 1e-7, 3, *transforms, THREADS)


def lion_update(rng, dtype):
    for transforms in TRANSFORMS:
        yield (tensors(rng, dtype), tensors(rng, dtype, 2.0, -1.0), tensors(rng, dtype, 0.1),
               1e-2, 0.9, 0.99, *transforms, THREADS)


def accumulate_gradients(rng, dtype):
    for mode in (0, 1, 2):
        yield tensors(rng, dtype), tensors(rng, dtype), mode, 4, THREADS


def moving_average(rng, dtype):
    for momentum in (0.0, 0.99):
        yield tensors(rng, dtype), tensors(rng, dtype), momentum, THREADS


def axpy(rng, dtype):
    for n in FLAT_SIZES:
        yield normal(rng, n, dtype), normal(rng, n, dtype), 0.3, THREADS


def add_sign(rng, dtype):
    for n in FLAT_SIZES:
        x = normal(rng, n, dtype)
        x[::5] = 0
        yield x, normal(rng, n, dtype), 0.3, THREADS


def chunk_sums(rng, dtype):
    for n, chunks in ((1, 1), (10, 3), (1000, 7)):
        for absolute in (False, True):
            yield normal(rng, n, dtype), unset(chunks, np.float64), absolute, THREADS


def add_forward(rng, dtype):
    for n in FLAT_SIZES:
        for k in (1, 3):
            yield [normal(rng, n, dtype) for _ in range(k)], unset(n, dtype), THREADS


COLUMNS = [(1, (1,)), (3, (2, 0, 5)), (40, (7, 64, 1))]  # outer, the parts' widths


def concatenate_forward(rng, dtype):
    for outer, widths in COLUMNS:
        yield ([normal(rng, (outer, w), dtype) for w in widths],
               unset((outer, sum(widths)), dtype), THREADS)


def concatenate_backward(rng, dtype):
    for outer, widths in COLUMNS:
        yield (normal(rng, (outer, sum(widths)), dtype),
               [unset((outer, w), dtype) for w in widths], THREADS)


# (input shapes, op): equal shapes, broadcasting along leading, middle and last axes, a
# transpose (copy), and ties between inputs for maximum and minimum
ELEMENTWISE = [([(3, 4, 5), (3, 4, 5)], "add"), ([(2, 1, 5), (2, 3, 1), (5,)], "multiply"),
               ([(1, 300), (4, 300)], "subtract"), ([(6, 1, 7), (6, 5, 7), (1, 5, 7)], "average"),
               ([(3, 6), (3, 1), (1, 6)], "maximum"), ([(4, 3, 2), (3, 1)], "minimum"),
               ([(2, 5, 3), (5, 1)], "divide")]


def _broadcast_case(rng, dtype, shapes, op):
    from fastcnn._ops.merge import broadcast_layout
    out_shape, shape, strides = broadcast_layout(shapes)
    inputs = [rng.integers(-3, 4, s).astype(dtype).reshape(-1) if op in ("maximum", "minimum")
              else normal(rng, s, dtype).reshape(-1) for s in shapes]
    return out_shape, shape, strides, inputs


def elementwise_forward(rng, dtype):
    for shapes, op in ELEMENTWISE:
        out_shape, shape, strides, inputs = _broadcast_case(rng, dtype, shapes, op)
        yield op, inputs, shape, strides, unset(int(np.prod(out_shape)), dtype), THREADS
    x = normal(rng, (3, 4, 5), dtype)  # the transpose (2, 0, 1)
    yield ("copy", [x.reshape(-1)], np.array([5, 3, 4], np.intp),
           np.array([[1, 20, 5]], np.intp), unset(60, dtype), THREADS)


def elementwise_backward(rng, dtype):
    for shapes, op in ELEMENTWISE:
        out_shape, shape, strides, inputs = _broadcast_case(rng, dtype, shapes, op)
        for index in range(len(shapes)):
            yield (op, normal(rng, int(np.prod(out_shape)), dtype), inputs, shape, strides,
                   index, unset(inputs[index].size, dtype), THREADS)


def program_run(rng, dtype):
    program = every_opcode_program(dtype)
    for rows, cols in [(7, 3), (5, 37), (3, 300), (1, 1), (40, 1)]:
        inputs = program_inputs(rng, program, rows, cols)
        outputs = [np.zeros(rows * cols, bool) if kind == "mask" else
                   unset(rows * cols if kind == "full" else rows, dtype)
                   for kind in program.output_kinds]
        yield (program.code, program.constants, inputs, outputs, rows, cols,
               program.n_registers, THREADS)


REMAPS = [((2, 5, 6, 3), (7, 4)), ((1, 1, 1, 1), (3, 2))]  # (N, H, W, C), (OH, OW)


def remap2d_forward(rng, dtype):
    for (n, h, w, c), (oh, ow) in REMAPS:
        yield (normal(rng, (n, h, w, c), dtype), random_maps(rng, n, oh, h),
               random_maps(rng, n, ow, w), 1.5, unset((n, oh, ow, c), dtype), THREADS)


def remap2d_backward(rng, dtype):
    for (n, h, w, c), (oh, ow) in REMAPS:
        yield (normal(rng, (n, oh, ow, c), dtype), random_maps(rng, n, oh, h),
               random_maps(rng, n, ow, w), unset((n, h, w, c), dtype), THREADS)


AFFINES = [((2, 5, 6, 3), mode, bilinear) for mode in range(4) for bilinear in (False, True)]


def affine_transforms(rng, n):
    """n random rotations with zoom and shift: coordinates fall inside, near and far outside."""
    angle, zoom = rng.uniform(-3, 3, n), rng.uniform(0.5, 1.5, n)
    return np.stack([zoom * np.cos(angle), -zoom * np.sin(angle), rng.uniform(-8, 8, n),
                     zoom * np.sin(angle), zoom * np.cos(angle), rng.uniform(-8, 8, n)], axis=1)


def affine2d_forward(rng, dtype):
    for shape, mode, bilinear in AFFINES:
        yield (normal(rng, shape, dtype), affine_transforms(rng, shape[0]), mode, bilinear, 0.5,
               unset(shape, dtype), THREADS)


def affine2d_backward(rng, dtype):
    for shape, mode, bilinear in AFFINES:
        yield (normal(rng, shape, dtype), affine_transforms(rng, shape[0]), mode, bilinear,
               unset(shape, dtype), THREADS)


# (N, H, W, C), size, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio
RESIZES = [((2, 5, 7, 3), (9, 4), "bilinear", False, False),
           ((1, 6, 4, 2), (3, 5), "nearest", False, False),
           ((2, 8, 5, 1), (4, 4), "bilinear", True, False),
           ((1, 4, 9, 2), (6, 6), "bilinear", False, True)]


def resize2d_forward(rng, dtype):
    from fastcnn._ops.resize import resize_maps
    for (n, h, w, c), size, interpolation, crop, pad in RESIZES:
        rows, cols = resize_maps((h, w), size, interpolation, crop, pad)
        yield (normal(rng, (n, h, w, c), dtype), rows.taps, rows.weights[np.dtype(dtype)],
               cols.taps, cols.weights[np.dtype(dtype)], 1.5, unset((n, *size, c), dtype), THREADS)


def resize2d_backward(rng, dtype):
    from fastcnn._ops.resize import resize_maps
    for (n, h, w, c), size, interpolation, crop, pad in RESIZES:
        rows, cols = resize_maps((h, w), size, interpolation, crop, pad)
        yield (normal(rng, (n, *size, c), dtype), rows.starts, rows.sources,
               rows.shares[np.dtype(dtype)], cols.starts, cols.sources, cols.shares[np.dtype(dtype)],
               unset((n, h, w, c), dtype), THREADS)


INTENSITIES = [((2, 6, 3), -0.5, 0.7), ((3, 1, 1), -np.inf, np.inf)]  # (N, P, C), low, high


def intensity_forward(rng, dtype):
    for (n, p, c), low, high in INTENSITIES:
        yield (normal(rng, (n, p, c), dtype), normal(rng, (n, c), dtype),
               np.broadcast_to(normal(rng, (1, c), dtype), (n, c)), low, high,
               unset((n, p, c), dtype), THREADS)


def intensity_backward(rng, dtype):
    for (n, p, c), low, high in INTENSITIES:
        yield (normal(rng, (n, p, c), dtype), normal(rng, (n, p, c), dtype),
               normal(rng, (n, c), dtype), normal(rng, (n, c), dtype), low, high,
               normal(rng, (n, c), dtype), unset((n, p, c), dtype), THREADS)


def channel_means(rng, dtype):
    for (n, p, c), _, _ in INTENSITIES:
        yield normal(rng, (n, p, c), dtype), unset((n, c), dtype), THREADS


POOLS = [((2, 6, 6, 3), (2, 2), (2, 2), "valid"), ((1, 7, 5, 1), (2, 2), (2, 2), "same"),
         ((1, 11, 7, 2), (2, 3), (3, 2), "same")]  # x's shape, pool, strides, padding


def pool_geometry(x_shape, pool, strides, padding):
    """The pooled shape and the window arguments (pool_h, pool_w, stride_h, stride_w, pad_top,
    pad_left)."""
    (oh, top), (ow, left) = (out_and_pad(x_shape[1 + i], pool[i], strides[i], padding)
                             for i in range(2))
    return (x_shape[0], oh, ow, x_shape[3]), (*pool, *strides, top, left)


def max_pooled(x, window):
    """The pooled output and argmax of x, from the twin."""
    out_shape = pool_geometry(x.shape, *window)[0]
    out, argmax = np.empty(out_shape, x.dtype), np.empty(out_shape, np.int32)
    ref.maxpool2d_forward(x, out, argmax, *pool_geometry(x.shape, *window)[1], 1)
    return out, argmax


def maxpool2d_forward(rng, dtype):
    for x_shape, *window in POOLS:
        out_shape, geometry = pool_geometry(x_shape, *window)
        yield (normal(rng, x_shape, dtype), unset(out_shape, dtype),
               np.full(out_shape, -7, np.int32), *geometry, THREADS)


def maxpool_backward(relu):
    def build(rng, dtype):
        for x_shape, *window in POOLS:
            x = np.maximum(normal(rng, x_shape, dtype), 0) if relu else normal(rng, x_shape, dtype)
            out, argmax = max_pooled(x, window)
            dy = normal(rng, out.shape, dtype)
            yield (dy, out, argmax, unset(x_shape, dtype), THREADS) if relu else \
                (dy, argmax, unset(x_shape, dtype), THREADS)
    return build


def window_forward(rng, dtype):
    for x_shape, *window in POOLS:
        out_shape, geometry = pool_geometry(x_shape, *window)
        yield normal(rng, x_shape, dtype), unset(out_shape, dtype), *geometry, THREADS


def window_backward(rng, dtype):
    for x_shape, *window in POOLS:
        out_shape, geometry = pool_geometry(x_shape, *window)
        yield normal(rng, out_shape, dtype), unset(x_shape, dtype), *geometry, THREADS


CONVS = [  # (n, h, w, c_in, c_out), kernel, strides, padding, bias, relu
    ((2, 9, 7, 1, 5), (1, 1), (1, 1), "valid", True, False),
    ((2, 9, 7, 3, 16), (3, 3), (2, 2), "same", True, True),
    ((1, 6, 5, 8, 37), (2, 3), (2, 1), "same", False, True),
    ((2, 8, 10, 5, 70), (3, 3), (2, 2), "valid", False, False),
    ((2, 7, 6, 6, 20), (3, 3), (1, 1), "same", True, False),  # dX as the forward
]
# relu 2: the forward kernels' relu6 (capped at 6; outputs of these sizes pass 6 often)
CONVS_RELU6 = [((2, 9, 7, 3, 16), (3, 3), (1, 1), "same", True, 2),
               ((1, 6, 5, 8, 37), (2, 3), (2, 1), "same", False, 2)]


def conv_operands(rng, dtype, case):
    """x, w, bias (or None), dy, the geometry (stride_h, stride_w, pad_top, pad_left), relu."""
    (n, h, w, ci, co), (kh, kw), (sh, sw), padding, bias, relu = case
    (oh, pt), (ow, pl) = out_and_pad(h, kh, sh, padding), out_and_pad(w, kw, sw, padding)
    return (normal(rng, (n, h, w, ci), dtype), normal(rng, (kh, kw, ci, co), dtype),
            normal(rng, co, dtype) if bias else None, normal(rng, (n, oh, ow, co), dtype),
            (sh, sw, pt, pl), relu)


# Rows per chunk of conv2d_forward's moments for each of CONVS (None: no moments), as a
# fraction or a multiple of an output image's pixels, and a case whose last chunk is short.
CONV_MOMENTS = [1 / 3, 2, None, 1]
CONV_SHORT_CHUNK = ((3, 6, 6, 4, 8), (3, 3), (1, 1), "same", False, False)


def conv2d_forward_cases(rng, dtype):
    for case, chunk in zip(CONVS + [CONV_SHORT_CHUNK] + CONVS_RELU6,
                           CONV_MOMENTS + [2] + [None] * len(CONVS_RELU6)):
        x, w, bias, dy, geometry, relu = conv_operands(rng, dtype, case)
        n, oh, ow, co = dy.shape
        rows = 1 if chunk is None else int(oh * ow * chunk)
        moments = None if chunk is None else np.full((-(-n * oh * ow // rows), 2, co), np.nan)
        yield x, w, bias, unset(dy.shape, dtype), moments, *geometry, relu, rows, THREADS
    for case in CONVS + CONVS_RELU6:  # a residual added before the activation
        x, w, bias, dy, geometry, relu = conv_operands(rng, dtype, case)
        yield (x, w, bias, unset(dy.shape, dtype), None, *geometry, relu, 1, THREADS,
               normal(rng, dy.shape, dtype))


def conv2d_backward_input_cases(rng, dtype):
    yield from backward_input_cases(CONVS, conv_operands)(rng, dtype)
    for case in CONVS:  # x a relu's output, whose backward dX applies too
        x, w, _, dy, geometry, _ = conv_operands(rng, dtype, case)
        yield dy, w, unset(x.shape, dtype), *geometry, THREADS, np.maximum(x, 0)


def forward_cases(cases, operands):
    """A convolution forward kernel's grid: operands(rng, dtype, case) gives x, w, bias (or
    None), dy, the geometry arguments and relu of each case."""
    def build(rng, dtype):
        for case in cases:
            x, w, bias, dy, geometry, relu = operands(rng, dtype, case)
            yield x, w, bias, unset(dy.shape, dtype), *geometry, relu, THREADS
    return build


def backward_input_cases(cases, operands):
    def build(rng, dtype):
        for case in cases:
            x, w, _, dy, geometry, _ = operands(rng, dtype, case)
            yield dy, w, unset(x.shape, dtype), *geometry, THREADS
    return build


def conv2d_backward_cases(rng, dtype):
    """dW (db where the case has a bias) and dX in one pass, x a relu's output or not; then
    with a batch normalisation of the output (relu, linear, relu6) whose dx the kernel makes,
    and dX not asked for in one case."""
    for case, input_relu in zip(CONVS, itertools.cycle((False, True))):
        x, w, bias, dy, geometry, _ = conv_operands(rng, dtype, case)
        db = None if bias is None else unset(bias.shape, dtype)
        yield (np.maximum(x, 0) if input_relu else x, dy, w, unset(w.shape, dtype), db,
               unset(x.shape, dtype), *geometry, input_relu, THREADS)
    for case, (relu, cap), need_dx in zip(CONVS, [(True, np.inf), (False, np.inf), (True, 6.0)],
                                         (True, True, False)):
        x, w, bias, dy, geometry, _ = conv_operands(rng, dtype, case)
        c = dy.shape[-1]
        z = normal(rng, dy.shape, dtype)
        stats = [normal(rng, c, dtype) * 0.3, np.abs(normal(rng, c, dtype)) + 0.5,
                 np.abs(normal(rng, c, dtype)) + 0.5, normal(rng, c, dtype)]
        yield (x, dy, w, unset(w.shape, dtype), None,
               unset(x.shape, dtype) if need_dx else None, *geometry, False, THREADS, z, *stats,
               normal(rng, (2, c), np.float64) * 0.1, relu, cap)


def backward_weight_cases(cases, operands, scratch=None):
    """The dW kernel's grid; ``scratch(w, dy, dtype)``, when given, is the scratch argument
    that follows db."""
    def build(rng, dtype):
        for case in cases:
            x, w, bias, dy, geometry, _ = operands(rng, dtype, case)
            db = None if bias is None else unset(bias.shape, dtype)
            extra = () if scratch is None else (scratch(w, dy, dtype),)
            yield x, dy, unset(w.shape, dtype), db, *extra, *geometry, THREADS
    return build


GENERAL_CONVS = [  # (n, h, w, c_in, c_out), kernel, strides, pads, dilation, groups, bias, relu
    ((2, 9, 8, 4, 6), (3, 3), (1, 1), (2, 2), (2, 2), 2, True, True),
    ((2, 7, 9, 6, 9), (2, 3), (2, 1), (1, 0), (1, 1), 3, False, False),
    ((2, 5, 6, 32, 24), (1, 1), (1, 1), (0, 0), (1, 1), 2, True, False),  # parts' dX as forward
    ((1, 8, 7, 3, 17), (3, 2), (1, 1), (0, 1), (3, 1), 1, True, False),
]


def general_conv_operands(rng, dtype, case):
    """x, w (c_in / groups inputs), bias (or None), dy, the geometry (strides, pads, dilation,
    groups), relu."""
    (n, h, w, ci, co), (kh, kw), (sh, sw), (pt, pl), (dh, dw), groups, bias, relu = case
    oh = (h + 2 * pt - (kh - 1) * dh - 1) // sh + 1
    ow = (w + 2 * pl - (kw - 1) * dw - 1) // sw + 1
    return (normal(rng, (n, h, w, ci), dtype), normal(rng, (kh, kw, ci // groups, co), dtype),
            normal(rng, co, dtype) if bias else None, normal(rng, (n, oh, ow, co), dtype),
            (sh, sw, pt, pl, dh, dw, groups), relu)


def transpose_cases(rng, dtype):
    """Transposed convolutions as the convolutions from their outputs to their inputs: plain
    ones and a dilated one (groups 1), yielding x, w (kh, kw, filters, c_in), bias, out's shape,
    the geometry (strides, pads, dilation) and relu."""
    for case in CONVS + GENERAL_CONVS[3:]:
        if len(case) == 6:
            out, w, bias, x, (sh, sw, pt, pl), relu = conv_operands(rng, dtype, case)
            geometry = (sh, sw, pt, pl, 1, 1)
        else:
            out, w, bias, x, geometry, relu = general_conv_operands(rng, dtype, case)
            geometry = geometry[:-1]
        bias = None if bias is None else normal(rng, w.shape[2], dtype)  # one per filter
        yield x, w, bias, out.shape, geometry, relu


def conv2d_transpose_forward(rng, dtype):
    for x, w, bias, out_shape, geometry, relu in transpose_cases(rng, dtype):
        yield x, w, bias, unset(out_shape, dtype), *geometry, relu, THREADS


def conv2d_transpose_backward_weight(rng, dtype):
    for x, w, bias, out_shape, geometry, _ in transpose_cases(rng, dtype):
        db = None if bias is None else unset(bias.shape, dtype)
        yield x, normal(rng, out_shape, dtype), unset(w.shape, dtype), db, *geometry, THREADS


# conv case, pool, pool strides, dropout (seed, rate, first image): pools that tile the conv
# output and ones that overlap or leave gaps
FUSED = [(CONVS[0], (2, 2), (2, 2), (0, 0.0, 0)), (CONVS[1], (3, 3), (2, 2), (5, 0.5, 3)),
         (CONVS[3], (2, 2), (1, 1), (0, 0.0, 0))]


def fused_operands(rng, dtype, case):
    """The conv operands with a bias, the pooled shape and the pool arguments."""
    conv_case, pool, pool_strides, dropout = case
    x, w, _, dz, geometry, relu = conv_operands(rng, dtype, conv_case)
    (n, oh, ow, co), (ph, pw), (psh, psw) = dz.shape, pool, pool_strides
    pooled = (n, (oh - ph) // psh + 1, (ow - pw) // psw + 1, co)
    return x, w, normal(rng, co, dtype), pooled, geometry, relu, (*pool, *pool_strides), dropout


def conv2d_maxpool_forward(rng, dtype):
    for case in FUSED:
        x, w, bias, pooled, geometry, relu, pool, dropout = fused_operands(rng, dtype, case)
        yield (x, w, bias, unset(pooled, dtype), np.full(pooled, -7, np.int32), *geometry, relu,
               *pool, THREADS, *dropout)


def conv2d_maxpool_backward(rng, dtype):
    for case, input_relu, need_dx in zip(FUSED, (False, True, False), (True, True, False)):
        x, w, bias, pooled, geometry, relu, pool, dropout = fused_operands(rng, dtype, case)
        out, argmax = np.empty(pooled, dtype), np.empty(pooled, np.int32)
        ref.conv2d_maxpool_forward(x, w, bias, out, argmax, *geometry, relu, *pool, 1, *dropout)
        dx = unset(x.shape, dtype) if need_dx else None
        yield (x, normal(rng, pooled, dtype), out, argmax, w, unset(w.shape, dtype),
               unset(bias.shape, dtype), dx, *geometry, relu, *pool, input_relu, THREADS,
               *dropout)


# (n, h, w, c, dm), kernel, strides, dilation, padding, bias, relu
DEPTHWISE = [
    ((2, 7, 6, 5, 1), (3, 3), (1, 1), (1, 1), "same", True, False),
    ((2, 9, 8, 70, 1), (3, 3), (2, 2), (1, 1), "valid", False, True),
    ((1, 9, 8, 3, 3), (3, 2), (1, 1), (2, 3), "same", True, True),
]
DEPTHWISE_RELU6 = [((2, 9, 8, 70, 1), (3, 3), (1, 1), (1, 1), "same", True, 2),
                   ((1, 9, 8, 3, 3), (3, 3), (1, 1), (1, 1), "same", False, 2)]


def depthwise_forward_cases(rng, dtype):
    """The grid, then its linear cases again with moments, in chunks of a third of an output
    image (rounded down to a divisor) and of two images, the last one short."""
    yield from forward_cases(DEPTHWISE + DEPTHWISE_RELU6, depthwise_operands)(rng, dtype)
    for case in DEPTHWISE:
        x, w, bias, dy, geometry, _ = depthwise_operands(rng, dtype, case)
        n, oh, ow, co = dy.shape
        for rows in (oh * ow // max(d for d in (1, 2, 3) if oh * ow % d == 0), 2 * oh * ow):
            yield (x, w, bias, unset(dy.shape, dtype), *geometry, 0, THREADS,
                   np.full((-(-n * oh * ow // rows), 2, co), np.nan), rows)


def depthwise_operands(rng, dtype, case):
    """x, w, bias (or None), dy, the geometry (strides, dilation, pad_top, pad_left), relu."""
    (n, h, w, c, dm), (kh, kw), (sh, sw), (rh, rw), padding, bias, relu = case
    (oh, pt), (ow, pl) = (out_and_pad(size, (k - 1) * r + 1, s, padding)
                          for size, k, s, r in ((h, kh, sh, rh), (w, kw, sw, rw)))
    return (normal(rng, (n, h, w, c), dtype), normal(rng, (kh, kw, c, dm), dtype),
            normal(rng, c * dm, dtype) if bias else None, normal(rng, (n, oh, ow, c * dm), dtype),
            (sh, sw, rh, rw, pt, pl), relu)


DENSE = [(1, 1, 1, True, False), (5, 3, 17, False, True), (9, 40, 15, True, True)]


def dense_operands(rng, dtype, n, k, o, bias):
    return (normal(rng, (n, k), dtype), normal(rng, (k, o), dtype),
            normal(rng, o, dtype) if bias else None, normal(rng, (n, o), dtype))


def dense_forward(rng, dtype):
    for n, k, o, bias, relu in DENSE:
        x, w, b, _ = dense_operands(rng, dtype, n, k, o, bias)
        yield x, w, b, unset((n, o), dtype), relu, THREADS


def dense_backward_input(rng, dtype):
    for n, k, o, bias, _ in DENSE:
        _, w, _, dy = dense_operands(rng, dtype, n, k, o, bias)
        yield dy, w, unset((n, k), dtype), THREADS


def dense_backward_weight(rng, dtype):
    for n, k, o, bias, _ in DENSE:
        x, _, _, dy = dense_operands(rng, dtype, n, k, o, bias)
        yield x, dy, unset((k, o), dtype), unset(o, dtype) if bias else None, THREADS


def pairwise_distances(rng, dtype):
    for (n, d, m), l1 in zip([(1, 1, 1), (3, 5, 7), (5, 2, 300), (67, 300, 70)],
                             [True, False] * 2):
        yield normal(rng, (n, d), dtype), normal(rng, (d, m), dtype), unset((n, m), dtype), l1, \
            THREADS


def k_smallest(rng, dtype):
    dist = rng.integers(0, 6, (37, 30)).astype(dtype)  # ties, and NaN sorting last
    dist[3, ::7], dist[4] = np.nan, np.nan
    for k in (1, 5, 30):
        yield dist, np.full((37, k), -7, np.intp), unset((37, k), dtype), THREADS


def top_k_hits(rng, dtype):
    scores = rng.integers(0, 5, (40, 7)).astype(dtype)  # ties at the k-th largest
    scores[3, 2] = np.nan
    targets = rng.integers(0, 7, 40)
    targets[3] = 2  # a NaN target score is never in the top k
    for k in (1, 3, 7, 9):
        yield scores, targets, k, unset(40, dtype), THREADS


def threshold_histograms(rng, dtype):
    evenly = np.array([-1e-7, *np.arange(1, 9) / 9, 1 + 1e-7])
    for n, labels, thresholds, chunks in [(1, 1, evenly, 1), (50, 3, evenly, 4),
                                          (30, 2, np.array([0.5]), 2),
                                          (40, 1, np.array([-1e10, 0.1, 0.7, 0.71]), 3)]:
        y_pred = rng.random((n, labels)).astype(dtype)
        y_pred.flat[::7] = evenly[rng.integers(0, 10, y_pred.flat[::7].shape)]  # on thresholds
        y_pred.flat[1::11] = np.nan
        span = thresholds[-1] - thresholds[0]
        scale = (len(thresholds) - 1) / span if np.isfinite(span) and span > 0 else 0.0
        origin = thresholds[0] if np.isfinite(thresholds[0]) else 0.0
        yield (y_pred, (rng.random((n, labels)) > 0.5).astype(dtype),
               rng.random((n, labels)).astype(dtype), thresholds, origin, scale,
               unset((chunks, labels, len(thresholds) + 1), np.float64),
               unset((chunks, labels, len(thresholds) + 1), np.float64), THREADS)


def confusion_matrix(rng, dtype):
    for n, k, chunks in [(1, 1, 1), (100, 4, 3), (37, 6, 5)]:
        yield (rng.integers(0, k, n), rng.integers(0, k, n), rng.random(n).astype(dtype),
               unset((chunks, k, k), np.float64), THREADS)


REDUCE_LAYOUTS = [(1, 1, 1), (3, 7, 1), (2, 37, 1), (2, 5, 300), (1, 1000, 3),
                  (4, 1, 5)]  # (outer, n, inner)


def reduce_forward(rng, dtype):
    for op in ("sum", "mean", "max", "min", "prod"):
        for shape in REDUCE_LAYOUTS:
            x = normal(rng, shape, dtype)
            x[0, -1, 0] = np.nan if op in ("max", "min") else x[0, -1, 0]  # NaN wins
            yield op, x, unset((shape[0], shape[2]), dtype), THREADS


def cumsum(rng, dtype):
    for shape in REDUCE_LAYOUTS + [(2, 0, 3)]:
        for reverse in (False, True):
            yield normal(rng, shape, dtype), unset(shape, dtype), reverse, THREADS


def extreme_backward(rng, dtype):
    for reduce in (np.max, np.min):
        for shape in REDUCE_LAYOUTS:
            x = rng.integers(-2, 3, shape).astype(dtype)  # ties
            yield (x, reduce(x, axis=1), normal(rng, (shape[0], shape[2]), dtype),
                   unset(shape, dtype), THREADS)


CASES = {
    **{f"{name}_{direction}": case for name, grid in POINTWISE_KERNELS.items()
       for direction, case in zip(("forward", "backward"), pointwise_with(*grid))},
    "softmax_forward": softmax_forward,
    "softmax_backward": softmax_backward,
    "log_softmax_forward": softmax_forward,
    "log_softmax_backward": softmax_backward,
    "prelu_forward": prelu_forward,
    "prelu_backward": prelu_backward,
    "dropout_forward": dropout_pass,
    "dropout_backward": dropout_pass,
    "softmax_cross_entropy": loss_case("logits", "probabilities"),
    "sparse_softmax_cross_entropy": loss_case("logits", "labels"),
    "mean_squared_error": loss_case("logits", "any"),
    "binary_crossentropy": loss_case("probabilities", "probabilities"),
    "sigmoid_binary_crossentropy": loss_case("logits", "probabilities"),
    "categorical_hinge": loss_case("logits", "one_hot"),
    "multiclass_hinge": loss_case("logits", "labels"),
    "mean_absolute_error": loss_case("logits", "any"),
    "huber": loss_with_options("logits", "any", (1.0,), (0.3,)),
    "log_cosh": loss_case("logits", "any"),
    "kl_divergence": loss_case("probabilities", "probabilities"),
    "poisson": loss_case("probabilities", "probabilities"),
    "categorical_focal_crossentropy": categorical_focal_crossentropy,
    "binary_focal_crossentropy": loss_with_options(
        "probabilities", "probabilities", (0.25, 2.0, False, False), (0.25, 0.5, True, False)),
    "dice": loss_case("probabilities", "one_hot"),
    "batchnorm_forward_training": batchnorm_forward_training,
    "batchnorm_forward_inference": batchnorm_forward_inference,
    "batchnorm_apply": batchnorm_apply,
    "batchnorm_backward": batchnorm_backward,
    "batchnorm_fold": batchnorm_fold,
    "layernorm_forward": layernorm_forward,
    "layernorm_backward": layernorm_backward,
    "groupnorm_forward": groupnorm_forward,
    "groupnorm_backward": groupnorm_backward,
    "spatial_dropout_forward": spatial_dropout_forward,
    "spatial_dropout_backward": spatial_dropout_backward,
    "gaussian_noise_forward": gaussian_pass,
    "gaussian_dropout_forward": gaussian_pass,
    "gaussian_dropout_backward": gaussian_pass,
    "sgd_update": sgd_update,
    "adam_update": adam_update,
    "rmsprop_update": rmsprop_update,
    "nadam_update": nadam_update,
    "adagrad_update": adagrad_update,
    "adadelta_update": adadelta_update,
    "adamax_update": adamax_update,
    "lion_update": lion_update,
    "accumulate_gradients": accumulate_gradients,
    "moving_average": moving_average,
    "axpy": axpy,
    "chunk_sums": chunk_sums,
    "add_sign": add_sign,
    "add_forward": add_forward,
    "concatenate_forward": concatenate_forward,
    "concatenate_backward": concatenate_backward,
    "elementwise_forward": elementwise_forward,
    "program_run": program_run,
    "elementwise_backward": elementwise_backward,
    "reduce_forward": reduce_forward,
    "extreme_backward": extreme_backward,
    "cumsum": cumsum,
    "remap2d_forward": remap2d_forward,
    "remap2d_backward": remap2d_backward,
    "affine2d_forward": affine2d_forward,
    "affine2d_backward": affine2d_backward,
    "resize2d_forward": resize2d_forward,
    "resize2d_backward": resize2d_backward,
    "intensity_forward": intensity_forward,
    "intensity_backward": intensity_backward,
    "channel_means": channel_means,
    "maxpool2d_forward": maxpool2d_forward,
    "maxpool2d_backward": maxpool_backward(relu=False),
    "maxpool2d_relu_backward": maxpool_backward(relu=True),
    "avgpool2d_forward": window_forward,
    "avgpool2d_backward": window_backward,
    "sumpool2d_forward": window_forward,
    "sumpool2d_backward": window_backward,
    "conv2d_forward": conv2d_forward_cases,
    "conv2d_backward": conv2d_backward_cases,
    "conv2d_backward_input": conv2d_backward_input_cases,
    "conv2d_backward_weight": backward_weight_cases(CONVS, conv_operands),
    "conv2d_general_forward": forward_cases(GENERAL_CONVS, general_conv_operands),
    "conv2d_general_backward_input": backward_input_cases(GENERAL_CONVS, general_conv_operands),
    "conv2d_general_backward_weight": backward_weight_cases(GENERAL_CONVS, general_conv_operands),
    "conv2d_transpose_forward": conv2d_transpose_forward,
    "conv2d_transpose_backward_weight": conv2d_transpose_backward_weight,
    "conv2d_maxpool_forward": conv2d_maxpool_forward,
    "conv2d_maxpool_backward": conv2d_maxpool_backward,
    "depthwise_forward": depthwise_forward_cases,
    "depthwise_backward_input": backward_input_cases(DEPTHWISE, depthwise_operands),
    # dW then db per chunk, in 3 chunks
    "depthwise_backward_weight": backward_weight_cases(
        DEPTHWISE, depthwise_operands, lambda w, dy, dtype: np.empty((3, w.size + dy.shape[3]),
                                                                     dtype)),
    "dense_forward": dense_forward,
    "dense_backward_input": dense_backward_input,
    "dense_backward_weight": dense_backward_weight,
    "pairwise_distances": pairwise_distances,
    "k_smallest": k_smallest,
    "top_k_hits": top_k_hits,
    "threshold_histograms": threshold_histograms,
    "confusion_matrix": confusion_matrix,
}


# ---- the comparison ------------------------------------------------------------------------

def copied(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [copied(v) for v in value]
    return value


def assert_same(got, want, dtype, where):
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, dtype, f"{where}[{i}]")
    elif isinstance(want, np.ndarray) and want.dtype.kind == "f":
        assert_close(got, want, dtype, err_msg=where)
    elif isinstance(want, np.ndarray):
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        assert got == want, where


@pytest.mark.parametrize("name,dtype", [
    (name, dtype) for name in sorted(KERNELS) for dtype in (np.float32, np.float64)
    if not (dtype == np.float64 and name in FLOAT32_ONLY)],
    ids=lambda v: v.__name__ if isinstance(v, type) else v)
def test_kernel_matches_its_twin(name, dtype):
    """Kernel and twin run on copies of the same arguments; afterwards every array argument but
    scratch (the outputs, and the inputs) and the result agree."""
    assert name in CASES, f"{name} has no case here: add one to CASES"
    kernel, twin = KERNELS[name], getattr(ref, name)
    calls = 0
    for args in CASES[name](np.random.default_rng(zlib.crc32(name.encode())), dtype):
        kernel_args, twin_args = copied(list(args)), copied(list(args))
        got, want = kernel(*kernel_args), twin(*twin_args)
        assert_same(got, want, dtype, f"{name} result")
        bound = inspect.signature(twin).bind(*kernel_args).arguments
        for (param, g), w in zip(bound.items(), twin_args):
            if param not in SCRATCH:
                assert_same(g, w, dtype, f"{name}({param}=...), case {calls}")
        calls += 1
    assert calls > 0
