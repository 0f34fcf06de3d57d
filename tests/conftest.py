import importlib
import os
import pkgutil
from pathlib import Path

import numpy as np
import pytest

from fastcnn import _ext
from fastcnn._ops.program import ARITY, Builder


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of x (in place)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + eps
        up = f()
        flat[i] = keep - eps
        down = f()
        flat[i] = keep
        gflat[i] = (up - down) / (2 * eps)
    return grad


def variants(a):
    """The same values as a C-contiguous array, a non-contiguous view and a read-only array."""
    strided = np.zeros((*a.shape[:-1], a.shape[-1] * 2), a.dtype)[..., ::2]
    strided[...] = a
    frozen = a.copy()
    frozen.setflags(write=False)
    return {"contiguous": a, "strided": strided, "readonly": frozen}


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def data_dir():
    """$FASTCNN_DATA, or a skip; under CI=true missing data is a failure."""
    root = os.environ.get("FASTCNN_DATA")
    if root and os.path.isdir(os.path.join(root, "mnist")):
        return root
    if os.environ.get("CI") == "true":
        pytest.fail("FASTCNN_DATA must point at the datasets under CI")
    pytest.skip("FASTCNN_DATA not set")


# ---- shared by tests/api and tests/ops --------------------------------------------------------

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def child_env(*folders):
    """The environment for a Python child that imports this fastcnn, conftest and the modules in
    ``folders``."""
    import fastcnn
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastcnn.__file__)))
    path = [root, str(TESTS), *map(str, folders), os.environ.get("PYTHONPATH")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}


def toy_data(n, seed=0):
    """n 8x8x1 images of 3 classes, each with a bright pixel where its label says: learnable."""
    import fastcnn
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 8, 8, 1)).astype(np.float32) * 0.3
    x[np.arange(n), labels * 2 + 1, labels * 2 + 1, 0] += 3
    return x, fastcnn.utils.to_categorical(labels, 3)


def images(rng, n=64, h=5, w=6, c=2):
    return rng.standard_normal((n, h, w, c)).astype(np.float32)


class CodeOnUnpickle:
    """Unpickling this calls func(arg): with os.mkdir, proof that a loader ran code from a file."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


# Argument checks, at the API (tests/api/test_validation.py) and in the ops room
# (tests/ops/test_checks_ops.py): one parametrized test per category over (case id, call,
# exception, message fragments), on these arrays.
_RNG = np.random.default_rng(0)
X = _RNG.standard_normal((8, 6, 6, 1)).astype(np.float32)
LABELS = np.arange(8) % 3
Y = np.eye(3, dtype=np.float32)[LABELS]
K = _RNG.standard_normal((3, 3, 1, 2)).astype(np.float32)  # HWIO: 6x6x1 -> 4x4x2
DY = _RNG.standard_normal((8, 4, 4, 2)).astype(np.float32)
W = _RNG.standard_normal((4, 3)).astype(np.float32)  # dense (in, out)
LOGITS = _RNG.standard_normal((8, 3)).astype(np.float32)
INTEGRAL = np.clip(np.round(X * 40 + 100), 0, 255).astype(np.float32)  # exact in every integer dtype


def huge(*shape):
    """A zero-stride view with ``shape``: enormous, yet costs no memory unless someone copies it."""
    return np.broadcast_to(np.float32(0), shape)


def readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def assert_refused(call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"{type(info.value).__name__}({message!r}) lacks {missing}"


def refusal_cases(*rows):
    return pytest.mark.parametrize("call, exc, fragments", [pytest.param(*r[1:], id=r[0]) for r in rows])


def odd_inputs(kind, tmp_path):
    """(clean float32 images, {name: the same values in a valid but unusual container}) for one
    ``kind`` of values: float, or whole numbers as uint8, int32, int64 or bool."""
    clean = X if kind == "float" else (INTEGRAL > 100 if kind == "bool" else INTEGRAL).astype(np.float32)
    base = clean if kind == "float" else clean.astype(kind)
    strided = np.zeros((*base.shape[:-1], base.shape[-1] * 2), base.dtype)[..., ::2]
    strided[...] = base
    mapped = np.memmap(tmp_path / "x.dat", dtype=base.dtype, mode="w+", shape=base.shape)
    mapped[...] = base
    mapped.flush()
    return clean, {"plain": base, "strided": strided, "fortran": np.asfortranarray(base),
                   "readonly": readonly(base),
                   "memmap": np.memmap(tmp_path / "x.dat", dtype=base.dtype, mode="r", shape=base.shape),
                   "float64": base.astype(np.float64), "reversed": base[::-1].copy()[::-1],
                   "list": base.tolist()}


# ---- kernel tests (tests/kernels) --------------------------------------------------------------

def out_and_pad(n, k, s, padding):
    """Output length and padding before of a window of k at stride s over n, by TensorFlow's
    rules."""
    if padding == "valid":
        return (n - k) // s + 1, 0
    out = -(-n // s)
    return out, max((out - 1) * s + k - n, 0) // 2


SIMD_PATHS = ("scalar", "avx2", "avx512")
SIMD_MODULES = [module for module in (importlib.import_module(f"{_ext.__name__}.{info.name}")
                                      for info in pkgutil.iter_modules(_ext.__path__))
                if hasattr(module, "_set_simd_path")]


@pytest.fixture(params=SIMD_PATHS[:SIMD_PATHS.index(SIMD_MODULES[0].simd_path()) + 1])
def simd_path(request):
    """Each SIMD path this machine has, in turn, set on every module that dispatches on one."""
    previous = [module.simd_path() for module in SIMD_MODULES]
    for module in SIMD_MODULES:
        assert module._set_simd_path(request.param) == request.param
    yield request.param
    for module, path in zip(SIMD_MODULES, previous):
        module._set_simd_path(path)


def panel_bytes_fixture(name, module, sizes):
    """A fixture, name, that sets module's bound on the forward tiles' K slices to each of sizes
    in turn."""
    @pytest.fixture(params=sizes, name=name)
    def panel_bytes(request):
        previous = module._set_panel_bytes(request.param)
        yield request.param
        module._set_panel_bytes(previous)
    return panel_bytes


# from one tap per slice up to several kernel rows
conv_panel_bytes = panel_bytes_fixture("conv_panel_bytes", _ext.conv, [4, 300, 3000, 20000])
# one tap per slice, pieces of 1600 inputs, and more (layers of at most 14 outputs take the
# narrow kernels, which do not slice by it)
dense_panel_bytes = panel_bytes_fixture("dense_panel_bytes", _ext.dense, [4, 1000, 20000])


def conv_case(rng, dtype, n, h, w, ci, co, kernel, strides, padding):
    """x, w, bias, dy and the geometry (stride_h, stride_w, pad_top, pad_left) of a conv."""
    (kh, kw), (sh, sw) = kernel, strides
    oh, pt = out_and_pad(h, kh, sh, padding)
    ow, pl = out_and_pad(w, kw, sw, padding)
    x = rng.standard_normal((n, h, w, ci)).astype(dtype)
    wt = rng.standard_normal((kh, kw, ci, co)).astype(dtype)
    bias = rng.standard_normal(co).astype(dtype)
    dy = rng.standard_normal((n, oh, ow, co)).astype(dtype)
    return x, wt, bias, dy, (sh, sw, pt, pl)


def run_conv_kernels(module, x, wt, bias, dy, geo, relu, n_threads):
    """Forward, dX and (dW, db) of the conv kernels of ``module`` (``_ext.conv`` or its twins)."""
    out = np.empty(dy.shape, x.dtype)
    module.conv2d_forward(x, wt, bias, out, None, *geo, relu, 1, n_threads)
    dx = np.empty_like(x)
    module.conv2d_backward_input(dy, wt, dx, *geo, n_threads)
    dw = np.empty_like(wt)
    db = None if bias is None else np.empty_like(bias)
    module.conv2d_backward_weight(x, dy, dw, db, *geo, n_threads)
    return out, dx, dw, db


def run_dense_kernels(module, x, w, bias, dy, relu, n_threads):
    """Forward, dX and (dW, db) of the dense kernels of ``module`` (``_ext.dense`` or its twins)."""
    out = np.empty(dy.shape, x.dtype)
    module.dense_forward(x, w, bias, out, relu, n_threads)
    dx = np.empty_like(x)
    module.dense_backward_input(dy, w, dx, n_threads)
    dw = np.empty_like(w)
    db = None if bias is None else np.empty_like(bias)
    module.dense_backward_weight(x, dy, dw, db, n_threads)
    return out, dx, dw, db


def conv_maxpool_case(rng, n, h, w, ci, co, kernel, strides, padding, pool, pool_strides):
    """The float32 conv case, with dy the gradient of the pooled output."""
    x, wt, bias, dz, geo = conv_case(rng, np.float32, n, h, w, ci, co, kernel, strides, padding)
    (oh, ow), (ph, pw), (psh, psw) = dz.shape[1:3], pool, pool_strides
    dy = rng.standard_normal((n, (oh - ph) // psh + 1, (ow - pw) // psw + 1, co)).astype(np.float32)
    return x, wt, bias, dy, geo


def assert_close(got, want, dtype, err_msg=""):
    """A kernel's result against its float64 twin's: 1e-4 (float32) or 1e-10 (float64), relative,
    and absolute on the scale of the largest entry; None where the twin gives None."""
    if want is None:
        assert got is None, err_msg
        return
    tol = 1e-4 if dtype == np.float32 else 1e-10
    scale = max(1.0, float(np.nanmax(np.abs(want), initial=0)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=err_msg)


def bn_params(rng, c, dtype):
    """gamma, beta, moving_mean and moving_var of c channels."""
    gamma = (1 + 0.3 * rng.standard_normal(c)).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    moving_mean = rng.standard_normal(c).astype(dtype)
    moving_var = rng.uniform(0.5, 2, c).astype(dtype)
    return gamma, beta, moving_mean, moving_var


def random_maps(rng, n, out_size, size, fill_fraction=0.3):
    """n remap index maps of out_size entries into an axis of size, fill_fraction of them -1."""
    index = rng.integers(0, size, (n, out_size)).astype(np.int32)
    index[rng.random((n, out_size)) < fill_fraction] = -1
    return index


@pytest.fixture(params=[(kind, bad) for bad in (-1, 10, -2**63)
                        for kind in ("multiclass_hinge", "sparse_softmax_cross_entropy")],
                ids=lambda p: f"{p[1]}-{p[0]}")
def out_of_range_labels(request, rng):
    """(loss kind, bad label, logits (5000, 10), labels with one bad label on the second thread's
    half)."""
    kind, bad = request.param
    logits = rng.standard_normal((5000, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 5000)
    labels[3999] = bad
    return kind, bad, logits, labels


# ---- fastcnn.datasets (tests/api/test_datasets_*.py) -----------------------------------------

def closed_port_url():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def isolated_datasets(monkeypatch, tmp_path):
    """No test reads the user's cache or reaches the network unless it says so."""
    monkeypatch.setenv("FASTCNN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FASTCNN_DATASETS_MIRROR", closed_port_url())
    monkeypatch.delenv("FASTCNN_DATA", raising=False)


def publish(module, folder, blobs, monkeypatch):
    """Write `blobs` into `folder` and make them the module's published files."""
    import hashlib

    from fastcnn.datasets import _files
    folder.mkdir(parents=True)
    table = {}
    for name, data in blobs.items():
        (folder / name).write_bytes(data)
        table[name] = _files.FileSpec(len(data), hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(module, "FILES", table)


def call_layer(layer, x, dy, training=True, rng=None):
    """(y, dx, weight gradients) of one call of a leaf layer through the engine's contract,
    forward(x, ctx, training) then backward(dy, ctx, need_dx=True), with a fresh context whose
    gradient buffers cover the layer's trainable weights (None for the others)."""
    from fastcnn.engine.execution import CallContext
    ctx = CallContext(rng=rng if rng is not None else getattr(layer, "rng", None))
    ctx.grads = [np.zeros_like(w) if t else None
                 for w, t in zip(layer._weights, layer._weight_trainable)]
    y = np.array(layer.forward(x, ctx, training))
    dx = layer.backward(dy, ctx, True)
    return y, (None if dx is None else np.array(dx)), ctx.grads


def training_plan(model, fuse=True):
    """The plan a fit of the compiled, built ``model`` runs."""
    from fastcnn.engine.graph import FlatGraph
    from fastcnn.engine.plan import make_plan
    graph = model._built_graph()
    outputs = model._outputs_for(graph, use_compiled=True)
    return make_plan(FlatGraph(graph, True), fuse, loss_outputs=[True] * len(outputs),
                     logits_ok=model._logits_ok(graph, outputs))


def step_names(plan):
    """Each step's layer class name, or the step's class name for a fused step."""
    return [type(s.layer).__name__ if type(s).__name__ == "LayerStep" else type(s).__name__
            for s in plan.steps]


# ---- fits stopped part way (tests/api/test_backup_and_restore.py, test_steps_per_epoch_passes.py)

class Crash(Exception):
    """What the callback of ``crash_after`` raises."""


def crash_after(count):
    """A callback that raises Crash once ``count`` training batches, counted over the whole
    fit, have ended (never for None)."""
    import fastcnn
    done = []

    def batch_end(batch, logs):
        done.append(batch)
        if len(done) == count:
            raise Crash

    return fastcnn.callbacks.LambdaCallback(on_train_batch_end=batch_end)


# ---- the Keras guides' patterns (tests/api/test_functional_api.py, test_subclassing.py,
# test_transfer_learning.py) -------------------------------------------------------------------

def reloaded(model, x, tmp_path, custom_objects=None):
    """``model`` saved and loaded back, after checking that the copy predicts bitwise alike on x."""
    import fastcnn
    from fastcnn.engine.tensor import flatten
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    copy = fastcnn.models.load_model(path, custom_objects=custom_objects)
    for want, got in zip(flatten(model.predict(x, verbose=0)), flatten(copy.predict(x, verbose=0)),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    return copy


def check_weight_gradients(model, xs, upstreams, weights, eps=1e-3):
    """The engine's gradients of sum(output * upstream) over the outputs of ``model`` (in
    inference mode) with respect to each of ``weights``, against central differences.

    The outputs are float32, so a difference quotient with eps=1e-3 carries an error of about
    1e-7 * |objective| / eps; the tolerance is set from that, not from the comparison."""
    from fastcnn.engine.execution import Execution
    from fastcnn.engine.graph import FlatGraph
    from fastcnn.engine.plan import make_plan
    graph = model._built_graph()
    plan = make_plan(FlatGraph(graph, False), model.fuse, loss_outputs=[True] * len(upstreams))
    execution = Execution(plan)
    execution.forward(xs)
    execution.backward(upstreams)
    engine = {id(w): g for w, g in zip(plan.trained, execution.gradients)}

    def objective():
        outs = model(xs if len(xs) > 1 else xs[0])
        outs = outs if isinstance(outs, list) else [outs]
        return sum(float(np.sum(o.astype(np.float64) * u)) for o, u in zip(outs, upstreams))

    scale = abs(objective()) + 1
    for w in weights:
        numeric = numeric_grad(objective, w, eps)
        np.testing.assert_allclose(engine[id(w)], numeric, rtol=1e-2, atol=1e-6 * scale / eps)


def check_layer(make_layer, input_shape, output_shape, n_params):
    """The contract every layer meets: its output shape (built, computed and symbolic), its
    parameter count, the get_config round trip (the clone computes bitwise alike) and one SGD step
    of a small classifier on top of it lowering the loss. Shapes leave out the batch axis."""
    import fastcnn
    from fastcnn import layers
    layer = make_layer()
    layer.build((None, *input_shape))
    assert layer.built
    assert layer.compute_output_shape((None, *input_shape)) == (None, *output_shape)
    assert make_layer()(fastcnn.Input(input_shape)).shape == (None, *output_shape)
    assert layer.count_params() == n_params
    assert sum(w.size for w in layer.get_weights()) == n_params

    # get_config -> from_config rebuilds an equal layer
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build((None, *input_shape))
    clone.set_weights(layer.get_weights())
    x = np.random.default_rng(0).standard_normal((4, *input_shape)).astype(np.float32)
    np.testing.assert_array_equal(clone(x), layer(x))

    # one training step on a tiny batch lowers the loss
    fastcnn.utils.set_random_seed(3)
    head = [layers.Flatten()] if len(output_shape) > 1 else []
    model = fastcnn.Sequential([fastcnn.Input(shape=input_shape), make_layer(), *head,
                                layers.Dense(3, activation="softmax")])
    model.compile(optimizer=fastcnn.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    y = np.array([0, 1, 2, 1])
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert model.evaluate(x, y, verbose=0) < before


# ---- image files and folders (tests/api/test_image_utils.py, test_image_dataset.py,
# test_dataset_methods.py, test_feature_normalization.py, test_image_folder_resume.py) ---------

def write_images(root, files):
    """Write {relative path: uint8 array (H, W) or (H, W, C)} under ``root`` with Pillow (the
    format from the extension; JPEG at quality 95); returns ``root``."""
    from PIL import Image
    root = Path(root)
    for name, pixels in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(pixels, np.uint8)).save(path, quality=95)
    return root


def bilinear_reference(image, size):
    """(H, W, C) resized to ``size`` by half-pixel bilinear interpolation without antialiasing
    (TensorFlow's and torch's align_corners=False), in float64, written from the formula."""
    def matrix(n_in, n_out):
        source = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        below = np.floor(source)
        frac = source - below
        m = np.zeros((n_out, n_in))
        rows = np.arange(n_out)
        np.add.at(m, (rows, np.clip(below, 0, n_in - 1).astype(int)), 1 - frac)
        np.add.at(m, (rows, np.clip(below + 1, 0, n_in - 1).astype(int)), frac)
        return m
    image = np.asarray(image, np.float64)
    return np.einsum("ih,hwc,jw->ijc", matrix(image.shape[0], size[0]), image,
                     matrix(image.shape[1], size[1]))


def program_inputs(rng, program, rows, cols):
    """Random inputs of ``program`` over (rows, cols): normal values, bools for a mask."""
    sizes = {"full": rows * cols, "row": rows, "col": cols, "mask": rows * cols}
    return [rng.random(sizes[kind]) < 0.5 if kind == "mask" else
            rng.standard_normal(sizes[kind]).astype(program.dtype)
            for kind in program.input_kinds]


def every_opcode_program(dtype):
    """A program of the program kernel that runs every opcode, on full inputs x and y, a row
    input, a column input and a mask, with full, row and mask outputs (its inputs:
    program_inputs)."""
    b = Builder()
    x, y, row, col = b.input(), b.input(), b.input("row"), b.input("col")
    b.store_mask(b.op("greater", b.op("where", b.input("mask"), x, y), row))
    positive = b.op("add", b.op("abs", y), b.constant(0.5))
    results = [b.op("add", b.op("multiply", x, row), col)]
    for name, arity in sorted(ARITY.items()):
        if arity == 2:
            results.append(b.op(name, positive if name == "power" else x,
                                positive if name in ("divide", "power") else y))
        elif arity == 1:
            results.append(b.op(name, positive if name.startswith("log") or name in (
                "sqrt", "reciprocal") else x))
    results.append(b.op("where", b.op("greater", x, y), x, b.constant(-2.0)))
    for r in results:
        b.store(r)
    b.row_sum(results[0], 3.0)
    b.row_sum(results[-1])
    return b.build(dtype)
